// corewire-bench's NATS dialect, the pure part: what a publisher writes (CONNECT, SUB, PUB
// with a time stamp at the head of its payload, PING) and a streaming parser of what the
// server sends a client (INFO, MSG, HMSG, PING, PONG, +OK, -ERR). No I/O, no allocation;
// fuzzed by tests/fuzz/nats_reply_fuzz.cc.
//
// The parser keeps its state between reads in a fixed-size RxState, so a MSG may be split
// anywhere (inside its control line, its payload or its final CRLF): a control line is
// taken whole (it stays in the caller's buffer until its CRLF came, at most
// kMaxControlLine bytes), a payload is taken as it arrives and only its first kStampSize
// bytes are kept.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace cw::bench::nats {

inline constexpr uint32_t kMaxControlLine = 4096;         // nats-server's max_control_line
inline constexpr uint32_t kMaxPayload = 64u << 20;        // nats-server's largest max_payload
inline constexpr uint32_t kStampSize = 16;                // the payload head a publisher writes
inline constexpr uint64_t kMeasured = uint64_t{1} << 63;  // stamp word 2: measured flag
inline constexpr uint32_t kPubBits = 16;                  // stamp word 2: publisher id bits
inline constexpr uint64_t kSeqMask = (uint64_t{1} << (63 - kPubBits)) - 1;

// What a publisher puts at the head of every payload (little-endian, 16 bytes): the time
// the message was due (ns, the generator's monotonic clock) and who sent it (publisher id,
// per-publisher sequence number, whether it belongs to the measured phase).
struct Stamp {
  uint64_t intended_ns = 0;
  uint32_t pub = 0;  // < 2^kPubBits
  uint64_t seq = 0;  // <= kSeqMask
  bool measured = false;
};
void put_stamp(uint8_t* out, const Stamp& s);
Stamp get_stamp(const uint8_t* in);

// ---- client -> server -----------------------------------------------------------------
// CONNECT {...}\r\n (verbose and pedantic off, echo on, no headers); `name` unquoted safe.
uint32_t connect_size(std::string_view name);
uint32_t encode_connect(char* out, std::string_view name);
// SUB <subject> [queue] <sid>\r\n (queue empty: none).
uint32_t sub_size(std::string_view subject, std::string_view queue, uint32_t sid);
uint32_t encode_sub(char* out, std::string_view subject, std::string_view queue, uint32_t sid);
// PUB <subject> <payload>\r\n<payload>\r\n: the control line's size, then the whole size.
uint32_t pub_line_size(std::string_view subject, uint32_t payload);
inline uint32_t pub_size(std::string_view subject, uint32_t payload) {
  return pub_line_size(subject, payload) + payload + 2;
}
// Writes the control line only (pub_line_size bytes); the caller writes payload and CRLF.
uint32_t encode_pub_line(char* out, std::string_view subject, uint32_t payload);
inline constexpr std::string_view kPing = "PING\r\n";
inline constexpr std::string_view kPong = "PONG\r\n";

// ---- server -> client -----------------------------------------------------------------
enum class Ev : uint8_t { need_more, msg, ping, pong, ok, err, info, bad };

// Between reads, per connection. A default-constructed state is at a control line.
struct RxState {
  uint64_t remaining = 0;  // bytes of the current message (payload + CRLF) still to come
  uint32_t total = 0;      // its payload bytes (headers included for HMSG)
  uint32_t skip = 0;       // HMSG: header bytes before the payload proper
  uint32_t sid = 0;
  uint32_t head_have = 0;  // payload-proper bytes kept in head (<= kStampSize)
  uint8_t head[kStampSize] = {};
};

struct Event {
  Ev kind = Ev::need_more;
  uint32_t consumed = 0;  // bytes taken from the front of the input (any kind, need_more too)
};

// Takes bytes from the front of `in` until one server operation is complete (returned) or
// the input ends (need_more: whatever was taken is in st; call again with the bytes after
// `consumed` plus what arrives next). On msg, st.sid, st.total and st.head/head_have
// describe it (until the next call). bad: not the NATS server protocol (an unknown op, a
// control line over kMaxControlLine, a malformed MSG line, a payload over kMaxPayload, a
// payload not followed by CRLF); the connection should be dropped.
Event next(RxState& st, std::span<const uint8_t> in);

}  // namespace cw::bench::nats
