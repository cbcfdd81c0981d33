#include "control/metrics.hh"

#include <charconv>
#include <iterator>
#include <vector>

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
  o.family("corewire_up", "gauge", "1 if the dataplane process is running");
  o.sample("corewire_up", "", uint64_t(sup.dataplane_up));
  o.family("corewire_restarts_total", "counter",
           "Dataplane restarts by the supervisor after a crash");
  o.sample("corewire_restarts_total", "", sup.restarts);
  o.family("corewire_scrapes_total", "counter", "Metrics scrapes served");
  o.sample("corewire_scrapes_total", "", sup.scrapes);
  if (!snap) return o.take();
  const Snapshot& s = *snap;

  o.family("corewire_dataplane_info", "gauge", "Dataplane identity (value is always 1)");
  o.sample("corewire_dataplane_info",
           "backend=\"" + escape_label(s.backend) + "\",pid=\"" + std::to_string(s.pid) +
               "\",epoch=\"" + std::to_string(s.epoch) + "\"",
           uint64_t(1));
  o.family("corewire_dataplane_start_time_seconds", "gauge", "Dataplane start, Unix time");
  o.sample("corewire_dataplane_start_time_seconds", "", double(s.start_unix_ns) / 1e9);
  o.family("corewire_dataplane_state", "gauge",
           "Dataplane state: 0 starting, 1 serving, 2 draining, 3 stopped");
  o.sample("corewire_dataplane_state", "", uint64_t(s.state));
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
  // The backend's named totals: drop reasons and everything else (port statistics).
  bool any_drop = false, any_other = false;
  for (auto& [n, v] : s.backend_counters) (n.rfind("drop.", 0) == 0 ? any_drop : any_other) = true;
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
      if (n.rfind("drop.", 0) != 0)
        o.sample("corewire_backend_stat_total", "name=\"" + escape_label(n) + "\"", v);
  }

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
