#include "control/metrics.hh"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include "control/stats_view.hh"
#include "control/version.hh"

namespace cw::ctl {

namespace {

std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// One metric family: HELP and TYPE once, then its samples.
class Out {
 public:
  void family(const std::string& name, const char* type, const std::string& help) {
    s_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, const std::string& labels, uint64_t v) {
    s_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
  }
  void sample(const std::string& name, const std::string& labels, double v) {
    s_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + num(v) + "\n";
  }
  std::string take() { return std::move(s_); }

 private:
  std::string s_;
};

std::string wlabel(size_t w) {
  return "worker=\"" + std::to_string(w) + "\"";
}

// Standard process_* metrics (as Prometheus client libraries export them) from /proc.
struct ProcessStats {
  double cpu_seconds = 0, start_unix_s = 0;
  uint64_t rss_bytes = 0, vsize_bytes = 0, open_fds = 0, max_fds = 0;
};

std::optional<ProcessStats> process_stats(int64_t pid) try {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // Fields after the command (which may hold spaces) start at field 3, "state".
  const size_t rp = line.rfind(')');
  if (rp == std::string::npos) return std::nullopt;
  std::istringstream in(line.substr(rp + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(in), {}};
  if (f.size() < 22) return std::nullopt;
  const double tick = double(::sysconf(_SC_CLK_TCK)), page = double(::sysconf(_SC_PAGESIZE));
  ProcessStats p;
  p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / tick;  // utime + stime
  p.vsize_bytes = std::stoull(f[20]);
  p.rss_bytes = uint64_t(std::stod(f[21]) * page);
  // starttime is in ticks since boot; boot time from /proc/stat's btime.
  std::ifstream ps("/proc/stat");
  for (std::string l; std::getline(ps, l);)
    if (l.rfind("btime ", 0) == 0)
      p.start_unix_s = std::stod(l.substr(6)) + std::stod(f[19]) / tick;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  std::ifstream limits(dir + "/limits");
  for (std::string l; std::getline(limits, l);)
    if (l.rfind("Max open files", 0) == 0) {
      std::istringstream ls(l.substr(14));
      ls >> p.max_fds;
    }
  return p;
} catch (const std::exception&) {  // the process exited while being read
  return std::nullopt;
}

void process_family(Out& o, const std::string& prefix, const ProcessStats& p) {
  struct M {
    const char *name, *type, *help;
    double value;
    bool integer;
  };
  const M ms[] = {
      {"cpu_seconds_total", "counter", "User and system CPU time, seconds", p.cpu_seconds, false},
      {"resident_memory_bytes", "gauge", "Resident memory size in bytes", double(p.rss_bytes),
       true},
      {"virtual_memory_bytes", "gauge", "Virtual memory size in bytes", double(p.vsize_bytes),
       true},
      {"start_time_seconds", "gauge", "Start time of the process, Unix time", p.start_unix_s,
       false},
      {"open_fds", "gauge", "Open file descriptors", double(p.open_fds), true},
      {"max_fds", "gauge", "Maximum open file descriptors", double(p.max_fds), true}};
  for (const M& m : ms) {
    o.family(prefix + m.name, m.type, m.help);
    if (m.integer)
      o.sample(prefix + m.name, "", uint64_t(m.value));
    else
      o.sample(prefix + m.name, "", m.value);
  }
}

// corewire_build_info; process_* of corewirectl itself (the process serving /metrics) and
// corewire_dataplane_process_* of the dataplane.
void build_and_process(Out& o, const Snapshot* snap, const SupervisorMetrics&) {
  o.family("corewire_build_info", "gauge",
           "corewirectl's build (value is always 1); backend: the dataplane's, when attached");
  o.sample("corewire_build_info",
           std::string("version=\"") + kVersion + "\",commit=\"" + kCommit + "\",backend=\"" +
               escape_label(snap ? snap->backend : "") + "\"",
           uint64_t(1));
  if (auto p = process_stats(::getpid())) process_family(o, "process_", *p);
  if (snap && snap->pid > 0)
    if (auto p = process_stats(snap->pid)) process_family(o, "corewire_dataplane_process_", *p);
}

// Identity without per-start labels (pid and epoch would make a new series every restart;
// start_time and the restart counter say the same), and the state as one series per state.
void dataplane_identity(Out& o, const Snapshot& s) {
  o.family("corewire_dataplane_info", "gauge", "Dataplane identity (value is always 1)");
  o.sample("corewire_dataplane_info", "backend=\"" + escape_label(s.backend) + "\"", uint64_t(1));
  o.family("corewire_dataplane_start_time_seconds", "gauge", "Dataplane start, Unix time");
  o.sample("corewire_dataplane_start_time_seconds", "", double(s.start_unix_ns) / 1e9);
  o.family("corewire_dataplane_state", "gauge", "1 for the dataplane's current state, else 0");
  static constexpr const char* kStates[] = {"starting", "serving", "draining", "stopped"};
  for (uint64_t i = 0; i < std::size(kStates); ++i)
    o.sample("corewire_dataplane_state", std::string("state=\"") + kStates[i] + "\"",
             uint64_t(uint64_t(s.state) == i));
}

// The backend's ports (DPDK): link state as gauges labelled by port id.
void port_families(Out& o, const std::vector<PortView>& ports) {
  if (ports.empty()) return;
  struct M {
    const char *name, *help;
    uint64_t (*value)(const PortView&);
  };
  static constexpr M kPortMetrics[] = {
      {"corewire_port_link_up", "1 if the port's link is up",
       [](const PortView& p) { return uint64_t(p.up); }},
      {"corewire_port_link_speed_mbps", "Link speed in Mb/s (0: down or unknown)",
       [](const PortView& p) { return p.speed_mbps; }},
      {"corewire_port_link_full_duplex", "1 if the link is full duplex",
       [](const PortView& p) { return uint64_t(p.full_duplex); }}};
  for (const M& m : kPortMetrics) {
    o.family(m.name, "gauge", m.help);
    for (const PortView& p : ports)
      o.sample(m.name, "port=\"" + escape_label(p.port) + "\"", m.value(p));
  }
}

// Escaping per the text format: backslash and newline, and in label values the double quote.
std::string escaped(const std::string& v, bool label) {
  std::string o;
  for (char c : v) {
    if (c == '\\')
      o += "\\\\";
    else if (c == '"' && label)
      o += "\\\"";
    else if (c == '\n')
      o += "\\n";
    else
      o += c;
  }
  return o;
}

// The services' declared counters: one family per (name, kind), corewire_service_<name>_total
// for counters and corewire_service_<name> for gauges, with a sample per (service, worker)
// that declares it. Services declaring the same name share the family (and the first one's
// help). The reader has checked the names (rt::valid_counter_name): they cannot collide with
// the fixed service families, and (service, name) is unique, so no series repeats.
template <class Label>
void declared_counters(Out& o, const Snapshot& s, const Label& slabel) {
  std::vector<bool> done(s.counters.size(), false);
  for (size_t i = 0; i < s.counters.size(); ++i) {
    if (done[i]) continue;
    const CounterInfo& c = s.counters[i];
    const bool gauge = c.kind == rt::CounterKind::gauge;
    const std::string name = "corewire_service_" + c.name + (gauge ? "" : "_total");
    o.family(name, gauge ? "gauge" : "counter", escaped(c.help, false));
    for (size_t j = i; j < s.counters.size(); ++j) {
      const CounterInfo& d = s.counters[j];
      if (done[j] || d.name != c.name || d.kind != c.kind || d.service >= s.services.size())
        continue;
      done[j] = true;
      for (size_t w = 0; w < s.workers.size(); ++w)
        if (j < s.workers[w].counters.size())
          o.sample(name, slabel(d.service, w), s.workers[w].counters[j]);
    }
  }
}

}  // namespace

std::string escape_label(const std::string& v) {
  return escaped(v, true);
}

std::string prometheus_text(const Snapshot* snap, const SupervisorMetrics& sup) {
  Out o;
  build_and_process(o, snap, sup);
  o.family("corewire_up", "gauge", "1 if the dataplane process is running");
  o.sample("corewire_up", "", uint64_t(sup.dataplane_up));
  o.family("corewire_restarts_total", "counter",
           "Dataplane restarts by the supervisor after a crash");
  o.sample("corewire_restarts_total", "", sup.restarts);
  o.family("corewire_scrapes_total", "counter", "Metrics scrapes served");
  o.sample("corewire_scrapes_total", "", sup.scrapes);
  if (!snap) return o.take();
  const Snapshot& s = *snap;

  dataplane_identity(o, s);
  o.family("corewire_stats_publish_total", "counter", "Stats segment publish rounds");
  o.sample("corewire_stats_publish_total", "", s.publish_count);

  for (size_t i = 0; i < std::size(kWorkerFields); ++i) {
    const auto& f = kWorkerFields[i];
    const bool ns = std::string(f.name) == "busy_ns";
    const std::string name = ns ? "corewire_worker_busy_seconds_total"
                                : std::string("corewire_worker_") + f.name + "_total";
    o.family(name, "counter", ns ? "Seconds spent handling bursts" : f.help);
    for (size_t w = 0; w < s.workers.size(); ++w) {
      if (ns)
        o.sample(name, wlabel(w), double(s.workers[w].worker[i]) / 1e9);
      else
        o.sample(name, wlabel(w), s.workers[w].worker[i]);
    }
  }
  for (size_t i = 0; i < std::size(kIoFields); ++i) {
    const auto& f = kIoFields[i];
    const std::string name = std::string("corewire_io_") + f.name + (f.gauge ? "" : "_total");
    o.family(name, f.gauge ? "gauge" : "counter", f.help);
    for (size_t w = 0; w < s.workers.size(); ++w) o.sample(name, wlabel(w), s.workers[w].io[i]);
  }
  // The backend's named values: drop reasons, link gauges (port_families) and everything
  // else (port statistics).
  bool any_drop = false, any_other = false;
  for (auto& [n, v] : s.backend_counters)
    if (!backend_gauge(n)) (n.rfind("drop.", 0) == 0 ? any_drop : any_other) = true;
  if (any_drop) {
    o.family("corewire_backend_drops_total", "counter",
             "Packets dropped by the backend, by reason");
    for (auto& [n, v] : s.backend_counters)
      if (n.rfind("drop.", 0) == 0)
        o.sample("corewire_backend_drops_total", "reason=\"" + escape_label(n.substr(5)) + "\"", v);
  }
  if (any_other) {
    o.family("corewire_backend_stat_total", "counter", "Backend statistics (e.g. DPDK port stats)");
    for (auto& [n, v] : s.backend_counters)
      if (n.rfind("drop.", 0) != 0 && !backend_gauge(n))
        o.sample("corewire_backend_stat_total", "name=\"" + escape_label(n) + "\"", v);
  }
  port_families(o, port_views(s));

  auto slabel = [&](size_t svc, size_t w) {
    return "service=\"" + escape_label(s.services[svc]) + "\"," + wlabel(w);
  };
  for (size_t i = 0; i < std::size(kServiceFields); ++i) {
    const auto& f = kServiceFields[i];
    const std::string name = std::string("corewire_service_") + f.name + "_total";
    o.family(name, "counter", f.help);
    for (size_t svc = 0; svc < s.services.size(); ++svc)
      for (size_t w = 0; w < s.workers.size(); ++w)
        o.sample(name, slabel(svc, w), s.workers[w].services[svc].c[i]);
  }
  declared_counters(o, s, slabel);
  const std::string h = "corewire_service_latency_seconds";
  o.family(h, "histogram",
           "Service time per request: from the worker receiving its burst to the replies flushed");
  for (size_t svc = 0; svc < s.services.size(); ++svc)
    for (size_t w = 0; w < s.workers.size(); ++w) {
      const ServiceSnapshot& ss = s.workers[w].services[svc];
      uint64_t cum = 0;
      for (uint32_t k = 0; k < rt::LatencyHist::kBuckets; ++k) {
        cum += ss.buckets[k];
        const std::string le = k < rt::LatencyHist::kBounded
                                   ? num(double(rt::LatencyHist::kUpperNs[k]) / 1e9)
                                   : "+Inf";
        o.sample(h + "_bucket", slabel(svc, w) + ",le=\"" + le + "\"", cum);
      }
      o.sample(h + "_sum", slabel(svc, w), double(ss.sum_ns) / 1e9);
      o.sample(h + "_count", slabel(svc, w), cum);
    }
  return o.take();
}

}  // namespace cw::ctl
