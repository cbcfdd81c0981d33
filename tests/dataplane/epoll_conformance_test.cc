// The backend conformance suite (conformance.hh) for the epoll backend, plus epoll specifics
// (kernel drop counting, dispatch fairness, EINTR).
#include <pthread.h>
#include <signal.h>

#include "dataplane/epoll/epoll_io.hh"
#include "tests/dataplane/conformance.hh"

namespace cw::dp::conformance {

using EpollBackends = ::testing::Types<EpollBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Epoll, BackendConformance, EpollBackends);

}  // namespace cw::dp::conformance

// epoll-specific: datagrams the kernel drops because the socket's receive queue is full are
// counted in rx_no_buffer (sampled from SO_MEMINFO every kernel::kDropSamplePeriodNs).
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
  // Receive what the socket kept; the drop counter is sampled, so keep polling (bounded)
  // until every datagram is accounted for.
  RxItem items[64];
  const IoCounters& c = io.counters();
  const auto end = Clock::now() + kDeadline;
  while (c.rx_datagrams.get() + c.rx_no_buffer.get() < kSent && Clock::now() < end)
    io.poll(items, 64, kPollNs);
  EXPECT_GT(c.rx_datagrams.get(), 0u);
  EXPECT_GT(c.rx_no_buffer.get(), 0u) << c.rx_datagrams.get() << " received";
  // No silent loss and no double count: received + counted drops == sent.
  EXPECT_EQ(c.rx_datagrams.get() + c.rx_no_buffer.get(), kSent)
      << c.rx_datagrams.get() << " received, " << c.rx_no_buffer.get() << " dropped";
}

}  // namespace
}  // namespace cw::dp::conformance

// epoll-specific: with little room per poll, a socket with a long backlog does not starve a
// connection that became ready after it (dispatch rotates over the ready list).
namespace cw::dp::conformance {
namespace {

TEST(EpollBackend, BusySocketDoesNotStarveOthers) {
  IoConfig cfg;
  cfg.max_conns = 8;
  const SocketSpec specs[] = {{Transport::udp, loopback(), true},
                              {Transport::tcp, loopback(), true}};
  auto b = EpollBackend::create(cfg, specs);
  ASSERT_TRUE(b) << b.error().message;
  auto w = (*b)->open_worker(0);
  ASSERT_TRUE(w) << w.error().message;
  EpollWorker& io = **w;
  Sock tp = tcp_peer((*b)->bound(1));
  ASSERT_GE(tp.fd, 0);
  RxItem items[4];
  const auto end = Clock::now() + kDeadline;
  while (io.counters().conns_accepted.get() == 0 && Clock::now() < end) io.poll(items, 4, kPollNs);
  Sock up = udp_peer();
  constexpr uint32_t kFlood = 400;
  for (uint32_t i = 0; i < kFlood; ++i) ASSERT_TRUE(udp_send(up, (*b)->bound(0), payload(i, 32)));
  ASSERT_TRUE(send_all(tp, payload(7, 10)));
  uint64_t udp_before_tcp = ~0ull;
  while (udp_before_tcp == ~0ull && Clock::now() < end) {
    const uint32_t n = io.poll(items, 4, kPollNs);
    for (uint32_t k = 0; k < n; ++k)
      if (items[k].kind == RxKind::stream_data) udp_before_tcp = io.counters().rx_datagrams.get();
  }
  EXPECT_LT(udp_before_tcp, uint64_t(kFlood)) << "stream data waited for the whole flood";
}

}  // namespace
}  // namespace cw::dp::conformance

// epoll-specific: a signal interrupting a blocked poll (EINTR) returns an empty burst, and
// the worker keeps working.
namespace cw::dp::conformance {
namespace {

void on_sigusr1(int) {}

TEST(EpollBackend, SignalInterruptedPollReturnsEmptyAndRecovers) {
  struct sigaction sa {};
  sa.sa_handler = on_sigusr1;  // no SA_RESTART: epoll_pwait2 fails with EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  IoConfig cfg;
  cfg.max_conns = 8;
  const SocketSpec specs[] = {{Transport::udp, loopback(), true}};
  auto b = EpollBackend::create(cfg, specs);
  ASSERT_TRUE(b) << b.error().message;
  auto w = (*b)->open_worker(0);
  ASSERT_TRUE(w) << w.error().message;
  EpollWorker& io = **w;
  std::atomic<bool> polling{false};
  const pthread_t self = pthread_self();
  std::thread killer([&] {
    while (!polling.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    pthread_kill(self, SIGUSR1);
  });
  RxItem items[4];
  polling = true;
  EXPECT_EQ(io.poll(items, 4, 5'000'000'000), 0u);
  killer.join();
  EXPECT_EQ(io.counters().wakeups.get(), 0u) << "a signal is not a wake()";
  // Still serving.
  Sock peer = udp_peer();
  ASSERT_TRUE(udp_send(peer, (*b)->bound(0), payload(3, 100)));
  uint32_t n = 0;
  const auto end = Clock::now() + kDeadline;
  while (n == 0 && Clock::now() < end) n = io.poll(items, 4, kPollNs);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(std::vector<uint8_t>(items[0].data, items[0].data + items[0].len), payload(3, 100));
  sigaction(SIGUSR1, &old, nullptr);
}

}  // namespace
}  // namespace cw::dp::conformance

// epoll-specific: setup errors are values with a message, never crashes.
namespace cw::dp::conformance {
namespace {

TEST(EpollBackend, SetupErrors) {
  const SocketSpec specs[] = {{Transport::udp, loopback(), true}};
  IoConfig bad;
  bad.max_conns = 0;
  auto b = EpollBackend::create(bad, specs);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("max_conns"), std::string::npos) << b.error().message;
  bad = IoConfig{};
  bad.max_datagram = 70000;
  EXPECT_FALSE(EpollBackend::create(bad, specs));

  IoConfig cfg;
  cfg.max_conns = 8;
  auto ok = EpollBackend::create(cfg, specs);
  ASSERT_TRUE(ok) << ok.error().message;
  auto w0 = (*ok)->open_worker(0);
  ASSERT_TRUE(w0) << w0.error().message;
  auto again = (*ok)->open_worker(0);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already"), std::string::npos);
  EXPECT_FALSE((*ok)->open_worker(1)) << "only one worker was configured";
}

}  // namespace
}  // namespace cw::dp::conformance
