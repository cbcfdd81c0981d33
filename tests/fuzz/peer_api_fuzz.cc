// libFuzzer target: arbitrary frames into the peer API (app/services/peer/api.hh) as the peer
// service hands them over, over an endpoint with real credentials (control/cluster_certs.hh)
// but no session, so requests are kept for the service and answers find nothing pending.
// Each input is a few records, each one frame:
//
//   u8 ctl | u16 channel (big-endian) | u16 len (big-endian) | len bytes
//
// ctl bit 0: response (else request); bits 1..2: the stream (0..1 ours, 2..3 the peer's);
// bit 3: poll channel 7 afterwards; bits 4..7: milliseconds the clock moves. Channel 7 is
// open with the smallest inbox, so its ring wraps and fills. Checks: what poll hands over
// is a request of at most kMaxApiBody bytes, the requests polled never exceed those counted
// served, and nothing crashes or hangs (a run is bounded by kMaxRecords).
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/services/peer/api.hh"
#include "tests/fuzz/peer_fuzz_tls.hh"

#define PEER_CHECK(c)       \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

namespace {

using namespace cw::peer;

constexpr size_t kMaxRecords = 256;
const TlsContext* g_tls = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tls = fuzz_tls();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  QuicEndpoint ep(fuzz_endpoint_config(), g_tls);
  Api api(ep, ApiConfig{});
  if (!api.open_channel(7, {.max_pending = 16, .inbox_bytes = 0})) std::abort();
  uint64_t now = 1'000'000'000, polled = 0;
  auto poll = [&] {
    api.poll(7, [&](const ApiMessage& m) {
      PEER_CHECK(m.event == Event::request && m.body.size() <= kMaxApiBody);
      ++polled;
    });
  };
  size_t at = 0;
  for (size_t r = 0; r < kMaxRecords && at + 5 <= size; ++r) {
    const uint8_t ctl = data[at];
    const uint16_t channel = uint16_t(data[at + 1] << 8 | data[at + 2]);
    const size_t len =
        std::min({size_t(data[at + 3] << 8 | data[at + 4]), size - at - 5, size_t(kMaxFrameBody)});
    const std::span<const uint8_t> body(data + at + 5, len);
    at += 5 + len;
    now += uint64_t(ctl >> 4) * 1'000'000;
    const FrameHeader h{uint32_t(len), ctl & 1 ? FrameKind::response : FrameKind::request, channel};
    api.on_frame(uint32_t(ctl >> 1 & 1), (ctl >> 1) & 3, h, body, now);
    if (ctl & 8) poll();
    api.tick(now);
    PEER_CHECK(polled <= api.counters()[kApiServed]);
  }
  poll();
  PEER_CHECK(polled == api.counters()[kApiServed]);
  return 0;
}
