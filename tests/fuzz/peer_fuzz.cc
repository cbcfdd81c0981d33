// libFuzzer target: arbitrary datagrams into one worker's QUIC peer endpoint
// (app/services/peer/endpoint.hh), with real credentials (a CA and a node certificate made
// at start-up by control/cluster_certs.hh) so Initials get as far as the TLS handshake. The
// endpoint accepts on its server port and has one session dialing out, so both roles see the
// input. Each input is a few records, each one datagram:
//
//   u16 len (big-endian) | u8 ctl | len bytes
//
// ctl bit 0: it arrives on the client port (the dialed session's) instead of the server
// port; bits 1..7: milliseconds the clock moves first (deadlines that pass run). After each
// datagram the endpoint flushes and the streams and QUIC datagrams are drained (requests and
// datagrams echoed). Checks: what
// it sends fits a QUIC packet, the outbox never overflows, the session gauge stays within the
// slots, and nothing crashes or hangs (a run is bounded by kMaxRecords).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/services/peer/endpoint.hh"
#include "tests/fuzz/peer_fuzz_tls.hh"

#define PEER_CHECK(c)       \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

namespace {

using namespace cw::peer;

constexpr size_t kMaxRecords = 64;
constexpr cw::dp::Endpoint kPeer = kFuzzPeer;

const TlsContext* g_tls = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tls = fuzz_tls();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  QuicEndpoint ep(fuzz_endpoint_config(), g_tls);
  uint64_t now = 1'000'000'000;
  ep.start(now);
  size_t at = 0;
  for (size_t r = 0; r < kMaxRecords && at + 3 <= size; ++r) {
    const size_t len = std::min(size_t(data[at] << 8 | data[at + 1]), size - at - 3);
    const uint8_t ctl = data[at + 2];
    const uint8_t* dgram = data + at + 3;
    at += 3 + len;
    now += uint64_t(ctl >> 1) * 1'000'000;
    for (uint32_t s = 0; s < ep.slots(); ++s)
      if (ep.expiry(s) <= now) ep.on_expiry(s, now);
    ep.on_datagram(ctl & 1 ? Via::client : Via::server, kPeer, dgram, len, now);
    ep.drain_frames(
        [&](uint32_t slot, unsigned st, const FrameHeader& h, std::span<const uint8_t> body) {
          if (h.kind != FrameKind::request) return true;
          return ep.send_frame(slot, st, {h.len, FrameKind::response, h.channel}, body);
        });
    ep.flush(now);
    PEER_CHECK(ep.outbox().size() <= kOutboxPackets);
    for (const OutPacket& p : ep.outbox()) PEER_CHECK(p.len > 0 && p.len <= kMaxUdpPayload);
    ep.clear_outbox();
    ep.clear_timer_changes();
    PEER_CHECK(ep.counters()[kSessionsOpen] <= ep.slots());
  }
  return 0;
}
