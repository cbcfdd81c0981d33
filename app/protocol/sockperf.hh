// sockperf's wire message (the Debian `sockperf` 3.7 tool), so its unmodified client can
// measure corewire. Pure functions over bytes: no I/O, no globals, no allocation.
//
//   off size field
//     0    8  sequence number
//     8    2  flags   0x1 client, 0x2 pong-request, 0x4 warm-up
//    10    4  total message length, header included (14 .. kMaxMessage)
//    14    .  payload (the client fills it with arbitrary bytes)
//   All integers big-endian (verified against the real client and server; the captures are
//   in docs/protocol.md).
// A server answers a message that has client and pong-request set and warm-up clear by
// sending the same bytes back with the client bit cleared (other flag bits are kept); it
// ignores every other message. On TCP the length field frames the stream.
#pragma once

#include <cstdint>
#include <span>

#include "app/protocol/be.hh"

namespace cw::proto::sockperf {

inline constexpr uint32_t kHeaderSize = 14;
inline constexpr uint16_t kClient = 0x1;
inline constexpr uint16_t kPongRequest = 0x2;
inline constexpr uint16_t kWarmup = 0x4;
// `sockperf server` rejects longer messages ("Message received was larger than expected")
// and its UDP client refuses -m above this; its TCP client allows up to 1048575, which the
// stock server does not accept either, so neither do we.
inline constexpr uint32_t kMaxMessage = 65507;

struct Header {
  uint64_t seq = 0;
  uint16_t flags = 0;
  uint32_t len = 0;  // whole message, header included
};

enum class Status : uint8_t {
  ok,
  need_more,   // fewer bytes than the header or than len (stream: wait; datagram: truncated)
  bad_length,  // len < kHeaderSize or len > kMaxMessage: not a sockperf stream (close/drop)
};

struct Frame {
  Status status = Status::need_more;
  Header header;           // filled whenever at least kHeaderSize bytes were given
  uint32_t frame_len = 0;  // ok only: == header.len
};

// Parses the message at the start of bytes (bytes may hold more after it). Inline, with
// make_reply: both run once per echoed message.
inline Frame parse(std::span<const uint8_t> bytes) {
  Frame f;
  if (bytes.size() < kHeaderSize) return f;  // need_more
  const uint8_t* p = bytes.data();
  f.header.seq = load_be<uint64_t>(p);
  f.header.flags = load_be<uint16_t>(p + 8);
  f.header.len = load_be<uint32_t>(p + 10);
  if (f.header.len < kHeaderSize || f.header.len > kMaxMessage) {
    f.status = Status::bad_length;
  } else if (bytes.size() >= f.header.len) {
    f.status = Status::ok;
    f.frame_len = f.header.len;
  }
  return f;
}
// Writes a header (kHeaderSize bytes) at out.
void encode_header(uint8_t* out, const Header& h);
inline bool wants_reply(const Header& h) {
  return (h.flags & (kClient | kPongRequest | kWarmup)) == (kClient | kPongRequest);
}
// flags is big-endian at offset 8: the client bit (0x1) lives in its low byte, offset 9.
inline constexpr uint32_t kFlagsLowByte = 9;
// Turns a copied request (at msg, at least kHeaderSize bytes) into its reply in place: only
// the byte at kFlagsLowByte changes; returns its new value.
inline uint8_t make_reply(uint8_t* msg) {
  const uint8_t now = uint8_t(msg[kFlagsLowByte] & ~kClient);
  msg[kFlagsLowByte] = now;
  return now;
}

}  // namespace cw::proto::sockperf
