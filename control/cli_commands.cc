// corewirectl's read and request subcommands: human tables by default, JSON with --json.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "control/cli.hh"
#include "control/segment.hh"
#include "control/stats_view.hh"

namespace cw::ctl {

namespace {

// Counters since the last `stats reset` of this dataplane, if any.
Result<Snapshot> read_segment(const std::string& path) {
  auto r = SegmentReader::open(path);
  if (!r) return r.error();
  auto s = r->snapshot();
  if (s)
    if (auto base = load_baseline(path, s->epoch)) subtract(s.value(), *base);
  return s;
}

// Latency percentiles per service and the mean burst, under the counter tables.
void print_latency(const Snapshot& s) {
  std::printf("\n%-16s %12s %10s %10s %10s %10s %10s\n", "service latency", "count", "mean_us",
              "p50_us", "p90_us", "p99_us", "p99.9_us");
  for (size_t k = 0; k < s.services.size(); ++k) {
    const LatencySummary l = service_latency(s, k);
    std::printf("%-16s %12llu %10.1f %10.1f %10.1f %10.1f %10.1f\n", s.services[k].c_str(),
                (unsigned long long)l.count, l.mean_ns / 1e3, l.p50_ns / 1e3, l.p90_ns / 1e3,
                l.p99_ns / 1e3, l.p999_ns / 1e3);
  }
  std::printf("\nmean burst %.2f items\n", mean_burst(s));
}

size_t io_index(std::string_view name) {
  for (size_t i = 0; i < std::size(kIoFields); ++i)
    if (name == kIoFields[i].name) return i;
  return 0;
}

size_t worker_index(std::string_view name) {
  for (size_t i = 0; i < std::size(kWorkerFields); ++i)
    if (name == kWorkerFields[i].name) return i;
  return 0;
}

const char* state_name(State s) {
  static constexpr const char* kNames[] = {"starting", "serving", "draining", "stopped"};
  return uint64_t(s) < 4 ? kNames[uint64_t(s)] : "unknown";
}

Json snapshot_json(const Snapshot& s) {
  Json j{{"epoch", s.epoch},
         {"pid", s.pid},
         {"backend", s.backend},
         {"state", state_name(s.state)},
         {"publish_count", s.publish_count},
         {"publish_unix_ns", s.publish_unix_ns}};
  Json ws = Json::array();
  const std::vector<double> bursts = worker_bursts(s);
  for (auto& w : s.workers) {
    Json o, io;
    for (size_t i = 0; i < std::size(kWorkerFields); ++i) o[kWorkerFields[i].name] = w.worker[i];
    for (size_t i = 0; i < std::size(kIoFields); ++i) io[kIoFields[i].name] = w.io[i];
    Json svcs = Json::object();
    for (size_t k = 0; k < w.services.size(); ++k) {
      Json c;
      for (size_t i = 0; i < std::size(kServiceFields); ++i)
        c[kServiceFields[i].name] = w.services[k].c[i];
      c["latency_buckets"] = w.services[k].buckets;
      c["latency_sum_ns"] = w.services[k].sum_ns;
      Json named = Json::object();  // the service's declared counters
      for (size_t i = 0; i < s.counters.size() && i < w.counters.size(); ++i)
        if (s.counters[i].service == k) named[s.counters[i].name] = w.counters[i];
      c["counters"] = named;
      svcs[s.services[k]] = c;
    }
    ws.push_back({{"runtime", o}, {"io", io}, {"services", svcs}});
    ws.back()["mean_burst"] = bursts[ws.size() - 1];
  }
  j["workers"] = ws;
  Json decls = Json::array();
  for (const CounterInfo& c : s.counters)
    decls.push_back({{"service", s.services.at(c.service)},
                     {"name", c.name},
                     {"kind", c.kind == rt::CounterKind::gauge ? "gauge" : "counter"},
                     {"help", c.help}});
  j["service_counters"] = decls;
  Json be = Json::object();
  for (auto& [n, v] : s.backend_counters) be[n] = v;
  j["backend_counters"] = be;
  j["ports"] = ports_json(port_views(s));
  return j;
}

std::string speed_text(uint64_t mbps) {
  if (mbps == 0) return "-";
  return mbps % 1000 == 0 ? std::to_string(mbps / 1000) + "G" : std::to_string(mbps) + "M";
}

// The backend's ports (DPDK): link state, and with counters the port's own statistics.
void print_ports(const std::vector<PortView>& ports, bool counters) {
  if (ports.empty()) return;
  // autoneg is the last column without counters: no padding after it.
  const char* last = counters ? "%-7s" : "%s";
  std::printf("\n%-6s %-5s %6s %-6s ", "port", "link", "speed", "duplex");
  std::printf(last, "autoneg");
  if (counters)
    std::printf(" %14s %14s %10s %10s %10s %10s", "rx_packets", "tx_packets", "rx_missed",
                "rx_errors", "tx_errors", "rx_no_mbuf");
  std::printf("\n");
  for (const PortView& p : ports) {
    std::printf("%-6s %-5s %6s %-6s ", p.port.c_str(), p.up ? "up" : "down",
                speed_text(p.speed_mbps).c_str(), p.up ? (p.full_duplex ? "full" : "half") : "-");
    std::printf(last, p.autoneg ? "on" : "off");
    if (counters)
      std::printf(" %14llu %14llu %10llu %10llu %10llu %10llu", (unsigned long long)p.rx_packets,
                  (unsigned long long)p.tx_packets, (unsigned long long)p.rx_missed,
                  (unsigned long long)p.rx_errors, (unsigned long long)p.tx_errors,
                  (unsigned long long)p.rx_no_mbuf);
    std::printf("\n");
  }
}

bool alive(int64_t pid) {
  return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
}

void print_totals(const Snapshot& s) {
  std::printf("dataplane pid %lld (%s), backend %s, %zu worker(s), epoch %016llx\n",
              (long long)s.pid, alive(s.pid) ? state_name(s.state) : "not running",
              s.backend.c_str(), s.workers.size(), (unsigned long long)s.epoch);
  std::printf("%-8s %14s %14s %14s %14s %10s %10s %8s\n", "worker", "rx_dgrams", "tx_dgrams",
              "rx_tcp_bytes", "tx_tcp_bytes", "conns", "drops", "burst");
  const std::vector<double> bursts = worker_bursts(s);
  const size_t rx = io_index("rx_datagrams"), tx = io_index("tx_datagrams"),
               rs = io_index("rx_stream_bytes"), ts = io_index("tx_stream_bytes"),
               co = io_index("conns_open"), nb = io_index("tx_no_buffer"),
               tr = io_index("rx_truncated");
  for (size_t w = 0; w < s.workers.size(); ++w) {
    const auto& io = s.workers[w].io;
    std::printf("%-8zu %14llu %14llu %14llu %14llu %10llu %10llu %8.2f\n", w,
                (unsigned long long)io[rx], (unsigned long long)io[tx], (unsigned long long)io[rs],
                (unsigned long long)io[ts], (unsigned long long)io[co],
                (unsigned long long)(io[nb] + io[tr]), bursts[w]);
  }
  std::printf("\n%-16s %14s %14s %10s %10s %10s\n", "service", "requests", "responses", "errors",
              "malformed", "dropped");
  for (size_t k = 0; k < s.services.size(); ++k)
    std::printf(
        "%-16s %14llu %14llu %10llu %10llu %10llu\n", s.services[k].c_str(),
        (unsigned long long)s.service_total(k, 0), (unsigned long long)s.service_total(k, 1),
        (unsigned long long)s.service_total(k, 2), (unsigned long long)s.service_total(k, 3),
        (unsigned long long)s.service_total(k, 4));
  if (!s.counters.empty()) {
    std::printf("\n%-16s %-32s %-8s %14s\n", "service", "declared counter", "kind", "total");
    for (size_t i = 0; i < s.counters.size(); ++i) {
      const CounterInfo& c = s.counters[i];
      std::printf("%-16s %-32s %-8s %14llu\n", s.services.at(c.service).c_str(), c.name.c_str(),
                  c.kind == rt::CounterKind::gauge ? "gauge" : "counter",
                  (unsigned long long)s.counter_total(i));
    }
  }
  print_ports(port_views(s), true);
  if (!s.backend_counters.empty()) {
    std::printf("\n%-40s %14s\n", "backend counter", "value");
    for (auto& [n, v] : s.backend_counters)
      std::printf("%-40s %14llu\n", n.c_str(), (unsigned long long)v);
  }
}

// `services` answers from the live runtime; the percentiles come from the segment, by
// service index, and a `stats reset` baseline is subtracted from the counts.
void add_service_latency(const CliTarget& t, Json& j) {
  auto r = SegmentReader::open(t.stats);
  if (!r) return;
  auto s = r->snapshot();
  if (!s) return;
  auto base = load_baseline(t.stats, s->epoch);
  if (base) subtract(s.value(), *base);
  auto& list = j["services"];
  for (size_t k = 0; k < list.size() && k < s->services.size(); ++k) {
    list[k]["latency"] = latency_json(service_latency(s.value(), k));
    if (!base) continue;
    for (size_t i = 0; i < std::size(kServiceFields); ++i) {
      const uint64_t now = list[k].value(kServiceFields[i].name, 0ULL),
                     was = base->service_total(k, i);
      list[k][kServiceFields[i].name] = now >= was ? now - was : now;
    }
  }
  j["mean_burst"] = mean_burst(s.value());
}

void print_service_latency(const Json& j) {
  std::printf("\n%-16s %12s %10s %10s %10s %10s\n", "service", "latency n", "p50_us", "p90_us",
              "p99_us", "p99.9_us");
  for (auto& s : j["services"]) {
    if (!s.contains("latency")) continue;
    const Json& l = s["latency"];
    std::printf("%-16s %12llu %10.1f %10.1f %10.1f %10.1f\n", s.value("name", "").c_str(),
                l.value("count", 0ULL), l.value("p50_us", 0.0), l.value("p90_us", 0.0),
                l.value("p99_us", 0.0), l.value("p99_9_us", 0.0));
  }
}

int fail(const std::string& msg) {
  spdlog::error("{}", msg);
  return 1;
}

}  // namespace

int cmd_status(const CliTarget& t) {
  auto r = control_request(t.socket, {{"cmd", "status"}});
  if (!r) {
    // No control socket: say what the segment knows (e.g. the last counters of a dead run).
    auto s = read_segment(t.stats);
    if (!s) return fail(r.error().message + "; " + s.error().message);
    if (t.json) {
      std::printf("%s\n", Json{{"ok", false},
                               {"error", r.error().message},
                               {"pid", s->pid},
                               {"running", alive(s->pid)},
                               {"state", state_name(s->state)}}
                              .dump()
                              .c_str());
    } else {
      std::printf("control socket unreachable (%s)\nsegment: pid %lld %s, state %s\n",
                  r.error().message.c_str(), (long long)s->pid,
                  alive(s->pid) ? "alive" : "not running", state_name(s->state));
    }
    return 1;
  }
  Json& j = r.value();
  // Ports and bursts come from the segment (the control thread answers without the NIC).
  std::vector<PortView> ports;
  if (auto s = read_segment(t.stats); s && s->epoch == j.value("epoch", uint64_t(0))) {
    ports = port_views(s.value());
    j["ports"] = ports_json(ports);
    j["mean_burst"] = mean_burst(s.value());
  }
  if (t.json) {
    std::printf("%s\n", j.dump().c_str());
    return j.value("ok", false) ? 0 : 1;
  }
  if (!j.value("ok", false)) return fail(j.value("error", "request failed"));
  std::printf(
      "state       %s\npid         %lld\nbackend     %s\nworkers     %u\nuptime      %.1f s\n"
      "connections %llu\nservices   ",
      j.value("state", "").c_str(), j.value("pid", 0LL), j.value("backend", "").c_str(),
      j.value("workers", 0u), j.value("uptime_s", 0.0), j.value("connections", 0ULL));
  for (auto& n : j["services"]) std::printf(" %s", n.get<std::string>().c_str());
  std::printf("\nsocket      %s\nstats       %s\n", t.socket.c_str(), t.stats.c_str());
  if (j.contains("mean_burst")) std::printf("mean burst  %.2f items\n", j.value("mean_burst", 0.0));
  print_ports(ports, false);
  return 0;
}

int cmd_stats(const CliTarget& t, bool watch, int interval_ms, int count) {
  auto s = read_segment(t.stats);
  if (!s) return fail(s.error().message);
  if (!watch) {
    if (t.json) {
      std::printf("%s\n", stats_json(s.value()).dump().c_str());
    } else {
      print_totals(s.value());
      print_latency(s.value());
    }
    return 0;
  }
  // Watch: one line of totals and rates per interval; reopens the segment after a restart.
  auto reader = SegmentReader::open(t.stats);
  if (!reader) return fail(reader.error().message);
  Snapshot prev = s.value();
  const size_t rx = io_index("rx_datagrams"), tx = io_index("tx_datagrams");
  if (!t.json)
    std::printf("%12s %12s %12s %12s %8s\n", "rx_dgrams", "rx/s", "tx_dgrams", "tx/s", "conns");
  for (int i = 0; count == 0 || i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    if (reader->replaced()) {
      auto again = SegmentReader::open(t.stats);
      if (again) {
        reader = std::move(again);
        std::printf("# dataplane restarted (epoch %016llx)\n", (unsigned long long)reader->epoch());
        prev = Snapshot{};
      }
    }
    auto cur = reader->snapshot();
    if (!cur) continue;
    const double secs = interval_ms / 1000.0;
    auto rate = [&](size_t f) {
      const uint64_t a = cur->io_total(f), b = prev.workers.empty() ? a : prev.io_total(f);
      return a >= b ? double(a - b) / secs : 0.0;
    };
    if (t.json) {
      std::printf("%s\n", Json{{"rx_datagrams", cur->io_total(rx)},
                               {"rx_per_s", rate(rx)},
                               {"tx_datagrams", cur->io_total(tx)},
                               {"tx_per_s", rate(tx)},
                               {"conns_open", cur->io_total(io_index("conns_open"))}}
                              .dump()
                              .c_str());
    } else {
      std::printf("%12llu %12.0f %12llu %12.0f %8llu\n", (unsigned long long)cur->io_total(rx),
                  rate(rx), (unsigned long long)cur->io_total(tx), rate(tx),
                  (unsigned long long)cur->io_total(io_index("conns_open")));
    }
    std::fflush(stdout);
    prev = std::move(cur.value());
  }
  return 0;
}

int cmd_top(const CliTarget& t, int interval_ms, int count) {
  auto reader = SegmentReader::open(t.stats);
  if (!reader) return fail(reader.error().message);
  auto prev = reader->snapshot();
  if (!prev) return fail(prev.error().message);
  const size_t rx = io_index("rx_datagrams"), tx = io_index("tx_datagrams"),
               rs = io_index("rx_stream_bytes");
  const size_t busy_f = worker_index("busy_ns");
  const bool tty = ::isatty(1);
  for (int i = 0; count == 0 || i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    auto cur = reader->snapshot();
    if (!cur || reader->replaced()) return fail("dataplane restarted; run top again");
    const double secs = interval_ms / 1000.0;
    if (tty) std::printf("\033[H\033[2J");
    std::printf("corewire pid %lld  backend %s  %s\n%-7s %10s %10s %12s %8s %7s\n",
                (long long)cur->pid, cur->backend.c_str(), state_name(cur->state), "worker", "rx/s",
                "tx/s", "tcp_rx_B/s", "conns", "busy%");
    for (size_t w = 0; w < cur->workers.size(); ++w) {
      const auto &a = cur->workers[w], &b = prev->workers[w];
      auto d = [&](size_t f) { return double(a.io[f] - b.io[f]) / secs; };
      const double busy = double(a.worker[busy_f] - b.worker[busy_f]) / (secs * 1e9) * 100.0;
      std::printf("%-7zu %10.0f %10.0f %12.0f %8llu %6.1f%%\n", w, d(rx), d(tx), d(rs),
                  (unsigned long long)a.io[io_index("conns_open")], busy);
    }
    std::fflush(stdout);
    prev = std::move(cur);
  }
  return 0;
}

int cmd_services(const CliTarget& t) {
  auto r = control_request(t.socket, {{"cmd", "services"}});
  if (!r) return fail(r.error().message);
  Json& j = r.value();
  if (t.json && !j.value("ok", false)) {
    std::printf("%s\n", j.dump().c_str());
    return 1;
  }
  if (!j.value("ok", false)) return fail(j.value("error", "request failed"));
  add_service_latency(t, j);
  if (t.json) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-16s %-8s %14s %14s %10s %10s %10s\n", "service", "enabled", "requests",
              "responses", "errors", "malformed", "dropped");
  for (auto& s : j["services"])
    std::printf("%-16s %-8s %14llu %14llu %10llu %10llu %10llu\n", s.value("name", "").c_str(),
                s.value("enabled", false) ? "yes" : "no", s.value("requests", 0ULL),
                s.value("responses", 0ULL), s.value("errors", 0ULL), s.value("malformed", 0ULL),
                s.value("dropped", 0ULL));
  print_service_latency(j);
  return 0;
}

int cmd_request(const CliTarget& t, const Json& request) {
  auto r = control_request(t.socket, request);
  if (!r) return fail(r.error().message);
  const Json& j = r.value();
  if (t.json || request["cmd"] == "config") {
    std::printf("%s\n", t.json ? j.dump().c_str() : j["config"].dump(2).c_str());
    return j.value("ok", false) ? 0 : 1;
  }
  if (!j.value("ok", false)) return fail(j.value("error", "request failed"));
  Json rest = j;
  rest.erase("ok");
  std::printf("ok%s%s\n", rest.empty() ? "" : " ", rest.empty() ? "" : rest.dump().c_str());
  return 0;
}

Json stats_json(const Snapshot& s) {
  Json j = snapshot_json(s);
  Json lat = Json::object();
  for (size_t k = 0; k < s.services.size(); ++k)
    lat[s.services[k]] = latency_json(service_latency(s, k));
  j["latency"] = lat;
  j["mean_burst"] = mean_burst(s);
  return j;
}

int cmd_stats_reset(const CliTarget& t, bool clear) {
  if (clear) {
    if (::unlink(baseline_path(t.stats).c_str()) != 0 && errno != ENOENT)
      return fail(baseline_path(t.stats) + ": " + std::strerror(errno));
    std::printf("ok: counters shown from the dataplane's start\n");
    return 0;
  }
  if (auto r = save_baseline(t.stats); !r) return fail(r.error().message);
  std::printf("ok: stats and services count from now (%s)\n", baseline_path(t.stats).c_str());
  return 0;
}

Result<ControlConfig> resolve_target(const std::string& config, const std::string& run_dir) {
  ControlConfig c;
  if (!config.empty()) {
    auto r = control_config_from_file(config);
    if (!r) return r.error();
    c = r.value();
  } else {
    c = default_control_config();
  }
  if (!run_dir.empty()) {
    // Keep file names, move them under the new directory.
    auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
    c.socket = run_dir + "/" + base(c.socket);
    c.stats = run_dir + "/" + base(c.stats);
    c.run_dir = run_dir;
  }
  return c;
}

}  // namespace cw::ctl
