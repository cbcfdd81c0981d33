#include "control/nats_monitor.hh"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include "control/version.hh"

namespace cw::ctl {

namespace {

constexpr const char* kService = "pubsub";

// The sum of the pubsub tables' declared counter `name`; nullopt when there is none.
std::optional<uint64_t> total(const Snapshot& s, std::string_view name) {
  std::optional<uint64_t> t;
  for (size_t i = 0; i < s.counters.size(); ++i)
    if (s.counters[i].name == name && s.services.at(s.counters[i].service) == kService)
      t = t.value_or(0) + s.counter_total(i);
  return t;
}

// RFC 3339 with nanoseconds, UTC, as Go's time.Time marshals.
std::string rfc3339(uint64_t unix_ns) {
  const time_t sec = time_t(unix_ns / 1'000'000'000);
  tm t{};
  gmtime_r(&sec, &t);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                (unsigned long long)(unix_ns % 1'000'000'000));
  return buf;
}

// Go's Duration.String() at whole seconds, as nats-server's uptime ("1h2m3s", "0s").
std::string uptime(uint64_t ns) {
  uint64_t s = ns / 1'000'000'000;
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d", s %= 86400;
  if (!out.empty() || s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (!out.empty() || s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  return out + std::to_string(s) + "s";
}

// The dataplane's resident set in bytes (0 when /proc does not say).
uint64_t rss_bytes(int64_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * uint64_t(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::optional<Json> nats_varz(const Snapshot& s, uint64_t now_unix_ns) {
  if (!total(s, "connections")) return std::nullopt;
  Json j{{"server_name", "corewire"},
         {"version", kVersion},
         {"proto", 1},
         {"headers", true},
         {"start", rfc3339(s.start_unix_ns)},
         {"now", rfc3339(now_unix_ns)},
         {"uptime", uptime(now_unix_ns > s.start_unix_ns ? now_unix_ns - s.start_unix_ns : 0)},
         {"mem", rss_bytes(s.pid)},
         {"cores", sysconf(_SC_NPROCESSORS_ONLN)},
         {"workers", s.workers.size()}};
  for (const char* n : {"connections", "total_connections", "subscriptions", "slow_consumers",
                        "in_msgs", "out_msgs", "in_bytes", "out_bytes"})
    j[n] = total(s, n).value_or(0);
  return j;
}

std::optional<Json> nats_subsz(const Snapshot& s) {
  const auto subs = total(s, "subscriptions");
  if (!subs) return std::nullopt;
  return Json{{"num_subscriptions", *subs}};
}

}  // namespace cw::ctl
