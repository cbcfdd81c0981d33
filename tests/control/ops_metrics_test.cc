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
  // Errors name the key: no unit, unknown unit, out of range.
  for (const char* bad :
       {"publish = \"10\"", "publish = \"10 parsecs\"", "publish = \"11s\"", "publish = \"0ms\"",
        "drain_timeout = \"11m\"", "drain_timeout = -1", "drain_timeout = true"}) {
    auto r = control(std::string(bad) + "\n");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().message.find("control."), 0u) << r.error().message;
  }
}

}  // namespace
}  // namespace cw::ctl
