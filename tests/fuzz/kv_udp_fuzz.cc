// libFuzzer target: memcached's UDP frame. A datagram's header parses without reading past
// it; its payload parses as a request stream (tests/fuzz/kv_fuzz_check.hh); and the
// datagram, taken as a reply, splits into frames that carry it back whole and in order.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/fuzz/kv_fuzz_check.hh"

namespace kp = cw::kv::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> d(data, size);
  const kp::UdpFrame f = kp::parse_udp(d);
  if (f.status == kp::UdpStatus::ok) {
    KV_CHECK(size > kp::kUdpHeaderSize && f.header.total == 1);
    KV_CHECK(f.payload.data() == data + kp::kUdpHeaderSize);
    KV_CHECK(f.payload.size() == size - kp::kUdpHeaderSize);
    uint8_t h[kp::kUdpHeaderSize];
    kp::encode_udp_header(h, f.header);
    KV_CHECK(std::memcmp(h, data, kp::kUdpHeaderSize) == 0);
    kp::fuzz::check_stream({reinterpret_cast<const char*>(f.payload.data()), f.payload.size()});
  } else {
    KV_CHECK(size <= kp::kUdpHeaderSize || f.header.total != 1);
  }
  const uint16_t total = kp::udp_datagram_count(size);
  KV_CHECK(total == (size + kp::kUdpMaxPayload - 1) / kp::kUdpMaxPayload);
  static uint8_t out[kp::kUdpMaxDatagram];
  size_t at = 0;
  for (uint16_t seq = 0; seq < total; ++seq) {
    const size_t n = kp::udp_datagram(out, 0x5a5a, d, seq);
    KV_CHECK(n > kp::kUdpHeaderSize && n <= kp::kUdpMaxDatagram);
    const kp::UdpFrame g = kp::parse_udp({out, n});
    KV_CHECK(g.header.request_id == 0x5a5a && g.header.seq == seq && g.header.total == total);
    KV_CHECK(std::memcmp(out + kp::kUdpHeaderSize, data + at, n - kp::kUdpHeaderSize) == 0);
    at += n - kp::kUdpHeaderSize;
  }
  KV_CHECK(at == size && kp::udp_datagram(out, 0, d, total) == 0);
  return 0;
}
