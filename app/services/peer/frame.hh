// The peer service's stream framing (docs/cluster.md): every message on a peer stream is an
// 8-byte header and a body. Pure functions over bytes, no state; fuzzed (tests/fuzz).
//
//   0      4     5      6        8
//   | len | kind | flags | channel | body (len bytes)
//
// len: body bytes, big-endian, at most kMaxFrameBody. kind: request or response. flags: 0
// (reserved). channel: big-endian, the service on the receiving node the frame is for
// (kChannelEcho answers every request with its body; kChannelSink consumes it). Responses
// come back on the stream the request went out on, in request order.
#pragma once

#include <cstdint>
#include <span>

namespace cw::peer {

inline constexpr uint32_t kFrameHeader = 8;
inline constexpr uint32_t kMaxFrameBody = 16 * 1024;  // larger requests go as several frames
inline constexpr uint16_t kChannelEcho = 0;
// Requests on the sink channel are consumed and counted, never answered: the bulk probe's
// (and the kernel TCP reference's, bench/reference/peer_tcp.cc) one-way traffic.
inline constexpr uint16_t kChannelSink = 0xffff;

enum class FrameKind : uint8_t { request = 1, response = 2 };

struct FrameHeader {
  uint32_t len = 0;
  FrameKind kind = FrameKind::request;
  uint16_t channel = kChannelEcho;
};

enum class FrameStatus : uint8_t {
  ok,       // a whole frame (header and body) is at the front of the input
  partial,  // the front is a valid prefix of a frame: wait for more bytes
  bad,      // not a frame (len too large, unknown kind, flags set): the stream is unusable
};

// Reads the frame at the front of `in` into h (set when ok or partial with a whole header).
FrameStatus parse_frame(std::span<const uint8_t> in, FrameHeader& h);

// Writes h as kFrameHeader bytes at out.
void write_frame_header(uint8_t* out, const FrameHeader& h);

}  // namespace cw::peer
