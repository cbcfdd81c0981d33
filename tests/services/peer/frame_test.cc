// The peer stream framing (app/services/peer/frame.hh).
#include "app/services/peer/frame.hh"

#include <gtest/gtest.h>

#include <vector>

namespace cw::peer {
namespace {

std::vector<uint8_t> frame(uint32_t len, FrameKind k, uint16_t ch) {
  std::vector<uint8_t> v(kFrameHeader + len, 0xab);
  write_frame_header(v.data(), {len, k, ch});
  return v;
}

TEST(PeerFrame, RoundTrip) {
  const auto v = frame(300, FrameKind::response, 0x1234);
  FrameHeader h;
  ASSERT_EQ(parse_frame(v, h), FrameStatus::ok);
  EXPECT_EQ(h.len, 300u);
  EXPECT_EQ(h.kind, FrameKind::response);
  EXPECT_EQ(h.channel, 0x1234);
}

TEST(PeerFrame, EveryPrefixIsPartial) {
  const auto v = frame(20, FrameKind::request, 0);
  for (size_t n = 0; n < v.size(); ++n) {
    FrameHeader h;
    EXPECT_EQ(parse_frame(std::span(v.data(), n), h), FrameStatus::partial) << n;
  }
}

TEST(PeerFrame, BadHeadersFailEarly) {
  FrameHeader h;
  auto big = frame(0, FrameKind::request, 0);
  big[1] = 0x01;  // 65536 bytes: above kMaxFrameBody
  EXPECT_EQ(parse_frame(std::span(big.data(), 4), h), FrameStatus::bad);
  auto kind = frame(0, FrameKind::request, 0);
  kind[4] = 7;
  EXPECT_EQ(parse_frame(std::span(kind.data(), 5), h), FrameStatus::bad);
  auto flags = frame(0, FrameKind::request, 0);
  flags[5] = 1;
  EXPECT_EQ(parse_frame(flags, h), FrameStatus::bad);
  EXPECT_EQ(parse_frame(frame(kMaxFrameBody, FrameKind::request, 0), h), FrameStatus::ok);
}

}  // namespace
}  // namespace cw::peer
