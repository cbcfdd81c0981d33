// etcd v3's JSON gateway (etcd 3.4's grpc-gateway, docs/cluster.md#membership-through-etcd):
// the request bodies cluster membership sends and the parsers of the replies it reads, and
// the value a node registers under its key. Pure functions over text: no I/O, no globals;
// fuzzed (tests/fuzz/etcd_fuzz.cc). They allocate: the membership thread uses them, never a
// worker.
//
// On the gateway keys and values are base64 and 64-bit integers are JSON strings; a field
// that is zero or empty is left out (a range with no keys has no "kvs"; a keep-alive of a
// lease etcd no longer holds answers with no "TTL"). A member's value is JSON too:
//   {"id":"node-a","addr":"10.0.0.1:7400","fp":"<SHA-256 of its certificate, 64 hex digits>"}
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/io.hh"

namespace cw::peer::etcd {

inline constexpr size_t kMaxNodeId = 63;              // bytes of a node id
inline constexpr size_t kMaxMembers = 64;             // members one view holds
inline constexpr size_t kMaxReply = size_t{1} << 20;  // bytes read from etcd per reply
inline constexpr size_t kMaxPrefix = 200;             // bytes of the key prefix

using Fingerprint = std::array<uint8_t, 32>;  // SHA-256 of a certificate's DER

// One registered node. Plain bytes so a whole view can cross to the workers by copy.
struct Member {
  std::array<char, kMaxNodeId> id{};
  uint8_t id_len = 0;
  dp::Endpoint addr{};  // where its peer port is
  Fingerprint fp{};
  int64_t lease = 0;  // the etcd lease its key is under (a new one when the node restarts)

  std::string_view name() const { return {id.data(), id_len}; }
  bool same(const Member& o) const {
    return name() == o.name() && addr == o.addr && fp == o.fp && lease == o.lease;
  }
};

// Whether s may be a node id: 1..kMaxNodeId of [A-Za-z0-9._-].
bool valid_node_id(std::string_view s);

// Request bodies (POST /v3/lease/grant, /v3/lease/keepalive, /v3/kv/lease/revoke, /v3/kv/put,
// /v3/kv/range).
std::string grant_body(int64_t ttl_s);
std::string lease_body(int64_t lease);  // keepalive and revoke
std::string put_body(std::string_view key, std::string_view value, int64_t lease);
std::string range_body(std::string_view prefix);  // every key that starts with prefix
// The value a node registers: id, addr and fp as above.
std::string member_value(std::string_view id, dp::Endpoint addr, const Fingerprint& fp);

enum class Error : uint8_t {
  ok,
  json,       // not one JSON object
  etcd,       // etcd answered with an error object
  bad_field,  // a field missing or of the wrong type or range
  kCount,
};
std::string_view error_name(Error e);

// Any other reply (a put's, a revoke's): one JSON object that is not an error.
Error parse_reply(std::string_view body);

struct Grant {
  int64_t id = 0;   // nonzero
  int64_t ttl = 0;  // seconds etcd granted (it may raise what was asked to its minimum)
};
Error parse_grant(std::string_view body, Grant& g);
// A keep-alive's answer (the stream's first message, "result" wrapped or not): the lease's
// remaining TTL in seconds, 0 when etcd no longer holds it.
Error parse_keepalive(std::string_view body, int64_t& ttl);

// A range over prefix: the members whose key is prefix + id and whose value is a valid
// member of that id, sorted by id, at most out.size() (*n says how many). Entries that are
// not are skipped and counted in *bad (as are members beyond out.size()).
Error parse_range(std::string_view body, std::string_view prefix, std::span<Member> out, size_t* n,
                  size_t* bad);
// One member's value under key id; false when it is not a valid member of that id.
bool parse_member(std::string_view id, std::string_view value, int64_t lease, Member& m);

// Base64 (standard, padded) as the gateway carries bytes. decode: false when in is not.
std::string base64_encode(std::string_view in);
bool base64_decode(std::string_view in, std::string& out);

// The first key after every key that starts with prefix (etcd's range_end for a prefix);
// "\0" (all keys) when there is none.
std::string prefix_end(std::string_view prefix);

}  // namespace cw::peer::etcd
