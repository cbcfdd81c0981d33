// The load generator's side of memcached's text and meta protocols: request encoders that
// write straight into a tx buffer, and a parser for one element of a reply (a VALUE/VA item
// with its data, or one status line). Pure functions over bytes: no I/O, no globals, no
// allocation; fuzzed (tests/fuzz/kv_reply_fuzz.cc). The server's codec
// (app/services/kv/protocol.hh) parses requests, not replies, so only its UDP header
// encoder and limits are shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cw::bench::kv {

enum class KvProto : uint8_t { text, meta };

// A reply line (without its data block) longer than this is refused: memcached's longest
// are VALUE lines (key <= 250 B and three numbers) and meta lines with return flags.
inline constexpr uint32_t kMaxReplyLine = 1024;
// Largest value a request may carry (memcached's default item size limit -I 1m).
inline constexpr uint32_t kMaxValue = 1024 * 1024;
// Keys per multi-get: text "get" lines of memcached have no limit; corewire's is 4096 keys
// and 64 KiB; this keeps a 250-byte-key line under that.
inline constexpr uint32_t kMaxMultiget = 256;

// Keys are "k" + the key index in decimal, zero-padded to key_size bytes.
uint32_t min_key_size(uint64_t keys);  // for indexes 0..keys-1
void write_key(char* out, uint32_t key_size, uint64_t index);

// Request sizes and encoders. encode_* writes exactly *_size(...) bytes into out.
//   text get:  "get k1 k2 ... kN\r\n"
//   meta get:  N == 1: "mg k v\r\n"; N > 1: "mg ki v q\r\n" per key, then "mn\r\n" (misses
//              are silent, MN ends the reply)
//   text set:  "set k 0 0 V\r\n" value "\r\n"
//   meta set:  "ms k V\r\n" value "\r\n"
uint32_t get_size(KvProto p, uint32_t key_size, uint32_t nkeys);
void encode_get(KvProto p, char* out, uint32_t key_size, std::span<const uint64_t> keys);
uint32_t set_size(KvProto p, uint32_t key_size, uint32_t value_len);
void encode_set(KvProto p, char* out, uint32_t key_size, uint64_t key, std::string_view value);

// One element at the start of a reply stream.
enum class Elem : uint8_t {
  need_more,   // incomplete; `need` = total bytes the element needs when known, else 0
  value,       // "VALUE <key> <flags> <bytes>[ <cas>]" or "VA <bytes>[ flags]", data, "\r\n"
  end,         // "END" (text get)
  meta_end,    // "MN"
  miss,        // "EN" (meta get)
  stored,      // "STORED", "HD[ flags]"
  not_stored,  // "NOT_STORED", "EXISTS", "NOT_FOUND", "NS", "EX", "NF" (meta: + flags)
  error,       // "ERROR", "CLIENT_ERROR <msg>", "SERVER_ERROR <msg>"
  bad,         // not a memcached reply: the stream cannot be followed any more
};
struct Element {
  Elem kind = Elem::need_more;
  uint32_t consumed = 0;  // bytes of the element (all but need_more and bad)
  uint32_t need = 0;      // need_more: total length when known (after a value line)
  uint32_t line = 0;      // value (and need_more with need): length of the value line
};
// Values longer than max_value (at most 2^31) are `bad`.
Element parse_element(std::span<const uint8_t> in, uint32_t max_value);

// Following one request's reply element by element. A get of nkeys keys ends at END (text),
// at its VA or EN (meta, one key) or at MN (meta, several keys: misses are silent); a set
// ends at its status line. An error line ends a text request; in a meta multi-get it
// answers one mg and MN still follows.
struct ReplyState {
  uint32_t hits = 0;   // values received
  bool error = false;  // an error or not-stored line was part of the reply
};
enum class Step : uint8_t { more, done, bad };
Step follow(KvProto p, bool get, uint32_t nkeys, ReplyState& st, Elem e);

// memcached's UDP frame header in front of each reply datagram (docs/kv.md, "UDP").
struct UdpReply {
  bool ok = false;  // 8 bytes, total >= 1, seq < total
  uint16_t request_id = 0, seq = 0, total = 0;
  std::span<const uint8_t> payload;
};
UdpReply parse_udp_reply(std::span<const uint8_t> datagram);

}  // namespace cw::bench::kv
