// corewire-bench's run_one() against corewire's own echo services, in one process over real
// loopback sockets: a server runtime (NativeEcho / SockperfEcho on 127.0.0.1, port 0) and the
// client runtime, for each kernel backend this machine offers. Asserts counts, not timing.
#include <gtest/gtest.h>

#include <variant>

#include "app/runtime/launch.hh"
#include "app/services/echo_native.hh"
#include "app/services/echo_sockperf.hh"
#include "bench/corewire_bench/run.hh"

namespace cw::bench {
namespace {

using ServerServices = std::variant<svc::NativeEcho, svc::SockperfEcho>;

class Loopback : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "io_uring" && !rt::probe_io_uring()) GTEST_SKIP() << "no io_uring here";
    rt::RuntimeConfig rc;
    rc.backend = GetParam();
    rt::AppSpec<ServerServices> app;
    const dp::Endpoint lo{htonl(INADDR_LOOPBACK), 0};
    // 0/1: native udp/tcp (service 0); 2/3: sockperf udp/tcp (service 1).
    app.sockets = {{dp::Transport::udp, lo, true},
                   {dp::Transport::tcp, lo, true},
                   {dp::Transport::udp, lo, true},
                   {dp::Transport::tcp, lo, true}};
    app.sock_service = {0, 0, 1, 1};
    app.service_names = {"native-echo", "sockperf-echo"};
    app.make_services = [](unsigned) {
      return std::vector<ServerServices>{svc::NativeEcho{}, svc::SockperfEcho{}};
    };
    auto ok = server.start(rc, std::move(app), [](const std::string&) {});
    ASSERT_TRUE(ok) << ok.error().message;
  }
  Options opts(const char* proto, bool tcp, dp::SocketId s) {
    Options o;
    o.proto = proto;
    o.tcp = tcp;
    o.udp = !tcp;
    o.target = dp::to_string(server.bound(s));
    o.backend = GetParam();
    o.count = 500;
    o.check = true;
    o.timeout_s = 5;
    o.quiet = true;
    o.msg_size = 80;
    return o;
  }
  static void expect_clean(const Result<RunResult>& r, uint64_t n) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    const RunResult& x = const_cast<Result<RunResult>&>(r).value();
    EXPECT_EQ(x.sent, n);
    EXPECT_EQ(x.received, n);
    EXPECT_EQ(x.lost, 0u);
    EXPECT_EQ(x.errors, 0u);
    EXPECT_EQ(x.unfinished, 0u);
    EXPECT_EQ(x.hist->count(), n);
  }
  rt::Runtime<ServerServices> server;
};

TEST_P(Loopback, NativeUdpClosedLoop) {
  auto o = opts("native", false, 0);
  o.window = 4;
  o.flows = 2;
  expect_clean(run_one(o, 0, false), 500);
}

TEST_P(Loopback, NativeTcpClosedLoopTwoWorkers) {
  auto o = opts("native", true, 1);
  o.threads = 2;
  o.flows = 2;
  o.window = 2;
  auto r = run_one(o, 0, false);
  expect_clean(r, 500);
  EXPECT_EQ(r.value().conns_open, 4u);
}

TEST_P(Loopback, SockperfUdpOpenLoop) {
  auto o = opts("sockperf", false, 2);
  o.mode = "open";
  o.count = 200;
  // A modest rate: UDP has no flow control, and a slow (sanitized, loaded) server must not
  // overflow its socket buffer and turn this into a loss test.
  expect_clean(run_one(o, 1000, false), 200);
}

TEST_P(Loopback, SockperfTcpClosedLoop) {
  auto o = opts("sockperf", true, 3);
  o.window = 8;
  expect_clean(run_one(o, 0, false), 500);
}

TEST_P(Loopback, NativeUnknownServiceRepliesAreErrors) {
  auto o = opts("native", false, 0);
  o.service_id = 999;
  o.count = 50;
  auto r = run_one(o, 0, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().sent, 50u);
  EXPECT_EQ(r.value().errors, 50u) << "the server answers each with an error message";
  EXPECT_EQ(r.value().received, 0u);
}

TEST_P(Loopback, ConnectionRefusedIsCountedAsFailed) {
  // A TCP port nobody listens on: the UDP socket's port number is free for TCP here.
  auto o = opts("native", true, 0);
  o.flows = 3;
  o.connect_timeout_s = 5;
  auto r = run_one(o, 0, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().conns_failed, 3u);
  EXPECT_EQ(r.value().sent, 0u);
}

TEST_P(Loopback, ManyConnectionsStayOpen) {
  // --conns as main() sets it up: tcp, open loop, one small request per connection per
  // second, small outstanding tables. 300 connections (x2 fds) fit the default fd limit.
  auto o = opts("native", true, 1);
  o.conns = 300;
  o.threads = 2;
  o.mode = "open";
  o.count = 0;
  o.duration_s = 0.5;
  o.max_outstanding = 8;
  o.msg_size = 32;
  auto r = run_one(o, 600, false);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().conns_open, 300u);
  EXPECT_EQ(r.value().conns_failed, 0u);
  EXPECT_EQ(r.value().conns_closed, 0u);
  EXPECT_GT(r.value().received, 0u);
  EXPECT_EQ(r.value().lost, 0u);
  EXPECT_EQ(r.value().errors, 0u);
}

TEST(Sweep, Parse) {
  auto a = parse_sweep("1000:5000:5");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value(), (std::vector<double>{1000, 2000, 3000, 4000, 5000}));
  auto b = parse_sweep("10,20,40");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value(), (std::vector<double>{10, 20, 40}));
  EXPECT_FALSE(parse_sweep("5000:1000:3").ok());
  EXPECT_FALSE(parse_sweep("1:2").ok());
  EXPECT_FALSE(parse_sweep("10,x").ok());
  EXPECT_FALSE(parse_sweep("10,-5").ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, Loopback, ::testing::Values("epoll", "io_uring"));

}  // namespace
}  // namespace cw::bench
