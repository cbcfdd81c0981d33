// What the worker loop does for management, over the fake backend: the drain mail makes
// the backend stop accepting while open connections keep being served, and every request
// a service counts gets a latency sample (its burst's service time).
#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"
#include "tests/services/echo_fixture.hh"

namespace cw::svc::testing {
namespace {

namespace nt = proto::native;

Bytes native_request(uint64_t id) {
  nt::Header h;
  h.service = kEchoService;
  h.request_id = id;
  Bytes out(nt::kHeaderSize + 4, 0x11);
  nt::encode_message(out.data(), h, std::span(out.data() + nt::kHeaderSize, 4));
  return out;
}

uint64_t samples(const rt::LatencyHist& h) {
  uint64_t n = 0;
  for (const auto& b : h.bucket) n += b.get();
  return n;
}

using WorkerControl = EchoFixture;

TEST_F(WorkerControl, StopAcceptingRefusesNewConnectionsAndServesOpenOnes) {
  const dp::ConnId open = io.inject_open(kNtTcp, peer);
  run();
  control_mail(rt::kWorkerMail, rt::kMailStopAccepting);
  EXPECT_FALSE(io.accepting());
  EXPECT_EQ(io.inject_open(kNtTcp, peer), dp::kNoConn);
  const Bytes req = native_request(9);
  tcp(open, req);
  EXPECT_EQ(io.take_stream_out(open).size(), req.size()) << "the open connection is served";
  EXPECT_EQ(udp(kNtUdp, req).size(), 1u) << "UDP keeps being answered";
  control_mail(rt::kWorkerMail, rt::kMailStopAccepting);  // a second drain mail is harmless
  EXPECT_EQ(stats.mail_in.get(), 2u);
}

TEST_F(WorkerControl, EveryCountedRequestGetsOneLatencySample) {
  for (uint64_t i = 0; i < 5; ++i) io.inject_datagram(kNtUdp, peer, native_request(i));
  run();
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  tcp(c, cat({native_request(10), native_request(11), native_request(12)}));
  io.inject_datagram(kNtUdp, peer, Bytes{1, 2, 3});  // malformed: no request, no sample
  run();
  EXPECT_EQ(nt().requests.get(), 8u);
  EXPECT_EQ(samples(nt().latency), 8u);
  EXPECT_EQ(samples(sp().latency), 0u);
  Bytes warmup(proto::sockperf::kHeaderSize);
  proto::sockperf::encode_header(warmup.data(), {1, proto::sockperf::kWarmup, 14});
  for (uint64_t i = 0; i < 3; ++i) io.inject_datagram(kSpUdp, peer, warmup);
  run();
  EXPECT_EQ(sp().requests.get(), 3u);
  EXPECT_EQ(samples(sp().latency), 3u);
}

}  // namespace
}  // namespace cw::svc::testing
