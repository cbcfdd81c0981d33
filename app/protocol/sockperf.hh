// sockperf's wire message (the Debian `sockperf` tool, client side), so its unmodified
// client can measure corewire. Pure functions over bytes.
//
//   off size field
//     0    8  sequence number
//     8    2  flags   0x1 client, 0x2 pong-request, 0x4 warm-up
//    10    4  total message length, header included
//   (byte order: see docs/protocol.md, verified against a capture of the real client)
// A server answers a message that has client and pong-request set and warm-up clear by
// sending the same bytes back with the client bit cleared; it ignores every other message.
// On TCP the length field frames the stream.
#pragma once

#include <cstdint>
#include <span>

namespace cw::proto::sockperf {

inline constexpr uint32_t kHeaderSize = 14;
inline constexpr uint16_t kClient = 0x1;
inline constexpr uint16_t kPongRequest = 0x2;
inline constexpr uint16_t kWarmup = 0x4;
inline constexpr uint32_t kMaxMessage = 65507;  // sockperf's own upper bound (-m)

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
  Header header;
  uint32_t frame_len = 0;  // ok only
};

Frame parse(std::span<const uint8_t> bytes);
void encode_header(uint8_t* out, const Header& h);
inline bool wants_reply(const Header& h) {
  return (h.flags & (kClient | kPongRequest | kWarmup)) == (kClient | kPongRequest);
}
// Turns a copied request (at msg, at least kHeaderSize bytes) into its reply in place.
void make_reply(uint8_t* msg);

}  // namespace cw::proto::sockperf
