// Issue 21's metrics and CLI views: build info, labelled state, no per-start labels,
// process_* metrics; percentiles from the histogram buckets; the `stats reset` baseline.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>

#include "control/control_config.hh"
#include "control/metrics.hh"
#include "control/stats_view.hh"
#include "control/version.hh"

namespace cw::ctl {
namespace {

Snapshot one_service(int64_t pid) {
  Snapshot s;
  s.epoch = 7;
  s.pid = pid;
  s.state = State::draining;
  s.backend = "epoll";
  s.services = {"echo"};
  s.workers.resize(2);
  for (auto& w : s.workers) w.services.resize(1);
  return s;
}

TEST(OpsMetrics, BuildInfoStateAndNoChurningLabels) {
  const Snapshot s = one_service(::getpid());
  const std::string t = prometheus_text(&s, {true, 0, 1});
  EXPECT_NE(t.find(std::string("corewire_build_info{version=\"") + kVersion + "\",commit=\"" +
                   kCommit + "\",backend=\"epoll\"} 1\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("corewire_dataplane_state{state=\"draining\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("corewire_dataplane_state{state=\"serving\"} 0\n"), std::string::npos);
  EXPECT_NE(t.find("corewire_dataplane_info{backend=\"epoll\"} 1\n"), std::string::npos);
  EXPECT_EQ(t.find("pid=\""), std::string::npos);
  EXPECT_EQ(t.find("epoch=\""), std::string::npos);
  // This process stands in for both corewirectl and the dataplane here.
  for (const char* m : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                        "process_open_fds ", "process_max_fds ", "process_start_time_seconds ",
                        "corewire_dataplane_process_resident_memory_bytes "})
    EXPECT_NE(t.find(std::string("\n") + m), std::string::npos) << m;
  // Without a dataplane: build info and process metrics still, no dataplane process.
  const std::string none = prometheus_text(nullptr, {false, 0, 1});
  EXPECT_NE(none.find("corewire_build_info{"), std::string::npos);
  EXPECT_NE(none.find("\nprocess_open_fds "), std::string::npos);
  EXPECT_EQ(none.find("corewire_dataplane_process_"), std::string::npos);
}

TEST(StatsView, QuantilesInterpolateInsideBuckets) {
  LatencyBuckets b{};
  EXPECT_EQ(quantile_ns(b, 0.5), 0.0);
  b[0] = 50;  // (0, 1us]
  b[3] = 50;  // (5us, 10us]
  EXPECT_DOUBLE_EQ(quantile_ns(b, 0.25), 500.0);
  EXPECT_DOUBLE_EQ(quantile_ns(b, 0.5), 1000.0);
  EXPECT_DOUBLE_EQ(quantile_ns(b, 0.9), 5000.0 + 5000.0 * 40 / 50);
  EXPECT_DOUBLE_EQ(quantile_ns(b, 1.0), 10000.0);
  b[rt::LatencyHist::kBounded] = 900;  // beyond 10 s: reported as the last bound
  EXPECT_DOUBLE_EQ(quantile_ns(b, 0.99), 10e9);
}

TEST(StatsView, ServiceLatencyMergesWorkersAndBaselineSubtracts) {
  Snapshot s = one_service(1);
  s.workers[0].services[0].buckets[1] = 10;  // (1us, 2us]
  s.workers[1].services[0].buckets[1] = 10;
  s.workers[0].services[0].sum_ns = 30'000;
  s.workers[0].worker[1] = 4;   // bursts
  s.workers[0].worker[2] = 20;  // items
  auto l = service_latency(s, 0);
  EXPECT_EQ(l.count, 20u);
  EXPECT_DOUBLE_EQ(l.mean_ns, 1500.0);
  EXPECT_DOUBLE_EQ(l.p50_ns, 1500.0);
  EXPECT_DOUBLE_EQ(mean_burst(s), 5.0);

  Snapshot base = s;
  s.workers[1].services[0].buckets[4] = 5;  // (10us, 20us], after the baseline
  s.workers[1].services[0].c[0] = 5;
  subtract(s, base);
  l = service_latency(s, 0);
  EXPECT_EQ(l.count, 5u);
  EXPECT_GT(l.p50_ns, 10'000.0);
  EXPECT_EQ(s.service_total(0, 0), 5u);
  EXPECT_EQ(mean_burst(s), 0.0);  // no burst since the baseline
}

TEST(OpsConfig, DurationSyntax) {
  EXPECT_EQ(parse_duration_ns("0"), 0u);
  EXPECT_EQ(parse_duration_ns("100us"), 100'000u);
  EXPECT_EQ(parse_duration_ns("100\u00b5s"), 100'000u);
  EXPECT_EQ(parse_duration_ns("250ms"), 250'000'000u);
  EXPECT_EQ(parse_duration_ns(" 5 S "), 5'000'000'000u);
  EXPECT_EQ(parse_duration_ns("2min"), 120'000'000'000u);
  EXPECT_EQ(parse_duration_ns("1h"), 3'600'000'000'000u);
  EXPECT_EQ(parse_duration_ns("10ns"), 10u);
  for (const char* bad : {"", "5", "ms", "5 sec", "5msec", "-5s", "1.5s", "99999999999h"})
    EXPECT_FALSE(parse_duration_ns(bad)) << bad;
  EXPECT_EQ(duration_text(0), "0");
  EXPECT_EQ(duration_text(100'000), "100us");
  EXPECT_EQ(duration_text(5'000'000'000), "5s");
  EXPECT_EQ(duration_text(90'000'000'000), "90s");
  EXPECT_EQ(duration_text(7'200'000'000'000), "2h");
  EXPECT_EQ(duration_text(1'500), "1500ns");
}

TEST(StatsView, PortViewsAndResetKeepsTheLink) {
  Snapshot s = one_service(2);
  EXPECT_TRUE(port_views(s).empty()) << "no ports without link entries";
  s.workers[0].worker[1] = 4;   // bursts
  s.workers[0].worker[2] = 20;  // items
  s.backend_counters = {{"link.0.up", 1},          {"link.0.speed_mbps", 10000},
                        {"link.0.full_duplex", 1}, {"link.0.autoneg", 1},
                        {"drop.no_mbuf", 2},       {"port.ipackets", 70},
                        {"port.opackets", 60},     {"port.imissed", 5}};
  EXPECT_EQ(worker_bursts(s), (std::vector<double>{5.0, 0.0}));
  auto p = port_views(s);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].port, "0");
  EXPECT_TRUE(p[0].up && p[0].full_duplex && p[0].autoneg);
  EXPECT_EQ(p[0].speed_mbps, 10000u);
  EXPECT_EQ(p[0].rx_packets, 70u);
  EXPECT_EQ(p[0].tx_packets, 60u);
  EXPECT_EQ(p[0].rx_missed, 5u);
  const Json j = ports_json(p);
  EXPECT_EQ(j[0]["link"], "up");
  EXPECT_EQ(j[0]["duplex"], "full");
  // A reset subtracts the port's totals but not its link, which is a level.
  Snapshot base = s;
  s.backend_counters[5].second = 75;
  subtract(s, base);
  p = port_views(s);
  EXPECT_TRUE(p[0].up);
  EXPECT_EQ(p[0].speed_mbps, 10000u);
  EXPECT_EQ(p[0].rx_packets, 5u);
  // The link going down shows as down with no speed.
  s.backend_counters[0].second = 0;
  s.backend_counters[1].second = 0;
  p = port_views(s);
  EXPECT_FALSE(p[0].up);
  EXPECT_EQ(ports_json(p)[0]["link"], "down");
}

Result<ControlConfig> control(const std::string& body) {
  return control_config_from(toml::parse("[control]\n" + body));
}

TEST(OpsConfig, ControlDurationsOneSyntaxOldKeysWarn) {
  auto c = control("publish = \"25ms\"\ndrain_timeout = \"2m\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->publish_ms, 25u);
  EXPECT_EQ(c->drain_timeout_ms, 120'000u);
  EXPECT_TRUE(c->deprecations.empty());
  c = control("drain_timeout = 3\n");  // integer seconds, as runtime.idle_timeout
  ASSERT_TRUE(c);
  EXPECT_EQ(c->drain_timeout_ms, 3000u);
  c = control("drain_timeout = \"0\"\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->drain_timeout_ms, 0u);
  // The old keys: same meaning, one deprecation each naming the replacement.
  c = control("publish_ms = 5\ndrain_timeout_ms = 1000\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->publish_ms, 5u);
  EXPECT_EQ(c->drain_timeout_ms, 1000u);
  ASSERT_EQ(c->deprecations.size(), 2u);
  EXPECT_NE(std::find(c->deprecations.begin(), c->deprecations.end(),
                      "control.publish_ms is deprecated: write publish = \"5ms\""),
            c->deprecations.end());
  c = control("publish = \"100us\"\n");  // finer than the key's 1 ms
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("resolution"), std::string::npos) << c.error().message;
  // Errors name the key: no unit, unknown unit, out of range, a unit typo, old and new key.
  for (const char* bad :
       {"publish = \"10\"", "publish = \"10 parsecs\"", "publish = \"11s\"", "publish = \"0ms\"",
        "drain_timeout = \"11m\"", "drain_timeout = -1", "drain_timeout = true",
        "drain_timeout = \"5sec\"", "publish = \"5ms\"\npublish_ms = 5"}) {
    auto r = control(std::string(bad) + "\n");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().message.find("control."), 0u) << r.error().message;
  }
}

}  // namespace
}  // namespace cw::ctl
