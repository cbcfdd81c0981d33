#include "control/stats_view.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

namespace cw::ctl {

namespace {

size_t field(std::string_view name) {
  for (size_t i = 0; i < std::size(kWorkerFields); ++i)
    if (name == kWorkerFields[i].name) return i;
  return 0;
}

// A counter minus its baseline (one below its baseline counts from zero).
uint64_t delta(uint64_t now, uint64_t base) {
  return now >= base ? now - base : now;
}

}  // namespace

double quantile_ns(const LatencyBuckets& b, double q) {
  using H = rt::LatencyHist;
  uint64_t total = 0;
  for (auto c : b) total += c;
  if (total == 0) return 0;
  const double rank = q * double(total);
  uint64_t below = 0;
  for (uint32_t k = 0; k < H::kBuckets; ++k) {
    if (b[k] == 0 || double(below + b[k]) < rank) {
      below += b[k];
      continue;
    }
    if (k == H::kBounded) return double(H::kUpperNs[H::kBounded - 1]);
    const double lo = k == 0 ? 0.0 : double(H::kUpperNs[k - 1]), hi = double(H::kUpperNs[k]);
    return lo + (hi - lo) * (rank - double(below)) / double(b[k]);
  }
  return double(H::kUpperNs[H::kBounded - 1]);
}

LatencySummary service_latency(const Snapshot& s, size_t svc) {
  LatencyBuckets b{};
  uint64_t sum = 0;
  for (const auto& w : s.workers) {
    if (svc >= w.services.size()) continue;
    for (uint32_t k = 0; k < b.size(); ++k) b[k] += w.services[svc].buckets[k];
    sum += w.services[svc].sum_ns;
  }
  LatencySummary l;
  for (auto c : b) l.count += c;
  if (l.count == 0) return l;
  l.mean_ns = double(sum) / double(l.count);
  l.p50_ns = quantile_ns(b, 0.5);
  l.p90_ns = quantile_ns(b, 0.9);
  l.p99_ns = quantile_ns(b, 0.99);
  l.p999_ns = quantile_ns(b, 0.999);
  return l;
}

double mean_burst(const Snapshot& s) {
  const uint64_t b = s.worker_total(field("bursts"));
  return b ? double(s.worker_total(field("items"))) / double(b) : 0.0;
}

std::vector<double> worker_bursts(const Snapshot& s) {
  const size_t items = field("items"), bursts = field("bursts");
  std::vector<double> out;
  for (const auto& w : s.workers)
    out.push_back(w.worker[bursts] ? double(w.worker[items]) / double(w.worker[bursts]) : 0.0);
  return out;
}

std::vector<PortView> port_views(const Snapshot& s) {
  std::vector<PortView> ports;
  for (const auto& [name, v] : s.backend_counters) {
    if (!backend_gauge(name)) continue;
    // "link.<port>.<field>"; the port id has no dot.
    const size_t a = name.find('.'), b = name.rfind('.');
    if (b <= a + 1) continue;
    const std::string port = name.substr(a + 1, b - a - 1), f = name.substr(b + 1);
    if (ports.empty() || ports.back().port != port) ports.push_back({.port = port});
    PortView& p = ports.back();
    if (f == "up")
      p.up = v != 0;
    else if (f == "speed_mbps")
      p.speed_mbps = v;
    else if (f == "full_duplex")
      p.full_duplex = v != 0;
    else if (f == "autoneg")
      p.autoneg = v != 0;
  }
  // The "port.*" statistics are the backend's one port's.
  if (ports.size() != 1) return ports;
  PortView& p = ports[0];
  const std::pair<const char*, uint64_t PortView::*> kStats[] = {
      {"port.ipackets", &PortView::rx_packets}, {"port.ibytes", &PortView::rx_bytes},
      {"port.opackets", &PortView::tx_packets}, {"port.obytes", &PortView::tx_bytes},
      {"port.imissed", &PortView::rx_missed},   {"port.ierrors", &PortView::rx_errors},
      {"port.oerrors", &PortView::tx_errors},   {"port.rx_nombuf", &PortView::rx_no_mbuf}};
  for (const auto& [name, v] : s.backend_counters)
    for (const auto& [stat, member] : kStats)
      if (name == stat) p.*member = v;
  return ports;
}

Json ports_json(const std::vector<PortView>& ports) {
  Json out = Json::array();
  for (const PortView& p : ports)
    out.push_back({{"port", p.port},
                   {"link", p.up ? "up" : "down"},
                   {"speed_mbps", p.speed_mbps},
                   {"duplex", p.full_duplex ? "full" : "half"},
                   {"autoneg", p.autoneg},
                   {"rx_packets", p.rx_packets},
                   {"rx_bytes", p.rx_bytes},
                   {"tx_packets", p.tx_packets},
                   {"tx_bytes", p.tx_bytes},
                   {"rx_missed", p.rx_missed},
                   {"rx_errors", p.rx_errors},
                   {"tx_errors", p.tx_errors},
                   {"rx_no_mbuf", p.rx_no_mbuf}});
  return out;
}

Json latency_json(const LatencySummary& l) {
  return Json{{"count", l.count},         {"mean_us", l.mean_ns / 1e3},
              {"p50_us", l.p50_ns / 1e3}, {"p90_us", l.p90_ns / 1e3},
              {"p99_us", l.p99_ns / 1e3}, {"p99_9_us", l.p999_ns / 1e3}};
}

std::string baseline_path(const std::string& stats) {
  return stats + ".baseline";
}

Result<void> save_baseline(const std::string& stats) {
  const int in = ::open(stats.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return make_error("stats segment " + stats + ": " + std::strerror(errno));
  std::vector<char> bytes;
  char buf[65536];
  for (ssize_t n; (n = ::read(in, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(in);
      return make_error("stats segment " + stats + ": " + std::strerror(e));
    }
    bytes.insert(bytes.end(), buf, buf + n);
  }
  ::close(in);
  const std::string out = baseline_path(stats), tmp = out + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(tmp + ": " + std::strerror(errno));
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), out.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error(out + ": cannot write");
  }
  return {};
}

std::optional<Snapshot> load_baseline(const std::string& stats, uint64_t epoch) {
  auto r = SegmentReader::open(baseline_path(stats));
  if (!r || r->epoch() != epoch) return std::nullopt;
  auto s = r->snapshot();
  if (!s) return std::nullopt;
  return std::move(s.value());
}

void subtract(Snapshot& s, const Snapshot& base) {
  for (size_t w = 0; w < s.workers.size() && w < base.workers.size(); ++w) {
    WorkerSnapshot& a = s.workers[w];
    const WorkerSnapshot& b = base.workers[w];
    for (size_t i = 0; i < a.worker.size(); ++i) a.worker[i] = delta(a.worker[i], b.worker[i]);
    for (size_t i = 0; i < a.io.size(); ++i)
      if (!kIoFields[i].gauge) a.io[i] = delta(a.io[i], b.io[i]);
    // Declared counters; gauges are levels, not totals.
    for (size_t i = 0; i < a.counters.size() && i < b.counters.size(); ++i)
      if (i < s.counters.size() && s.counters[i].kind != rt::CounterKind::gauge)
        a.counters[i] = delta(a.counters[i], b.counters[i]);
    for (size_t k = 0; k < a.services.size() && k < b.services.size(); ++k) {
      ServiceSnapshot& x = a.services[k];
      const ServiceSnapshot& y = b.services[k];
      for (size_t i = 0; i < x.c.size(); ++i) x.c[i] = delta(x.c[i], y.c[i]);
      for (size_t i = 0; i < x.buckets.size(); ++i)
        x.buckets[i] = delta(x.buckets[i], y.buckets[i]);
      x.sum_ns = delta(x.sum_ns, y.sum_ns);
    }
  }
  for (auto& [n, v] : s.backend_counters)
    for (auto& [bn, bv] : base.backend_counters)
      if (n == bn && !backend_gauge(n)) v = delta(v, bv);
}

}  // namespace cw::ctl
