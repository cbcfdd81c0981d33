// The load generator's reports: merged worker results, JSON fields, sweep rows.
#include "bench/corewire_bench/report.hh"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace cw::bench {
namespace {

RunResult two_workers() {
  auto a = std::make_unique<ClientResults>();
  auto b = std::make_unique<ClientResults>();
  a->sent.add(10);
  a->received.add(9);
  a->lost.add(1);
  for (int i = 1; i <= 9; ++i) a->hist.record(uint64_t(i) * 1000);
  a->measure_start_ns = 1'000'000'000;
  a->last_rx_ns = 1'500'000'000;
  a->phase.store(uint8_t(Phase::done));
  b->sent.add(10);
  b->received.add(10);
  b->errors.add(2);
  for (int i = 0; i < 10; ++i) b->hist.record(100'000);
  b->measure_start_ns = 2'000'000'000;
  b->last_rx_ns = 3'000'000'000;  // the slowest worker sets the elapsed time
  RunResult r;
  r.info.proto = "sockperf";
  r.info.transport = "udp";
  r.info.rate = 20;
  r.add(*a);
  r.add(*b);
  return r;
}

TEST(Report, MergesWorkers) {
  RunResult r = two_workers();
  EXPECT_EQ(r.sent, 20u);
  EXPECT_EQ(r.received, 19u);
  EXPECT_EQ(r.lost, 1u);
  EXPECT_EQ(r.errors, 2u);
  EXPECT_EQ(r.unfinished, 1u) << "worker b never reached done";
  EXPECT_DOUBLE_EQ(r.elapsed_s, 1.0);
  EXPECT_DOUBLE_EQ(r.throughput(), 19.0);
  EXPECT_DOUBLE_EQ(r.loss_ratio(), 0.05);
  EXPECT_EQ(r.hist->count(), 19u);
  EXPECT_EQ(r.hist->max(), 100'000u);
}

TEST(Report, JsonCarriesCountsAndLatency) {
  const auto j = nlohmann::json::parse(json_report(two_workers()));
  EXPECT_EQ(j["sent"], 20);
  EXPECT_EQ(j["received"], 19);
  EXPECT_EQ(j["lost"], 1);
  EXPECT_EQ(j["errors"], 2);
  EXPECT_EQ(j["config"]["proto"], "sockperf");
  EXPECT_DOUBLE_EQ(j["throughput_msgs"].get<double>(), 19.0);
  EXPECT_EQ(j["latency"]["unit"], "us");
  EXPECT_DOUBLE_EQ(j["latency"]["max"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(j["latency"]["min"].get<double>(), 1.0);
  for (const char* k : {"p50", "p90", "p99", "p99_9", "p99_99", "mean"})
    EXPECT_TRUE(j["latency"].contains(k)) << k;
  EXPECT_FALSE(j.contains("conns")) << "udp has no connections";
}

TEST(Report, MemcachedCountsAndPreload) {
  ClientResults w;
  w.sent.add(10);
  w.received.add(8);
  w.errors.add(2);
  w.kv_gets.add(7);
  w.kv_sets.add(3);
  w.kv_keys.add(14);
  w.kv_hits.add(10);
  w.kv_misses.add(2);
  w.kv_error_replies.add(1);
  w.kv_bad_replies.add(1);
  RunResult r;
  r.info.proto = "memcached";
  r.info.transport = "tcp";
  r.info.kv.proto = "meta";
  r.info.kv.dist = "zipf";
  r.info.kv.theta = 0.99;
  r.info.kv.multiget = 2;
  r.add(w);
  RunResult p;
  p.sent = p.received = 1000;
  p.elapsed_s = 0.5;
  r.set_preload(p);
  const auto j = nlohmann::json::parse(json_report(r));
  EXPECT_EQ(j["kv"]["proto"], "meta");
  EXPECT_EQ(j["kv"]["dist"], "zipf");
  EXPECT_EQ(j["kv"]["multiget"], 2);
  EXPECT_EQ(j["kv"]["gets"], 7);
  EXPECT_EQ(j["kv"]["sets"], 3);
  EXPECT_EQ(j["kv"]["keys_requested"], 14);
  EXPECT_EQ(j["kv"]["hits"], 10);
  EXPECT_EQ(j["kv"]["misses"], 2);
  EXPECT_NEAR(j["kv"]["hit_ratio"].get<double>(), 10.0 / 12.0, 1e-12);
  EXPECT_EQ(j["kv"]["error_replies"], 1);
  EXPECT_EQ(j["kv"]["bad_replies"], 1);
  EXPECT_EQ(j["preload"]["stored"], 1000);
  EXPECT_DOUBLE_EQ(j["preload"]["elapsed_s"].get<double>(), 0.5);
  const std::string t = text_report(r);
  EXPECT_NE(t.find("memcached meta: gets 7 (14 keys: 10 hits, 2 misses)  sets 3"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("preload: 1000 keys, 1000 stored"), std::string::npos) << t;
  EXPECT_FALSE(nlohmann::json::parse(json_report(two_workers())).contains("kv"));
}

TEST(Report, SweepJsonAndRows) {
  std::vector<RunResult> steps;
  steps.push_back(two_workers());
  steps.push_back(two_workers());
  const auto j = nlohmann::json::parse(json_sweep(steps));
  ASSERT_EQ(j["sweep"].size(), 2u);
  EXPECT_EQ(j["sweep"][1]["config"]["rate"], 20);
  const std::string row = sweep_row(steps[0]);
  EXPECT_NE(row.find("   20 "), std::string::npos) << row;  // offered
  EXPECT_NE(row.find("5.000"), std::string::npos) << row;   // loss %
  EXPECT_NE(sweep_header().find("p99.9"), std::string::npos);
}

TEST(Report, TextMentionsEveryCount) {
  const std::string t = text_report(two_workers());
  for (const char* s : {"sent 20", "received 19", "lost 1", "errors 2", "p99.99", "did not finish"})
    EXPECT_NE(t.find(s), std::string::npos) << s << "\n" << t;
}

}  // namespace
}  // namespace cw::bench
