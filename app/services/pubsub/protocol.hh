// The NATS client protocol as nats-server 2.9 speaks it: the codec of the pubsub service.
// Pure functions over bytes: no I/O, no globals, no allocation. A parsed op points into the
// caller's input, which must stay alive and unchanged while the op is used. What it accepts,
// its limits and nats-server's error texts: docs/pubsub.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cw::pubsub::proto {

// nats-server's MAX_CONTROL_LINE_SIZE: the arguments of one op, its name and line end aside.
inline constexpr uint32_t kMaxControlLine = 4096;
// nats-server's MAX_PAYLOAD_SIZE (max_payload's default).
inline constexpr uint32_t kDefaultMaxPayload = 1024 * 1024;
// A PUB size field with more digits than this is refused as a bad size (as nats-server).
inline constexpr size_t kMaxSizeDigits = 9;

// Client ops (case-insensitive on the wire). INFO and +OK from a client are read and
// ignored; -ERR from a client closes it, as nats-server does.
enum class Op : uint8_t { connect, pub, hpub, sub, unsub, ping, pong, info, ok, err };

enum class Status : uint8_t {
  ok,         // one whole op, `consumed` bytes
  need_more,  // not all there yet: `need` bytes in all (0: a line, size unknown)
  error,      // answer `err` (its text, if any) and close
};

// Errors that close the connection. Their -ERR texts are nats-server's; `silent` is a
// parse error nats-server answers by closing without a word (bad arguments to PUB, SUB).
enum class Err : uint8_t {
  none,
  unknown_op,        // 'Unknown Protocol Operation'
  max_control_line,  // 'maximum control line exceeded' (nats-server's lower case)
  max_payload,       // 'Maximum Payload Violation'
  silent,            // closed without -ERR
};

struct Limits {
  uint32_t max_payload = kDefaultMaxPayload;  // bytes of a PUB/HPUB payload, headers included
  bool headers = false;                       // HPUB allowed (the client's CONNECT said so)
};

struct Parsed {
  Status status = Status::need_more;
  Op op = Op::ping;
  Err err = Err::none;
  size_t consumed = 0;  // ok: bytes of the whole op (payload and its CRLF included)
  size_t need = 0;      // need_more: bytes the op needs in all, 0 while the line is partial
  // PUB/HPUB: subject, reply (may be empty), payload (headers first, hdr_len of them).
  // SUB: subject, queue (may be empty), sid. UNSUB: sid, max_msgs (0: none).
  // CONNECT / INFO: json (the argument).
  std::string_view subject, reply, queue, sid, json;
  std::span<const uint8_t> payload;
  uint32_t hdr_len = 0;
  uint64_t max_msgs = 0;
};

// One op from the start of `in`.
Parsed parse(std::span<const uint8_t> in, const Limits& limits);

// The -ERR text of a closing error ('' included); empty for Err::none and Err::silent.
std::string_view error_text(Err e);

// nats-server's IsValidSubject: non-empty tokens separated by '.', no white space, '>' only
// as the last token. '*' and '>' are wildcards only as whole tokens ("a*" is literal).
bool valid_subject(std::string_view s);
// IsValidLiteralSubject: valid, with no wildcard token.
bool valid_literal_subject(std::string_view s);
bool has_wildcard(std::string_view s);
// Whether literal subject `subject` matches subscription `filter` ('*' one token, '>' one
// or more trailing tokens). A filter token "*" or ">" in a published subject is matched
// like any other token, so a literal "a.*" matches filters "a.*" and "a.>" only literally
// or by wildcard, as in nats-server.
bool subject_matches(std::string_view filter, std::string_view subject);

// The CONNECT options the server acts on. Absent keys keep their previous value, as
// nats-server's json.Unmarshal into the connection's options does (so a client that never
// says verbose:false stays verbose). Strings point into the json text.
struct ConnectOpts {
  bool verbose = true;
  bool pedantic = true;
  bool echo = true;
  bool headers = false;
  bool no_responders = false;
  std::string_view user, pass, auth_token, name;
  bool user_set = false, pass_set = false, token_set = false;
};
// Reads a CONNECT argument over `o`; false when it is not a JSON object (nats-server closes).
// Strings holding escapes are kept raw (between the quotes), so "a\"b" compares as a\"b.
bool parse_connect(std::string_view json, ConnectOpts& o);

// --- encoders: each returns bytes written, or 0 when `out` is too small ---

// MSG <subject> <sid> [reply] <size>\r\n (the caller appends payload + CRLF).
size_t encode_msg_head(std::span<char> out, std::string_view subject, std::string_view sid,
                       std::string_view reply, size_t size);
// HMSG <subject> <sid> [reply] <hdr> <total>\r\n
size_t encode_hmsg_head(std::span<char> out, std::string_view subject, std::string_view sid,
                        std::string_view reply, size_t hdr, size_t total);
// The same heads written straight into a connection's output: msg_head_size() is the exact
// byte count and write_msg_head() writes exactly that many at out (no bound to check: the
// caller reserved them). hdr == nullptr: MSG; else HMSG with *hdr header bytes.
size_t msg_head_size(std::string_view subject, std::string_view sid, std::string_view reply,
                     const size_t* hdr, size_t total);
void write_msg_head(char* out, std::string_view subject, std::string_view sid,
                    std::string_view reply, const size_t* hdr, size_t total);
// Bytes encode_msg_head/encode_hmsg_head may need at most for these fields.
inline constexpr size_t msg_head_max(size_t subject, size_t sid, size_t reply) {
  return 5 + subject + 1 + sid + 1 + reply + 1 + 20 + 1 + 20 + 2;
}
// -ERR '<text>'\r\n
size_t encode_err(std::span<char> out, std::string_view text);

inline constexpr std::string_view kOk = "+OK\r\n";
inline constexpr std::string_view kPing = "PING\r\n";
inline constexpr std::string_view kPong = "PONG\r\n";
// The no-responders status, headers only: HMSG <reply> <sid> 16 16\r\n + this + \r\n.
inline constexpr std::string_view kNoRespondersHdr = "NATS/1.0 503\r\n\r\n";

// nats-server's error texts sent without closing, and with closing for the service's own
// reasons.
inline constexpr std::string_view kErrInvalidSubject = "Invalid Subject";
inline constexpr std::string_view kErrInvalidPubSubject = "Invalid Publish Subject";
inline constexpr std::string_view kErrAuth = "Authorization Violation";
inline constexpr std::string_view kErrMaxSubs = "Maximum Subscriptions Exceeded";
inline constexpr std::string_view kErrMaxConns = "maximum connections exceeded";
inline constexpr std::string_view kErrSlowConsumer = "Slow Consumer";
inline constexpr std::string_view kErrStale = "Stale Connection";
inline constexpr std::string_view kErrNoRespondersNeedsHeaders =
    "no responders requires headers support";

}  // namespace cw::pubsub::proto
