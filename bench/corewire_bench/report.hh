// What one load-generator run measured, merged over its workers, and how it is printed:
// the text summary, the JSON report (--json), and the sweep table (--sweep). Pure
// formatting; no I/O except the explicit write helpers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/corewire_bench/client.hh"
#include "bench/hist/histogram.hh"

namespace cw::bench {

// The settings a report echoes back (so a JSON file says what produced it).
struct RunInfo {
  std::string proto, transport, target, mode, arrival, backend;
  uint32_t msg_size = 0, flows = 0, threads = 0, window = 0, conns = 0;
  double rate = 0;  // offered, msgs/s (open loop; 0 for closed)
  double duration_s = 0, warmup_s = 0;
  uint64_t count = 0;
  // proto memcached only (proto names it; empty otherwise).
  struct Kv {
    std::string proto, dist;
    double get_ratio = 0, theta = 0;
    uint64_t keys = 0;
    uint32_t key_size = 0, value_min = 0, value_max = 0, multiget = 0;
  } kv;
  // proto nats only: connections over all workers, subject, queue group (may be empty).
  struct Nats {
    uint32_t pubs = 0, subs = 0;
    std::string subject, queue;
  } nats;
};

// memcached: what the measured requests asked and got (ClientResults' kv_* counters).
struct KvCounts {
  uint64_t gets = 0, sets = 0, keys = 0, hits = 0, misses = 0, error_replies = 0;
  uint64_t bad_replies = 0, udp_evicted = 0;
};

// nats: what the subscribers got (ClientResults' nats_* counters) and what they should
// have: published (measured) x subscribers, or x 1 with a queue group.
struct NatsCounts {
  uint64_t expected = 0, err_lines = 0, bad = 0, unstamped = 0, out_of_order = 0;
  uint64_t warmup_msgs = 0;
  double pub_elapsed_s = 0;  // start of the measured phase to the last measured PUB
};

struct RunResult {
  RunInfo info;
  uint64_t sent = 0, received = 0, lost = 0, errors = 0, late = 0, warmup_sent = 0;
  uint64_t send_blocked = 0;
  uint64_t conns_open = 0, conns_failed = 0, conns_closed = 0;
  KvCounts kv;
  NatsCounts nats;
  // --kv-preload: the preload run's figures (requests = keys set), when one ran.
  bool preloaded = false;
  uint64_t preload_sent = 0, preload_stored = 0, preload_lost = 0, preload_errors = 0;
  double preload_s = 0;
  uint64_t unfinished = 0;  // workers that had not finished when the run was cut off
  double elapsed_s = 0;     // measured phase: start to last reply
  // The generator's own backend counters (DPDK: drop.<reason>, port.<stat>), whole run.
  std::vector<std::pair<std::string, uint64_t>> backend_counters;
  std::unique_ptr<Histogram> hist = std::make_unique<Histogram>();

  double throughput() const { return elapsed_s > 0 ? double(received) / elapsed_s : 0.0; }
  // Of the replies (nats: deliveries) expected, the share that did not come.
  double loss_ratio() const {
    const uint64_t want = info.proto == "nats" ? nats.expected : sent;
    return want ? double(lost) / double(want) : 0.0;
  }
  // Adds one worker's results (read after the worker finished or exited).
  void add(const ClientResults& r);
  // Records a preload run's figures in this (the measured) run.
  void set_preload(const RunResult& p);
  // nats, after every worker was added: what the subscribers should have received; lost
  // is what of that did not come.
  void set_nats_expected(uint64_t published, uint64_t fanout);
  // nats: measured PUBs per second (first to last intended time).
  double published_per_s() const;
  // What a sweep compares with the offered rate: replies/s, or for nats deliveries/s over
  // the fan-out (the publish rate the subscribers saw).
  double achieved_load() const {
    if (info.proto != "nats" || nats.expected == 0) return throughput();
    return throughput() * double(sent) / double(nats.expected);
  }
};

std::string text_report(const RunResult& r);
std::string json_report(const RunResult& r);                  // one run
std::string json_sweep(const std::vector<RunResult>& steps);  // {"sweep": [...]}
std::string sweep_header();
std::string sweep_row(const RunResult& r);
bool write_file(const std::string& path, const std::string& text);

}  // namespace cw::bench
