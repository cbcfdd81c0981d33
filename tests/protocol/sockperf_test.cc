// The sockperf codec against bytes captured from the Debian sockperf 3.7 client and server
// (docs/protocol.md), plus boundaries and garbage.
#include "app/protocol/sockperf.hh"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cw::proto::sockperf {
namespace {

std::vector<uint8_t> hex(const std::string& h) {
  std::vector<uint8_t> v;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    v.push_back(uint8_t(std::stoul(h.substr(i, 2), nullptr, 16)));
  return v;
}

std::vector<uint8_t> message(uint64_t seq, uint16_t flags, uint32_t len, size_t have = ~size_t{0}) {
  std::vector<uint8_t> v(have == ~size_t{0} ? std::max<uint32_t>(len, kHeaderSize) : have, 0);
  std::vector<uint8_t> h(kHeaderSize);
  encode_header(h.data(), {seq, flags, len});
  for (size_t i = 0; i < kHeaderSize && i < v.size(); ++i) v[i] = h[i];
  for (size_t i = kHeaderSize; i < v.size(); ++i) v[i] = uint8_t(i * 7);
  return v;
}

TEST(SockperfCodec, ParsesACapturedPingPongRequest) {
  // `sockperf ping-pong -m 14`: the 7th datagram on the wire.
  const auto b = hex("000000000000000700030000000e");
  const Frame f = parse(b);
  ASSERT_EQ(f.status, Status::ok);
  EXPECT_EQ(f.header.seq, 7u);
  EXPECT_EQ(f.header.flags, kClient | kPongRequest);
  EXPECT_EQ(f.header.len, 14u);
  EXPECT_EQ(f.frame_len, 14u);
  EXPECT_TRUE(wants_reply(f.header));
}

TEST(SockperfCodec, EncodesTheCapturedLayout) {
  uint8_t out[kHeaderSize];
  encode_header(out, {0x0102030405060708, 0x0013, 20});
  EXPECT_EQ(std::vector<uint8_t>(out, out + kHeaderSize), hex("0102030405060708001300000014"));
}

TEST(SockperfCodec, ReplyClearsOnlyTheClientBitLikeTheStockServer) {
  // Captured from `sockperf server`: 0003 -> 0002 and 0013 -> 0012, payload unchanged.
  auto m = hex("0000000000000008000300000014616263646566");
  make_reply(m.data());
  EXPECT_EQ(m, hex("0000000000000008000200000014616263646566"));
  auto m2 = hex("000000000000001400130000000e");
  make_reply(m2.data());
  EXPECT_EQ(m2, hex("000000000000001400120000000e"));
}

TEST(SockperfCodec, WantsReplyOnlyForClientPongWithoutWarmup) {
  for (uint32_t f = 0; f < 0x20; ++f) {
    const bool want = (f & 7) == 3;
    EXPECT_EQ(wants_reply({1, uint16_t(f), 14}), want) << f;
  }
  EXPECT_FALSE(wants_reply({1, 0x0001, 14})) << "throughput / under-load without pong";
  EXPECT_FALSE(wants_reply({1, 0x0007, 14})) << "warm-up";
}

TEST(SockperfCodec, LengthBoundaries) {
  for (uint32_t len : {0u, 1u, 5u, 13u, kMaxMessage + 1, 70000u, 0xFFFFFFFFu}) {
    const auto b = message(1, 3, len, kHeaderSize);
    EXPECT_EQ(parse(b).status, Status::bad_length) << len;
  }
  for (uint32_t len : {14u, 15u, 1000u, kMaxMessage}) {
    const auto b = message(1, 3, len);
    const Frame f = parse(b);
    ASSERT_EQ(f.status, Status::ok) << len;
    EXPECT_EQ(f.frame_len, len);
  }
}

TEST(SockperfCodec, TruncatedHeaderAndBodyNeedMore) {
  const auto whole = message(9, 3, 40);
  for (size_t n = 0; n < whole.size(); ++n) {
    const Frame f = parse(std::span(whole.data(), n));
    EXPECT_EQ(f.status, Status::need_more) << n;
    EXPECT_EQ(f.frame_len, 0u);
    if (n >= kHeaderSize) {
      EXPECT_EQ(f.header.len, 40u) << "header known once whole";
    }
  }
  EXPECT_EQ(parse(whole).status, Status::ok);
}

TEST(SockperfCodec, TrailingBytesAreNotPartOfTheFrame) {
  auto b = message(1, 3, 14);
  b.resize(14 + 6, 'X');
  const Frame f = parse(b);
  ASSERT_EQ(f.status, Status::ok);
  EXPECT_EQ(f.frame_len, 14u);
}

TEST(SockperfCodec, GarbageNeverClaimsMoreThanItHas) {
  std::mt19937 rng(42);
  std::vector<uint8_t> b(64);
  int ok = 0, bad = 0;
  for (int i = 0; i < 20000; ++i) {
    const size_t n = rng() % b.size();
    for (auto& x : b) x = uint8_t(rng());
    if (i % 3 == 0 && n >= kHeaderSize) {  // make plausible lengths common
      b[10] = b[11] = 0;
      b[12] = 0;
      b[13] = uint8_t(rng() % 80);
    }
    const Frame f = parse(std::span(b.data(), n));
    if (f.status == Status::ok) {
      ++ok;
      EXPECT_LE(f.frame_len, n);
      EXPECT_GE(f.frame_len, kHeaderSize);
      EXPECT_EQ(f.frame_len, f.header.len);
    } else {
      bad += f.status == Status::bad_length;
      EXPECT_EQ(f.frame_len, 0u);
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(bad, 0);
}

}  // namespace
}  // namespace cw::proto::sockperf
