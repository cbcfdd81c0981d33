// The runtime (app/runtime/launch.hh) on the io_uring backend: "auto" picks io_uring here,
// workers serve an echo service over loopback UDP and TCP in interrupt and busy-poll mode,
// mail wakes a blocked worker, and everything stops cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <variant>

#include "app/runtime/launch.hh"
#include "tests/dataplane/conformance.hh"
#include "tests/dataplane/echo_service.hh"

namespace cw::rt {
namespace {

using dp::conformance::payload;

// The shared test echo, plus mail handling (mail wakes a blocked worker).
struct Echo : test::EchoService {
  template <class Io>
  void on_mail(Ctx<Io>&, const Mail& m) {
    mail_sum->fetch_add(m.a);
  }
  std::atomic<uint64_t>* mail_sum;
};
using Services = std::variant<Echo>;

class RuntimeUring : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    auto ok = dp::UringBackend::probe();
    if (!ok) GTEST_SKIP() << "io_uring unavailable: " << ok.error().message;
  }
};

TEST_P(RuntimeUring, EchoesUdpAndTcpThenStops) {
  const bool busy = GetParam();
  RuntimeConfig cfg;
  cfg.backend = "auto";
  cfg.io.workers = busy ? 1 : 2;  // busy-poll burns a core per worker: keep it to one
  cfg.io.busy_poll = busy;
  cfg.loop.max_block_ns = 60'000'000'000;  // interrupt mode: only traffic or wake() end a block
  cfg.io.max_conns = 64;
  cfg.io.rx_buffers = 256;
  cfg.io.tx_buffers = 256;
  std::atomic<uint64_t> mail_sum{0};
  AppSpec<Services> app;
  const dp::Endpoint any = dp::conformance::loopback();
  app.sockets = {{dp::Transport::udp, any, true}, {dp::Transport::tcp, any, true}};
  app.sock_service = {0, 0};
  app.service_names = {"echo"};
  app.make_services = [&](unsigned) { return std::vector<Services>{Echo{{}, &mail_sum}}; };
  std::string log;
  {
    Runtime<Services> rt;
    auto ok = rt.start(cfg, app, [&](const std::string& l) { log += l + "\n"; });
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(rt.backend_name(), "io_uring");
    const dp::Endpoint udp = rt.bound(0), tcp = rt.bound(1);

    auto up = dp::conformance::udp_peer();
    for (uint32_t i = 0; i < 20; ++i) {
      const auto msg = payload(i, 1 + i * 997);
      ASSERT_TRUE(dp::conformance::udp_send(up, udp, msg));
      EXPECT_EQ(dp::conformance::udp_recv(up), msg) << i;
    }
    auto tp = dp::conformance::tcp_peer(tcp);
    ASSERT_GE(tp.fd, 0);
    const auto stream = payload(2, 300000);
    ASSERT_TRUE(dp::conformance::send_all(tp, stream));
    EXPECT_EQ(dp::conformance::recv_n(tp, stream.size()), stream);

    // Mail from this (control) thread reaches a worker even while it blocks in the ring:
    // with no connection left and max_block_ns of a minute, only wake() can return it
    // within the bound below.
    tp.reset();
    for (int i = 0; i < 500; ++i) {
      uint64_t open = 0;
      for (unsigned w = 0; w < rt.workers(); ++w) open += rt.io_counters(w).conns_open.get();
      if (open == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let worker 0 block again
    Mail m;
    m.service = 0;
    m.from = kControlSender;
    m.a = 42;
    ASSERT_TRUE(rt.mailboxes().send(rt.workers(), 0, m));
    for (int i = 0; i < 500 && mail_sum.load() != 42; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(mail_sum.load(), 42u);

    uint64_t udp_rx = 0, accepted = 0;
    for (unsigned w = 0; w < rt.workers(); ++w) {
      udp_rx += rt.io_counters(w).rx_datagrams.get();
      accepted += rt.io_counters(w).conns_accepted.get();
    }
    EXPECT_EQ(udp_rx, 20u);
    EXPECT_EQ(accepted, 1u);
    rt.stop();
    rt.join();
  }
  EXPECT_NE(log.find("backend io_uring"), std::string::npos) << log;
  EXPECT_NE(log.find("ring flags"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, RuntimeUring, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "busy_poll" : "interrupt"; });

}  // namespace
}  // namespace cw::rt
