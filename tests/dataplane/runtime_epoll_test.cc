// The runtime (app/runtime/launch.hh) on the epoll backend: two pinned-free workers serve a
// trivial echo service over real loopback UDP and TCP, then stop cleanly.
#include <arpa/inet.h>
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

// Echoes datagrams to their sender and stream bytes back on their connection.
using Echo = test::EchoService;
using Services = std::variant<Echo>;

TEST(RuntimeEpoll, EchoesUdpAndTcpThenStops) {
  RuntimeConfig cfg;
  cfg.backend = "epoll";
  cfg.io.workers = 2;
  cfg.io.max_conns = 64;
  cfg.io.rx_buffers = 256;
  cfg.io.tx_buffers = 256;
  AppSpec<Services> app;
  const dp::Endpoint any = dp::conformance::loopback();
  app.sockets = {{dp::Transport::udp, any, true}, {dp::Transport::tcp, any, true}};
  app.sock_service = {0, 0};
  app.service_names = {"echo"};
  app.make_services = [](unsigned) { return std::vector<Services>{Echo{}}; };
  std::string log;
  {
    Runtime<Services> rt;
    auto ok = rt.start(cfg, app, [&](const std::string& l) { log += l + "\n"; });
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(rt.backend_name(), "epoll");
    const dp::Endpoint udp = rt.bound(0), tcp = rt.bound(1);
    ASSERT_NE(udp.port_be, 0);
    ASSERT_NE(tcp.port_be, 0);

    auto up = dp::conformance::udp_peer();
    const auto msg = payload(1, 1200);
    ASSERT_TRUE(dp::conformance::udp_send(up, udp, msg));
    EXPECT_EQ(dp::conformance::udp_recv(up), msg);

    auto tp = dp::conformance::tcp_peer(tcp);
    ASSERT_GE(tp.fd, 0);
    const auto stream = payload(2, 100000);
    ASSERT_TRUE(dp::conformance::send_all(tp, stream));
    EXPECT_EQ(dp::conformance::recv_n(tp, stream.size()), stream);

    uint64_t udp_rx = 0, accepted = 0;
    for (unsigned w = 0; w < rt.workers(); ++w) {
      udp_rx += rt.io_counters(w).rx_datagrams.get();
      accepted += rt.io_counters(w).conns_accepted.get();
    }
    EXPECT_EQ(udp_rx, 1u);
    EXPECT_EQ(accepted, 1u);
    rt.stop();
    rt.join();
  }
  EXPECT_NE(log.find("backend epoll"), std::string::npos) << log;
}

TEST(RuntimeEpoll, BindErrorIsReportedBeforeAnyWorkerStarts) {
  RuntimeConfig cfg;
  cfg.backend = "epoll";
  AppSpec<Services> app;
  app.sockets = {{dp::Transport::tcp, dp::Endpoint{htonl(0xC0000201), 0}, true}};  // 192.0.2.1
  app.sock_service = {0};
  app.service_names = {"echo"};
  app.make_services = [](unsigned) { return std::vector<Services>{Echo{}}; };
  Runtime<Services> rt;
  auto ok = rt.start(cfg, app, [](const std::string&) {});
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message.find("192.0.2.1"), std::string::npos) << ok.error().message;
}

}  // namespace
}  // namespace cw::rt
