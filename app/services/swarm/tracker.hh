// HTTP tracker announces (BEP 3), compact peer lists (BEP 23): the request's query string
// and the reply's parser. Pure functions over bytes: no I/O, no globals, no allocation; the
// reply's parser fills caller spans and points into the input, which must outlive the Reply.
// The announcer thread (announcer.hh) does the HTTP; limits and rules: docs/swarm.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "app/services/swarm/bencode.hh"

namespace cw::swarm::tracker {

using Bytes = std::span<const uint8_t>;

inline constexpr size_t kMaxReply = size_t{256} << 10;  // reply bytes read from a tracker
inline constexpr size_t kMaxPeers = 200;                // peers taken from one reply
inline constexpr int64_t kMaxInterval = 7 * 24 * 3600;  // seconds; larger is clamped

enum class Event : uint8_t { none, started, completed, stopped };
std::string_view event_name(Event e);  // "" for none

// An IPv4 peer as the compact form carries it (network byte order).
struct PeerAddr {
  uint32_t addr_be = 0;
  uint16_t port_be = 0;
  friend bool operator==(const PeerAddr&, const PeerAddr&) = default;
};

struct Announce {
  Bytes info_hash;  // 20 bytes
  Bytes peer_id;    // 20 bytes
  uint16_t port = 0;
  uint64_t uploaded = 0, downloaded = 0, left = 0;  // bytes
  Event event = Event::none;
  uint32_t numwant = 50;
  uint32_t key = 0;  // random per process: lets a tracker know us across address changes
};

// Writes url, then '?' (or '&' if url has a query already) and the announce parameters
// (info_hash and peer_id percent-encoded, compact=1) into out; returns the length written,
// or 0 if out is too small or the hashes are not 20 bytes.
size_t write_query(std::string_view url, const Announce& a, std::span<char> out);

// An http:// or https:// URL split for an HTTP client: "scheme://host[:port]" and the
// path with its query ("/" if empty). False for another scheme (udp:// is BEP 15) or no host.
struct HttpUrl {
  std::string_view origin;
  std::string_view target;
};
bool split_url(std::string_view url, HttpUrl& out);

enum class Error : uint8_t {
  ok,
  bencode,       // not one valid bencoded element
  not_dict,      // the root is not a dict
  bad_interval,  // "interval" missing (without a failure reason), not an integer, or < 0
  bad_peers,     // "peers" neither a string of 6-byte entries nor a list of dicts
  kCount,
};
std::string_view error_name(Error e);

struct Reply {
  bool failed = false;        // the tracker gave a "failure reason" (nothing else is read)
  std::string_view failure;   // its text
  std::string_view warning;   // "warning message", if any
  int64_t interval = 0;       // seconds, 0..kMaxInterval
  int64_t min_interval = -1;  // seconds, -1 if absent
  int64_t complete = -1, incomplete = -1;  // seeds and leechers, -1 if absent
  size_t peers = 0;                        // written to the caller's span
  size_t skipped = 0;                      // entries not taken: the span was full, not IPv4, port 0
};

// Parses an announce reply. Keys need not be sorted (trackers do not all sort them). Dict
// peers (non-compact) are taken when "ip" is a dotted IPv4 address and "port" 1..65535.
Error parse_reply(Bytes in, std::span<bencode::Token> toks, std::span<PeerAddr> peers, Reply& r);

}  // namespace cw::swarm::tracker
