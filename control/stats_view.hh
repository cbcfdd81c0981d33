// What corewirectl derives from a stats snapshot: latency percentiles and burst sizes (for
// its tables, --json and the admin /stats dump) and the counter baseline of `stats reset`.
// The segment holds one rt::LatencyHist per (worker, service): non-cumulative buckets with
// upper bounds kUpperNs, then +Inf.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/control_socket.hh"  // Json
#include "control/segment.hh"

namespace cw::ctl {

using LatencyBuckets = std::array<uint64_t, rt::LatencyHist::kBuckets>;

struct LatencySummary {
  uint64_t count = 0;
  double mean_ns = 0;
  // Estimates, interpolated linearly inside the bucket that holds the rank (as Prometheus'
  // histogram_quantile does); a rank in the +Inf bucket reports the last finite bound.
  double p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0;
};

// q in [0, 1]; 0 when the histogram is empty.
double quantile_ns(const LatencyBuckets& b, double q);

// Service svc over every worker.
LatencySummary service_latency(const Snapshot& s, size_t svc);

// Items per burst over every worker (0 before the first burst).
double mean_burst(const Snapshot& s);

// {"count", "mean_us", "p50_us", "p90_us", "p99_us", "p99_9_us"}
Json latency_json(const LatencySummary& l);

// Items per burst of each worker (0 before its first burst).
std::vector<double> worker_bursts(const Snapshot& s);

// A port of the backend (DPDK): its link from the "link.<port>.*" gauges and, for the one
// port the DPDK backend drives, its main "port.*" statistics (segment_layout.hh).
struct PortView {
  std::string port;  // the backend's port id
  bool up = false;
  uint64_t speed_mbps = 0;  // 0: down or unknown
  bool full_duplex = false, autoneg = false;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t rx_missed = 0;  // imissed: the rx ring was full
  uint64_t rx_errors = 0, tx_errors = 0, rx_no_mbuf = 0;
};
// In the order the backend lists them; empty for backends without ports.
std::vector<PortView> port_views(const Snapshot& s);
// [{"port", "link": "up"|"down", "speed_mbps", "duplex": "full"|"half", "autoneg",
//   "rx_packets", ...}]
Json ports_json(const std::vector<PortView>& ports);

// `corewirectl stats reset`: the segment is the dataplane's alone (readers never write it),
// so a reset is a baseline beside it, "<stats>.baseline", a copy of the segment file that
// later reads subtract. A copy taken while the publisher writes may mix two adjacent
// publish rounds in one block; for a baseline that is harmless.
std::string baseline_path(const std::string& stats);
Result<void> save_baseline(const std::string& stats);
// The baseline's snapshot when it belongs to the same dataplane start (same epoch).
std::optional<Snapshot> load_baseline(const std::string& stats, uint64_t epoch);
// Every counter of s minus base's (histograms included; gauges, link state among them,
// unchanged).
void subtract(Snapshot& s, const Snapshot& base);

}  // namespace cw::ctl
