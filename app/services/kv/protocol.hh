// memcached's text and meta protocols (memcached 1.6) and its UDP frame header: the codec of
// the kv service. Pure functions over bytes: no I/O, no globals, no allocation. A parsed
// request points into the caller's input, which must stay alive and unchanged while the
// request is used. Limits, deviations from memcached and the error strings: docs/kv.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cw::kv::proto {

// memcached's KEY_MAX_LENGTH. Keys may not hold spaces or control characters (< 0x21, 0x7f).
inline constexpr size_t kMaxKeyLen = 250;
// A request line longer than this (newline included) closes the connection, as memcached
// does for a line without a newline in its first 2048 bytes...
inline constexpr size_t kMaxLine = 2048;
// ...unless it is a get/gets/gat/gats line, which memcached lets grow without bound; ours
// may grow to this, then the connection is closed the same way.
inline constexpr size_t kMaxGetLine = 64 * 1024;
// Keys in one get line; more is answered "CLIENT_ERROR bad command line format".
inline constexpr size_t kMaxGetKeys = 4096;
// memcached's MAX_TOKENS: the first 23 tokens of a line decide the command's arity.
inline constexpr size_t kMaxTokens = 23;
// Tokens of a meta line, command and key included (memcached's MFLAG_MAX_OPT_LENGTH is 20
// because it counts its terminal token); more is "CLIENT_ERROR options flags too long".
inline constexpr size_t kMaxMetaTokens = 19;
inline constexpr size_t kMaxMetaFlags = kMaxMetaTokens - 2;
// An O (opaque) token, its letter included (MFLAG_MAX_OPAQUE_LENGTH).
inline constexpr size_t kMaxOpaqueLen = 32;
// A base64 key (meta flag b) decodes into at most this many bytes.
inline constexpr size_t kMaxBinaryKeyLen = kMaxKeyLen / 4 * 3;
// Default item size limit (memcached -I 1m); the service passes its configured limit.
inline constexpr uint32_t kDefaultMaxValue = 1024 * 1024;
// A data length field above this is a bad command line (memcached: INT_MAX - 2).
inline constexpr uint32_t kMaxDataLen = 0x7fffffff - 2;

// clang-format off
enum class Cmd : uint8_t {
  get, gets, gat, gats,                     // keys (gat, gats: + exptime)
  set, add, replace, append, prepend, cas,  // key, client_flags, exptime, data (cas: + cas)
  del, incr, decr, touch,                   // key (+ delta / exptime)
  flush_all, version, verbosity, stats, quit,
  mg, ms, md, ma, mn, me,                   // meta: key + MetaFlags (ms: + data)
};
// clang-format on

// The key tokens of a get line, iterated in order without copying.
class KeyList {
 public:
  class iterator {
   public:
    iterator() = default;
    explicit iterator(std::string_view rest) : rest_(rest) { advance(); }
    std::string_view operator*() const { return cur_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    bool operator==(const iterator& o) const { return cur_.data() == o.cur_.data(); }

   private:
    void advance();
    std::string_view rest_, cur_;
  };
  KeyList() = default;
  KeyList(std::string_view text, uint32_t count) : text_(text), count_(count) {}
  iterator begin() const { return iterator(text_); }
  iterator end() const { return iterator(); }
  uint32_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

 private:
  std::string_view text_;  // the keys, separated by one or more spaces
  uint32_t count_ = 0;
};

// The flags of a meta command, as given (memcached validates the same set for every meta
// command and ignores the ones a command does not use).
struct MetaFlags {
  uint64_t mask = 0;                        // bit (letter - 'A') for each flag present
  std::array<char, kMaxMetaFlags> order{};  // flag letters in request order: replies echo
  uint8_t count = 0;                        // return flags in this order
  std::string_view opaque;                  // O: the token after its letter
  int64_t ttl = 0;                          // T: new exptime
  int64_t vivify_ttl = 0;                   // N: autovivify on miss with this exptime
  int64_t recache_ttl = 0;                  // R: win a recache token when TTL below this
  uint32_t client_flags = 0;                // F
  uint64_t compare_cas = 0;                 // C: compare against this CAS
  uint64_t explicit_cas = 0;                // E: set the item's new CAS to this
  uint64_t delta = 1;                       // D (ma)
  uint64_t initial = 0;                     // J (ma, with N)
  char mode = 0;                            // M: ms E A P R S, ma I + D - (checked per command)

  bool has(char f) const { return f >= 'A' && f <= 'z' && (mask >> unsigned(f - 'A') & 1) != 0; }
};

struct Request {
  Cmd cmd = Cmd::version;
  // Text: the last token was "noreply" (answer nothing but a get's values). Meta: flag q.
  bool noreply = false;
  std::string_view key;   // single-key commands, as on the wire (base64 when meta b)
  KeyList keys;           // get, gets, gat, gats
  std::string_view data;  // set..cas and ms: the value, without its "\r\n"
  uint32_t client_flags = 0;
  int64_t exptime = 0;     // set..cas, touch, gat(s); flush_all: the delay (0 if none)
  uint64_t cas = 0;        // cas: the unique to compare
  uint64_t delta = 0;      // incr, decr
  uint32_t verbosity = 0;  // verbosity
  std::string_view args;   // stats: the text after "stats" (e.g. "settings"), may be empty
  MetaFlags meta;          // mg ms md ma me
  std::array<uint8_t, kMaxBinaryKeyLen> binary_key{};  // meta b: the decoded key
  uint8_t binary_key_len = 0;

  // The key the store sees: the decoded bytes for a meta b key, else the key token.
  std::string_view item_key() const {
    if (!meta.has('b')) return key;
    return {reinterpret_cast<const char*>(binary_key.data()), binary_key_len};
  }
};

enum class Status : uint8_t {
  ok,         // req is whole; drop `consumed` bytes after acting on it
  need_more,  // wait for more bytes (`need` total when known, else 0)
  error,      // answer `reply` (unless empty or `noreply`), drop `consumed` bytes; close?
};

struct Parsed {
  Status status = Status::need_more;
  // ok, error: bytes the request takes from the stream. For an error it may exceed the
  // input: memcached swallows the data block of a refused storage command, so the
  // runtime discards that many bytes in total, also those still to arrive.
  size_t consumed = 0;
  size_t need = 0;         // need_more: total bytes the request needs, when known
  std::string_view reply;  // error: memcached's reply line, without "\r\n" (static text)
  bool close = false;      // error: close the connection (after sending reply, if any)
  bool noreply = false;    // error: the text command said noreply, send nothing
  Request req;             // ok
};

struct Limits {
  uint32_t max_value = kDefaultMaxValue;  // longer values: "SERVER_ERROR object too large..."
};

// Parses the request at the start of `in` (a TCP stream buffer; it may hold more after it).
// `no_newline` bytes at the start of `in` are known to hold no '\n': after need_more with
// need == 0, pass that input's size, so that a line trickling in is scanned once, not once
// per segment (a 64 KiB get line sent a byte at a time would cost 2^31 byte reads).
Parsed parse(std::string_view in, const Limits& limits = {}, size_t no_newline = 0);
inline Parsed parse(std::span<const uint8_t> in, const Limits& limits = {}, size_t no_newline = 0) {
  return parse(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()), limits,
               no_newline);
}

// --- Replies. Each writes into `out` and returns the bytes written, or 0 when the reply
// does not fit (nothing useful is written then). ---

// "VALUE <key> <flags> <bytes>[ <cas>]\r\n" (cas when non-null: gets, gats). The runtime
// may send the value bytes and "\r\n" from the store itself (writev), or use encode_value.
size_t encode_value_header(std::span<char> out, std::string_view key, uint32_t client_flags,
                           size_t bytes, const uint64_t* cas = nullptr);
// The header, the value and "\r\n".
size_t encode_value(std::span<char> out, std::string_view key, uint32_t client_flags,
                    std::string_view value, const uint64_t* cas = nullptr);

enum class Reply : uint8_t {
  end,
  stored,
  not_stored,
  exists,
  not_found,
  deleted,
  touched,
  ok,
  error,
  reset,
  mn,
  en,
};
std::string_view reply_text(Reply r);
size_t encode(std::span<char> out, Reply r);            // "<text>\r\n"
size_t encode_number(std::span<char> out, uint64_t v);  // incr/decr: "<v>\r\n"
// "CLIENT_ERROR <msg>\r\n", "SERVER_ERROR <msg>\r\n".
size_t encode_client_error(std::span<char> out, std::string_view msg);
size_t encode_server_error(std::span<char> out, std::string_view msg);
// Any whole line: "<line>\r\n" (e.g. Parsed::reply, "VERSION 1.6.18-corewire").
size_t encode_line(std::span<char> out, std::string_view line);
size_t encode_stat(std::span<char> out, std::string_view name, std::string_view value);
size_t encode_stat(std::span<char> out, std::string_view name, uint64_t value);

// A meta return flag: its letter and an optional argument (" f30", " c123", " t-1",
// " Oopaque", " kfoo", " b", " W").
struct MetaRet {
  enum class Kind : uint8_t { bare, u64, i64, text };
  char flag = 0;
  Kind kind = Kind::bare;
  uint64_t u = 0;
  int64_t i = 0;
  std::string_view text;
  static MetaRet bare(char f) { return {f, Kind::bare, 0, 0, {}}; }
  static MetaRet num(char f, uint64_t v) { return {f, Kind::u64, v, 0, {}}; }
  static MetaRet snum(char f, int64_t v) { return {f, Kind::i64, 0, v, {}}; }
  static MetaRet str(char f, std::string_view t) { return {f, Kind::text, 0, 0, t}; }
};
enum class MetaCode : uint8_t { hd, en, nf, ns, ex, mn };  // HD EN NF NS EX MN
// "<code>[ <flags>]\r\n".
size_t encode_meta(std::span<char> out, MetaCode code, std::span<const MetaRet> flags = {});
// "VA <size>[ <flags>]\r\n<value>\r\n".
size_t encode_meta_value(std::span<char> out, std::string_view value,
                         std::span<const MetaRet> flags = {});
// "ME <key> <text>\r\n" (the debug line: text is "exp=.. la=.. cas=.. ...").
size_t encode_meta_debug(std::span<char> out, std::string_view key, std::string_view text);

// Standard base64 with padding (meta flag b). decode returns the byte count, 0 when the
// text is not canonical base64 or does not fit; encode returns 0 when it does not fit.
size_t base64_decode(std::string_view in, std::span<uint8_t> out);
size_t base64_encode(std::span<const uint8_t> in, std::span<char> out);

// --- memcached's UDP frame: 8 bytes in front of every datagram, big-endian. ---
inline constexpr size_t kUdpHeaderSize = 8;
inline constexpr size_t kUdpMaxDatagram = 1400;  // memcached's UDP_MAX_PAYLOAD_SIZE
inline constexpr size_t kUdpMaxPayload = kUdpMaxDatagram - kUdpHeaderSize;  // UDP_DATA_SIZE

struct UdpHeader {
  uint16_t request_id = 0;
  uint16_t seq = 0;       // datagram number in this message, from 0
  uint16_t total = 0;     // datagrams in this message
  uint16_t reserved = 0;  // 0
};
enum class UdpStatus : uint8_t {
  ok,
  too_short,     // no request after the header (memcached needs more than 8 bytes)
  multi_packet,  // total != 1: memcached drops multi-datagram requests, so do we
};
struct UdpFrame {
  UdpStatus status = UdpStatus::too_short;
  UdpHeader header;                  // when at least kUdpHeaderSize bytes came
  std::span<const uint8_t> payload;  // ok: the request bytes after the header
};
UdpFrame parse_udp(std::span<const uint8_t> datagram);
void encode_udp_header(uint8_t* out, const UdpHeader& h);  // kUdpHeaderSize bytes
// Datagrams a reply of `reply_len` bytes takes (0 for an empty reply; a reply over
// 65535 datagrams is cut there, as memcached does).
uint16_t udp_datagram_count(size_t reply_len);
// Writes datagram `seq` of the reply (header + its slice of at most kUdpMaxPayload bytes)
// into out; returns its length, 0 when seq is past the end or out is too small.
size_t udp_datagram(std::span<uint8_t> out, uint16_t request_id, std::span<const uint8_t> reply,
                    uint16_t seq);

}  // namespace cw::kv::proto
