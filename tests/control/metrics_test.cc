#include "control/metrics.hh"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace cw::ctl {
namespace {

Snapshot sample_snapshot() {
  Snapshot s;
  s.epoch = 99;
  s.pid = 1234;
  s.start_unix_ns = 1'700'000'000'000'000'000ull;
  s.publish_count = 5;
  s.state = State::serving;
  s.backend = "epoll";
  s.services = {"echo", "odd\"name\\x"};
  s.workers.resize(2);
  for (auto& w : s.workers) w.services.resize(2);
  s.workers[0].io[0] = 10;  // rx_datagrams
  s.workers[1].io[0] = 32;
  s.workers[0].worker[8] = 1'500'000'000;  // busy_ns
  auto& h = s.workers[1].services[0];
  h.c[0] = 42;
  h.buckets[0] = 3;
  h.buckets[4] = 2;
  h.buckets[rt::LatencyHist::kBounded] = 1;
  h.sum_ns = 4'000'000;
  s.backend_counters = {{"drop.no_mbuf", 4}, {"port.x.rx_q0_packets", 9}};
  // Declared counters: both services count get_hits (one family), the second has a gauge.
  s.counters = {{0, rt::CounterKind::counter, "get_hits", "Hits \\ with a backslash"},
                {1, rt::CounterKind::gauge, "items", "Items stored"},
                {1, rt::CounterKind::counter, "get_hits", "Other help, not shown"}};
  for (size_t w = 0; w < 2; ++w) s.workers[w].counters = {10 + w, 20 + w, 30 + w};
  return s;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(Metrics, TextFormatIsWellFormed) {
  const Snapshot s = sample_snapshot();
  const std::string text = prometheus_text(&s, {true, 2, 7});
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$)");
  std::map<std::string, std::string> type_of;
  std::set<std::string> helped;
  std::string current;  // family whose samples may follow
  for (const auto& l : lines_of(text)) {
    std::smatch m;
    if (l.rfind("# HELP ", 0) == 0) {
      const std::string name = l.substr(7, l.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice: " << name;
      continue;
    }
    if (l.rfind("# TYPE ", 0) == 0) {
      std::istringstream in(l.substr(7));
      std::string name, type;
      in >> name >> type;
      EXPECT_TRUE(helped.count(name)) << "TYPE before HELP: " << name;
      EXPECT_FALSE(type_of.count(name)) << "family twice: " << name;
      type_of[name] = type;
      current = name;
      if (type == "counter") {
        EXPECT_TRUE(name.ends_with("_total")) << name;
      }
      continue;
    }
    ASSERT_TRUE(std::regex_match(l, m, sample)) << "bad sample line: " << l;
    const std::string name = m[1];
    // Samples belong to the family announced last (histograms add suffixes).
    const bool ok =
        name == current ||
        (type_of[current] == "histogram" &&
         (name == current + "_bucket" || name == current + "_sum" || name == current + "_count"));
    EXPECT_TRUE(ok) << name << " outside its family " << current;
  }
  EXPECT_EQ(type_of["corewire_io_rx_datagrams_total"], "counter");
  EXPECT_EQ(type_of["corewire_io_conns_open"], "gauge");
  EXPECT_EQ(type_of["corewire_service_latency_seconds"], "histogram");
  EXPECT_NE(text.find("corewire_io_rx_datagrams_total{worker=\"1\"} 32\n"), std::string::npos);
  EXPECT_NE(text.find("corewire_restarts_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("corewire_worker_busy_seconds_total{worker=\"0\"} 1.5\n"), std::string::npos);
  EXPECT_NE(text.find("service=\"odd\\\"name\\\\x\""), std::string::npos) << "label escaped";
  EXPECT_EQ(text.find("corewire_port_"), std::string::npos) << "no port series without ports";
}

TEST(Metrics, HistogramIsCumulativeAndCounted) {
  const Snapshot s = sample_snapshot();
  const std::string text = prometheus_text(&s, {});
  const std::string sel = "service=\"echo\",worker=\"1\"";
  std::vector<std::pair<std::string, uint64_t>> buckets;
  for (const auto& l : lines_of(text)) {
    if (l.rfind("corewire_service_latency_seconds_bucket{" + sel, 0) != 0) continue;
    const auto le0 = l.find("le=\"") + 4;
    buckets.emplace_back(l.substr(le0, l.find('"', le0) - le0),
                         std::stoull(l.substr(l.rfind(' ') + 1)));
  }
  ASSERT_EQ(buckets.size(), rt::LatencyHist::kBuckets);
  EXPECT_EQ(buckets.front(), std::make_pair(std::string("1e-06"), uint64_t(3)));
  EXPECT_EQ(buckets[4].first, "2e-05");
  EXPECT_EQ(buckets[4].second, 5u);
  EXPECT_EQ(buckets.back(), std::make_pair(std::string("+Inf"), uint64_t(6)));
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_GE(buckets[i].second, buckets[i - 1].second);
  EXPECT_NE(text.find("corewire_service_latency_seconds_count{" + sel + "} 6\n"),
            std::string::npos);
  EXPECT_NE(text.find("corewire_service_latency_seconds_sum{" + sel + "} 0.004\n"),
            std::string::npos);
}

TEST(Metrics, DeclaredServiceCounters) {
  const Snapshot s = sample_snapshot();
  const std::string text = prometheus_text(&s, {});
  const std::string odd = "service=\"odd\\\"name\\\\x\"";
  for (const char* want : {
           "# HELP corewire_service_get_hits_total Hits \\\\ with a backslash\n"
           "# TYPE corewire_service_get_hits_total counter\n"
           "corewire_service_get_hits_total{service=\"echo\",worker=\"0\"} 10\n"
           "corewire_service_get_hits_total{service=\"echo\",worker=\"1\"} 11\n",
           "# TYPE corewire_service_items gauge\n",
       })
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  EXPECT_NE(text.find("corewire_service_get_hits_total{" + odd + ",worker=\"1\"} 31\n"),
            std::string::npos);
  EXPECT_NE(text.find("corewire_service_items{" + odd + ",worker=\"0\"} 20\n"), std::string::npos);
  EXPECT_EQ(text.find("Other help"), std::string::npos) << "one HELP per family";
  Snapshot none = s;
  none.counters.clear();
  for (auto& w : none.workers) w.counters.clear();
  EXPECT_EQ(prometheus_text(&none, {}).find("get_hits"), std::string::npos);
}

TEST(Metrics, BackendCounters) {
  Snapshot s = sample_snapshot();
  s.backend_counters.clear();
  EXPECT_EQ(prometheus_text(&s, {}).find("corewire_backend_"), std::string::npos);
  s.backend_counters = {{"drop.no_mbuf", 4}, {"port.imissed", 9}, {"drop.bad_checksum", 1}};
  const std::string text = prometheus_text(&s, {});
  EXPECT_NE(text.find("corewire_backend_drops_total{reason=\"no_mbuf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("corewire_backend_drops_total{reason=\"bad_checksum\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("corewire_backend_stat_total{name=\"port.imissed\"} 9\n"), std::string::npos);
}

// A DPDK port's link ("link.<port>.*" gauges): corewire_port_* gauges labelled by port, not
// backend stat counters.
Snapshot with_port(Snapshot s) {
  s.backend_counters.insert(s.backend_counters.begin(), {{"link.3.up", 1},
                                                         {"link.3.speed_mbps", 25000},
                                                         {"link.3.full_duplex", 1},
                                                         {"link.3.autoneg", 0}});
  return s;
}

TEST(Metrics, PortLinkGauges) {
  const Snapshot s = with_port(sample_snapshot());
  const std::string text = prometheus_text(&s, {});
  EXPECT_NE(text.find("# TYPE corewire_port_link_up gauge\ncorewire_port_link_up{port=\"3\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("corewire_port_link_speed_mbps{port=\"3\"} 25000\n"), std::string::npos);
  EXPECT_NE(text.find("corewire_port_link_full_duplex{port=\"3\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("name=\"link."), std::string::npos) << "link state is not a counter";
  EXPECT_NE(text.find("corewire_backend_stat_total{name=\"port.x.rx_q0_packets\"} 9\n"),
            std::string::npos);
  Snapshot down = with_port(sample_snapshot());
  down.backend_counters[0].second = 0;
  down.backend_counters[1].second = 0;
  const std::string d = prometheus_text(&down, {});
  EXPECT_NE(d.find("corewire_port_link_up{port=\"3\"} 0\n"), std::string::npos);
  EXPECT_NE(d.find("corewire_port_link_speed_mbps{port=\"3\"} 0\n"), std::string::npos);
}

TEST(Metrics, WithoutDataplaneOnlySupervisorMetrics) {
  const std::string text = prometheus_text(nullptr, {false, 3, 1});
  EXPECT_NE(text.find("corewire_up 0\n"), std::string::npos);
  EXPECT_NE(text.find("corewire_restarts_total 3\n"), std::string::npos);
  EXPECT_EQ(text.find("corewire_io_"), std::string::npos);
}

// promtool (Debian package prometheus) is the reference parser; used when installed.
TEST(Metrics, PromtoolAccepts) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  const Snapshot s = with_port(sample_snapshot());
  const std::string file = "/tmp/cw-metrics-" + std::to_string(getpid()) + ".txt";
  std::ofstream(file) << prometheus_text(&s, {true, 1, 1});
  const std::string cmd = std::string(promtool) + " check metrics < " + file + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  std::remove(file.c_str());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("error"), std::string::npos) << out;
}

}  // namespace
}  // namespace cw::ctl
