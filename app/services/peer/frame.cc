// The peer stream framing (frame.hh).
#include "app/services/peer/frame.hh"

namespace cw::peer {

FrameStatus parse_frame(std::span<const uint8_t> in, FrameHeader& h) {
  if (in.size() < kFrameHeader) {
    // What there is of the header must already be valid, so garbage fails early.
    if (in.size() >= 4) {
      const uint32_t len =
          uint32_t{in[0]} << 24 | uint32_t{in[1]} << 16 | uint32_t{in[2]} << 8 | in[3];
      if (len > kMaxFrameBody) return FrameStatus::bad;
    }
    if (in.size() >= 5 && in[4] != uint8_t(FrameKind::request) &&
        in[4] != uint8_t(FrameKind::response))
      return FrameStatus::bad;
    if (in.size() >= 6 && in[5] != 0) return FrameStatus::bad;
    return FrameStatus::partial;
  }
  const uint32_t len = uint32_t{in[0]} << 24 | uint32_t{in[1]} << 16 | uint32_t{in[2]} << 8 | in[3];
  if (len > kMaxFrameBody) return FrameStatus::bad;
  if (in[4] != uint8_t(FrameKind::request) && in[4] != uint8_t(FrameKind::response))
    return FrameStatus::bad;
  if (in[5] != 0) return FrameStatus::bad;
  h.len = len;
  h.kind = FrameKind(in[4]);
  h.channel = uint16_t(in[6] << 8 | in[7]);
  return in.size() - kFrameHeader >= len ? FrameStatus::ok : FrameStatus::partial;
}

void write_frame_header(uint8_t* out, const FrameHeader& h) {
  out[0] = uint8_t(h.len >> 24);
  out[1] = uint8_t(h.len >> 16);
  out[2] = uint8_t(h.len >> 8);
  out[3] = uint8_t(h.len);
  out[4] = uint8_t(h.kind);
  out[5] = 0;
  out[6] = uint8_t(h.channel >> 8);
  out[7] = uint8_t(h.channel);
}

}  // namespace cw::peer
