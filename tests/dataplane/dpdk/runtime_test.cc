// The runtime (launch.hh: backend "dpdk") with the real sockperf echo service on two
// workers, driven by the stock sockperf client from a network namespace over a net_tap.
// Needs root and sockperf; skipped with the reason otherwise or when EAL cannot start.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <variant>

#include "app/runtime/launch.hh"
#include "app/services/echo_sockperf.hh"
#include "tests/dataplane/dpdk/netns.hh"

namespace cw::dp {
namespace {

using Services = std::variant<svc::SockperfEcho>;
using test::Netns;

TEST(DpdkRuntime, SockperfPingPongThroughTheRuntime) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespace, tap device, EAL)";
  if (test::sh("which sockperf") != 0) GTEST_SKIP() << "no sockperf";
  if (test::sh("ip -V") != 0) GTEST_SKIP() << "no iproute2 'ip' command";
  const std::string tag = std::to_string(getpid());
  const std::string iface = "cwr" + tag.substr(tag.size() > 6 ? tag.size() - 6 : 0);
  Netns ns("cwdpdkrt" + tag);  // declared first: outlives the runtime (and its tap)
  if (!ns.ok()) GTEST_SKIP() << "cannot create or enter a network namespace here";
  if (access("/dev/net/tun", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/net/tun for net_tap";

  rt::RuntimeConfig rc;
  rc.backend = "dpdk";
  rc.io.workers = 2;
  rc.io.rx_buffers = 1024;
  rc.io.tx_buffers = 1024;
  rc.dpdk.eal_args = {"--no-huge",
                      "-m",
                      "256",
                      "--no-pci",
                      "--log-level=lib.eal:error",
                      "--no-shconf",
                      "--file-prefix=cwrt" + tag};
  rc.dpdk.port = "net_tap_cwrt" + tag + ",iface=" + iface;
  rc.dpdk.addresses = {parse_cidr("10.97.0.2/24").value()};
  rt::AppSpec<Services> app;
  app.sockets = {{Transport::udp, parse_endpoint("0.0.0.0:11111").value(), true}};
  app.sock_service = {0};
  app.service_names = {"sockperf"};
  app.make_services = [](unsigned) { return std::vector<Services>{svc::SockperfEcho{}}; };

  rt::Runtime<Services> runtime;
  std::string log;
  auto started = runtime.start(rc, std::move(app), [&](const std::string& m) { log += m + "\n"; });
  if (!started && started.error().message.rfind("dpdk.eal", 0) == 0)
    GTEST_SKIP() << "EAL cannot start here: " << started.error().message;
  ASSERT_TRUE(started.ok()) << started.error().message << "\n" << log;
  EXPECT_EQ(runtime.backend_name(), "dpdk");
  ASSERT_TRUE(test::configure_kernel_side(ns, iface, "10.97.0.1/24"));

  const std::string out = "/tmp/cw_dpdk_sockperf_" + tag + ".txt";
  const int rc_sp = test::run(
      ns.exec("timeout 30 sockperf ping-pong -i 10.97.0.2 -p 11111 -t 2 > " + out + " 2>&1"));
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  std::remove(out.c_str());
  uint64_t responses = 0;
  for (unsigned w = 0; w < runtime.workers(); ++w)
    responses += runtime.service_stats(w, 0).responses.get();
  const auto counters = runtime.backend_counters();
  runtime.stop();
  runtime.join();
  bool has_port_stats = false;
  for (const auto& [name, v] : counters) has_port_stats |= name == "port.ipackets" && v > 0;
  EXPECT_TRUE(has_port_stats);
  EXPECT_EQ(rc_sp, 0) << text.str();
  EXPECT_NE(text.str().find("Summary: Latency"), std::string::npos) << text.str();
  EXPECT_GT(responses, 100u) << text.str();
  test::sh("rm -rf /var/run/dpdk/cwrt" + tag);
}

}  // namespace
}  // namespace cw::dp
