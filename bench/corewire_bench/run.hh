// One load-generator run on the corewire runtime: builds the client services from the
// options, starts the runtime (any backend), waits until every worker is done (printing
// progress if asked), and merges the workers' results. Used by corewire-bench's main and by
// the loopback tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/services/echo_native.hh"
#include "bench/corewire_bench/report.hh"
#include "dataplane/result.hh"

namespace cw::bench {

// Command-line settings (see bench/README.md); main() validates them before run_one().
struct Options {
  std::string proto = "native", target, mode = "closed", arrival = "fixed", backend = "auto";
  bool udp = false, tcp = false, busy_poll = false, check = false, quiet = false;
  uint32_t msg_size = 64, flows = 1, threads = 1, window = 1, conns = 0;
  uint32_t max_outstanding = 4096;
  uint32_t sends_per_tick = kMaxSendsPerTick;  // ClientConfig::sends_per_tick
  uint16_t service_id = svc::kEchoService;
  std::vector<int> cores;
  double rate = 0, duration_s = 0, warmup_s = 0, timeout_s = 1.0, connect_timeout_s = 5.0;
  double max_time_s = 300;
  uint64_t count = 0, seed = 1;
  std::string sweep, json, hgrm;
  // --backend dpdk only (docs/dpdk.md): EAL arguments (--eal split at spaces, then the
  // arguments after --), the port, our address/prefix and an optional gateway. The peer's
  // MAC is resolved by ARP.
  std::vector<std::string> eal;
  std::string dpdk_port, dpdk_addr, dpdk_gateway;
  uint16_t dpdk_mtu = 1500;
  // --proto memcached (bench/README.md, "memcached workload").
  std::string kv_proto = "text", kv_dist = "uniform", kv_value_size = "100";
  double kv_get_ratio = 0.9, kv_theta = 0.99;
  uint64_t kv_keys = 100000;
  uint32_t kv_key_size = 32, kv_multiget = 1, kv_value_min = 100, kv_value_max = 100;
  bool kv_preload = false;  // set every key once (over TCP) before the run
  // --proto nats (bench/README.md, "The NATS workload"): publisher and subscriber
  // connections over all workers, the subject, an optional queue group.
  uint32_t nats_pubs = 1, nats_subs = 1;
  std::string nats_subject = "bench", nats_queue;
  std::string nats_closed = "delivery";  // closed loop in flight until: delivery | ack
};

// Runs once at `rate` msgs/s (open loop) or closed loop (rate ignored). Blocks until every
// worker finished or the run was cut off (RunResult::unfinished says so). With progress, a
// line per second goes to stderr once the run has lasted 2 s.
Result<RunResult> run_one(const Options& o, double rate, bool progress);

// --kv-preload: sets keys 0..kv_keys-1 once, closed loop over TCP (--flows x at least 32
// in flight per worker), whatever --udp, --mode and --count say.
Result<RunResult> run_preload(const Options& o);

// --kv-value-size: "N" or "MIN:MAX" bytes into o.kv_value_min/max.
Result<void> parse_value_size(Options& o);

// "R1:R2:STEPS" (STEPS rates from R1 to R2, evenly spaced) or "R1,R2,...".
Result<std::vector<double>> parse_sweep(const std::string& s);

// Raises RLIMIT_NOFILE toward `want` (up to the hard limit); warns when it stays below.
void raise_nofile(uint64_t want);

}  // namespace cw::bench
