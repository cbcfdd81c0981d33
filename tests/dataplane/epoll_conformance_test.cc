// The backend conformance suite (conformance.hh) for the epoll backend.
#include "dataplane/epoll/epoll_io.hh"
#include "tests/dataplane/conformance.hh"

namespace cw::dp::conformance {

using EpollBackends = ::testing::Types<EpollBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Epoll, BackendConformance, EpollBackends);

}  // namespace cw::dp::conformance

// epoll-specific: datagrams the kernel drops because the socket's receive queue is full are
// counted (SO_RXQ_OVFL) in rx_no_buffer.
namespace cw::dp::conformance {
namespace {

TEST(EpollBackend, KernelReceiveQueueDropsAreCounted) {
  IoConfig cfg;
  cfg.max_conns = 8;
  const SocketSpec specs[] = {{Transport::udp, loopback(), true}};
  auto b = EpollBackend::create(cfg, specs);
  ASSERT_TRUE(b) << b.error().message;
  auto w = (*b)->open_worker(0);
  ASSERT_TRUE(w) << w.error().message;
  EpollWorker& io = **w;
  Sock peer = udp_peer();
  // Far more than any socket buffer the kernel grants (net.core.rmem_max), unread.
  constexpr uint32_t kSent = 20000;
  const auto msg = payload(1, 1400);
  for (uint32_t i = 0; i < kSent; ++i) ASSERT_TRUE(udp_send(peer, (*b)->bound(0), msg));
  RxItem items[64];
  const auto end = Clock::now() + kDeadline;
  for (int quiet = 0; quiet < 3 && Clock::now() < end;)
    quiet = io.poll(items, 64, 0) ? 0 : quiet + 1;
  // The kernel reports its drop count with the next datagram it queues.
  const uint64_t before = io.counters().rx_datagrams.get();
  ASSERT_TRUE(udp_send(peer, (*b)->bound(0), msg));
  while (io.counters().rx_datagrams.get() == before && Clock::now() < end)
    io.poll(items, 64, kPollNs);
  const IoCounters& c = io.counters();
  EXPECT_GT(c.rx_datagrams.get(), 0u);
  EXPECT_GT(c.rx_no_buffer.get(), 0u) << c.rx_datagrams.get() << " received";
  EXPECT_LE(c.rx_datagrams.get() + c.rx_no_buffer.get(), kSent + 1)
      << c.rx_datagrams.get() << " received, " << c.rx_no_buffer.get() << " dropped";
}

}  // namespace
}  // namespace cw::dp::conformance
