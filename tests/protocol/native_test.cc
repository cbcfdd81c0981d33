// The native codec: exact layout, round trips at boundary sizes, every status and error.
#include "app/protocol/native.hh"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cw::proto::native {
namespace {

std::vector<uint8_t> hex(const std::string& h) {
  std::vector<uint8_t> v;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    v.push_back(uint8_t(std::stoul(h.substr(i, 2), nullptr, 16)));
  return v;
}

std::vector<uint8_t> message(Header h, uint32_t payload) {
  std::vector<uint8_t> p(payload);
  for (uint32_t i = 0; i < payload; ++i) p[i] = uint8_t(i * 31 + 7);
  std::vector<uint8_t> out(kHeaderSize + payload);
  EXPECT_EQ(encode_message(out.data(), h, p), out.size());
  return out;
}

Header req(uint64_t id = 0x1122334455667788, uint16_t service = 1) {
  Header h;
  h.kind = Kind::request;
  h.service = service;
  h.request_id = id;
  return h;
}

TEST(NativeCodec, HeaderLayoutIsBigEndianAsSpecified) {
  Header h;
  h.kind = Kind::oneway;
  h.service = 0x0102;
  h.request_id = 0x0A0B0C0D0E0F1011;
  h.payload_len = 0x00000305;
  uint8_t out[kHeaderSize];
  encode_header(out, h);
  EXPECT_EQ(std::vector<uint8_t>(out, out + kHeaderSize), hex("4357"
                                                              "01"
                                                              "02"
                                                              "0102"
                                                              "0000"
                                                              "0a0b0c0d0e0f1011"
                                                              "00000305"
                                                              "00000000"));
}

TEST(NativeCodec, RoundTripsAtBoundarySizes) {
  for (uint32_t n : {0u, 1u, 13u, 14u, 23u, 24u, 1000u, kMaxPayload}) {
    const auto m = message(req(n), n);
    const Decoded d = decode(m);
    ASSERT_EQ(d.status, Status::ok) << n;
    EXPECT_EQ(d.header.kind, Kind::request);
    EXPECT_EQ(d.header.service, 1u);
    EXPECT_EQ(d.header.request_id, n);
    EXPECT_EQ(d.header.payload_len, n);
    EXPECT_EQ(d.frame_len, kHeaderSize + n);
    ASSERT_EQ(d.payload.size(), n);
    EXPECT_EQ(d.payload.data(), m.data() + kHeaderSize) << "payload points into the input";
  }
  EXPECT_EQ(kHeaderSize + kMaxPayload, 65507u) << "a whole message fits one UDP datagram";
}

TEST(NativeCodec, EveryKindRoundTrips) {
  for (Kind k : {Kind::request, Kind::response, Kind::oneway, Kind::error}) {
    Header h = req();
    h.kind = k;
    const auto m = message(h, 3);
    const Decoded d = decode(m);
    ASSERT_EQ(d.status, Status::ok);
    EXPECT_EQ(d.header.kind, k);
  }
}

TEST(NativeCodec, ErrorMessageAnswersItsRequest) {
  for (ErrorCode c : {ErrorCode::bad_version, ErrorCode::bad_kind, ErrorCode::too_large,
                      ErrorCode::unknown_service, ErrorCode::bad_reserved, ErrorCode::truncated,
                      ErrorCode::unavailable}) {
    uint8_t out[kErrorSize];
    ASSERT_EQ(encode_error(out, req(77, 9), c), kErrorSize);
    EXPECT_EQ(out[2], kVersion) << "errors carry the highest version we speak";
    const Decoded d = decode({out, kErrorSize});
    ASSERT_EQ(d.status, Status::ok);
    EXPECT_EQ(d.header.kind, Kind::error);
    EXPECT_EQ(d.header.request_id, 77u);
    EXPECT_EQ(d.header.service, 9u);
    ASSERT_EQ(d.payload.size(), 2u);
    EXPECT_EQ(uint16_t(d.payload[0] << 8 | d.payload[1]), uint16_t(c));
  }
}

TEST(NativeCodec, BadMagicIsSeenOnTheFirstWrongByte) {
  const uint8_t one[] = {'G'};
  EXPECT_EQ(decode(one).status, Status::bad_magic);
  const uint8_t two[] = {0x43, 0x00};
  EXPECT_EQ(decode(two).status, Status::bad_magic);
  auto m = message(req(), 4);
  m[1] = 0x58;
  EXPECT_EQ(decode(m).status, Status::bad_magic);
  const uint8_t http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(decode(http).status, Status::bad_magic);
}

TEST(NativeCodec, TruncatedHeaderNeedsMoreAndPayloadShortKeepsTheHeader) {
  const auto m = message(req(5), 10);
  for (size_t n = 0; n < m.size(); ++n) {
    const Decoded d = decode(std::span(m.data(), n));
    EXPECT_EQ(d.status, Status::need_more) << n;
    EXPECT_EQ(d.frame_len, 0u);
    EXPECT_TRUE(d.payload.empty());
    if (n >= kHeaderSize) {
      EXPECT_EQ(d.header.request_id, 5u) << "a short payload still has a whole header";
      EXPECT_EQ(d.header.payload_len, 10u);
    }
  }
  EXPECT_EQ(error_for(Status::need_more), ErrorCode::truncated);
}

TEST(NativeCodec, EachBrokenHeaderHasItsStatusAndError) {
  struct Case {
    const char* name;
    size_t off;
    uint8_t val;
    Status st;
    ErrorCode code;
  };
  const Case cases[] = {
      {"version 0", 2, 0, Status::bad_version, ErrorCode::bad_version},
      {"version 2", 2, 2, Status::bad_version, ErrorCode::bad_version},
      {"kind 4", 3, 4, Status::bad_kind, ErrorCode::bad_kind},
      {"kind 255", 3, 255, Status::bad_kind, ErrorCode::bad_kind},
      {"flags", 7, 1, Status::bad_reserved, ErrorCode::bad_reserved},
      {"flags high", 6, 0x80, Status::bad_reserved, ErrorCode::bad_reserved},
      {"reserved", 23, 1, Status::bad_reserved, ErrorCode::bad_reserved},
      {"reserved high", 20, 0x80, Status::bad_reserved, ErrorCode::bad_reserved},
      {"length 2^32-1", 16, 0xFF, Status::too_large, ErrorCode::too_large},
  };
  for (const Case& c : cases) {
    auto m = message(req(99), 0);
    m[c.off] = c.val;
    const Decoded d = decode(m);
    EXPECT_EQ(d.status, c.st) << c.name;
    EXPECT_EQ(d.header.request_id, 99u) << c.name << ": header readable for the error reply";
    EXPECT_EQ(error_for(d.status), c.code) << c.name;
    EXPECT_EQ(d.frame_len, 0u);
  }
}

TEST(NativeCodec, PayloadLengthLimit) {
  auto m = message(req(), 0);
  m[16] = 0;
  m[17] = uint8_t((kMaxPayload + 1) >> 16);
  m[18] = uint8_t((kMaxPayload + 1) >> 8);
  m[19] = uint8_t(kMaxPayload + 1);
  EXPECT_EQ(decode(m).status, Status::too_large) << "rejected from the header alone";
  m[19] = uint8_t(kMaxPayload);
  EXPECT_EQ(decode(m).status, Status::need_more) << "kMaxPayload itself is fine";
}

TEST(NativeCodec, VersionIsCheckedBeforeTheRest) {
  auto m = message(req(), 0);
  m[2] = 2;
  m[3] = 200;
  m[7] = 1;
  EXPECT_EQ(decode(m).status, Status::bad_version) << "a newer version may define those";
}

TEST(NativeCodec, TrailingBytesAreNotConsumed) {
  auto m = message(req(), 5);
  const auto second = message(req(2), 1);
  m.insert(m.end(), second.begin(), second.end());
  const Decoded d = decode(m);
  ASSERT_EQ(d.status, Status::ok);
  EXPECT_EQ(d.frame_len, kHeaderSize + 5);
  const Decoded d2 = decode(std::span(m).subspan(d.frame_len));
  ASSERT_EQ(d2.status, Status::ok);
  EXPECT_EQ(d2.header.request_id, 2u);
}

TEST(NativeCodec, GarbageNeverClaimsMoreThanItHas) {
  std::mt19937 rng(7);
  std::vector<uint8_t> b(80);
  int ok = 0;
  for (int i = 0; i < 50000; ++i) {
    const size_t n = rng() % b.size();
    for (auto& x : b) x = uint8_t(rng());
    // Keep the magic and most of the v1 rules often, so deeper checks are reached.
    if (i % 2) {
      b[0] = 0x43, b[1] = 0x57;
      if (i % 4 == 1) b[2] = 1, b[3] &= 3, b[6] = b[7] = 0, b[20] = b[21] = b[22] = b[23] = 0;
      if (i % 8 == 1) b[16] = b[17] = b[18] = 0, b[19] &= 63;
    }
    const Decoded d = decode(std::span(b.data(), n));
    if (d.status == Status::ok) {
      ++ok;
      EXPECT_LE(d.frame_len, n);
      EXPECT_EQ(d.frame_len, kHeaderSize + d.payload.size());
      EXPECT_GE(d.payload.data(), b.data());
      EXPECT_LE(d.payload.data() + d.payload.size(), b.data() + n);
    } else {
      EXPECT_EQ(d.frame_len, 0u);
      EXPECT_TRUE(d.payload.empty());
    }
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace cw::proto::native
