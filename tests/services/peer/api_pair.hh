// Two endpoints joined in memory (two_endpoints.hh) with a peer API over each, for the API's
// tests and kv's cluster tests: A dials B. feed() hands each endpoint's received frames to
// its Api and runs both Apis' ticks (what the peer service's pump and tick do); round() then
// moves the packets. Certificates must exist (NEED_CERTS first).
#pragma once

#include <memory>

#include "app/services/peer/api.hh"
#include "tests/services/peer/two_endpoints.hh"

namespace cw::peer::test {

struct ApiPair {
  TlsContext ta, tb;
  std::unique_ptr<QuicEndpoint> a, b;
  std::unique_ptr<Api> aa, ab;
  std::unique_ptr<Net> net;

  ApiPair(const ApiConfig& ca, const ApiConfig& cb, uint64_t start_ns = 1'000'000'000) {
    EXPECT_EQ(ta.load(certs().f("a.pem"), certs().f("a.key"), certs().f("ca.pem")), "");
    EXPECT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
    a = std::make_unique<QuicEndpoint>(dialer(), &ta);
    b = std::make_unique<QuicEndpoint>(acceptor(), &tb);
    aa = std::make_unique<Api>(*a, ca);
    ab = std::make_unique<Api>(*b, cb);
    net = std::make_unique<Net>(Net{*a, *b, start_ns});
    a->start(now());
    for (int i = 0; i < 200 && !(a->is_open(0) && b->counters()[kSessionsUp] == 1); ++i) round();
  }
  explicit ApiPair(uint64_t timeout_ns = 10'000'000'000)
      : ApiPair(config(timeout_ns), config(timeout_ns)) {}
  static ApiConfig config(uint64_t timeout_ns) {
    ApiConfig c;
    c.timeout_ns = timeout_ns;
    return c;
  }

  uint64_t now() const { return net->now; }
  void feed() {
    a->drain_frames(
        [&](uint32_t s, unsigned st, const FrameHeader& h, std::span<const uint8_t> body) {
          return aa->on_frame(s, st, h, body, now());
        });
    b->drain_frames(
        [&](uint32_t s, unsigned st, const FrameHeader& h, std::span<const uint8_t> body) {
          return ab->on_frame(s, st, h, body, now());
        });
    aa->tick(now());
    ab->tick(now());
  }
  void round(uint64_t step_ns = 200'000) {
    feed();
    net->round(step_ns);
  }
  // B's slot of the session A dialed.
  uint32_t b_slot() const {
    for (uint32_t s = b->client_slots(); s < b->slots(); ++s)
      if (b->is_open(s)) return s;
    return UINT32_MAX;
  }
};

}  // namespace cw::peer::test
