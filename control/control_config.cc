#include "control/control_config.hh"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

namespace cw::ctl {

namespace {

std::string default_run_dir() {
  if (::geteuid() == 0) return "/run/corewire";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/corewire";
  return "/tmp/corewire-" + std::to_string(::geteuid());
}

// (replacement, deprecated key) pairs of [control].
constexpr std::pair<std::string_view, std::string_view> kRenamedKeys[] = {
    {"publish", "publish_ms"}, {"drain_timeout", "drain_timeout_ms"}};

std::string under(const std::string& dir, const std::string& p) {
  return !p.empty() && p[0] == '/' ? p : dir + "/" + p;
}

}  // namespace

std::optional<uint64_t> parse_duration_ns(std::string_view s) {
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {{"min", 60'000'000'000},
                                                                     {"ms", 1'000'000},
                                                                     {"us", 1'000},
                                                                     {"\u00b5s", 1'000},
                                                                     {"ns", 1},
                                                                     {"s", 1'000'000'000},
                                                                     {"m", 60'000'000'000},
                                                                     {"h", 3'600'000'000'000}};
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  uint64_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  std::string unit(p, size_t(s.data() + s.size() - p));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (char& c : unit) c = char(std::tolower(static_cast<unsigned char>(c)));
  // A bare number has no unit to read it in; only 0 means the same in every unit.
  if (unit.empty()) return n == 0 ? std::optional<uint64_t>(0) : std::nullopt;
  for (const auto& [name, mul] : kUnits)
    if (unit == name)
      return n <= UINT64_MAX / mul ? std::optional<uint64_t>(n * mul) : std::nullopt;
  return std::nullopt;
}

std::string duration_text(uint64_t ns) {
  static constexpr std::pair<const char*, uint64_t> kUnits[] = {{"h", 3'600'000'000'000},
                                                                {"m", 60'000'000'000},
                                                                {"s", 1'000'000'000},
                                                                {"ms", 1'000'000},
                                                                {"us", 1'000}};
  if (ns == 0) return "0";
  for (const auto& [name, mul] : kUnits)
    if (ns % mul == 0) return std::to_string(ns / mul) + name;
  return std::to_string(ns) + "ns";
}

Result<uint64_t> duration_from(const toml::node& v, uint64_t unit_ns, uint64_t lo, uint64_t hi) {
  const std::string range = "from " + duration_text(lo * unit_ns) + " to " +
                            duration_text(hi * unit_ns) + ", e.g. \"" +
                            duration_text(std::max<uint64_t>(lo, 1) * unit_ns) + "\"";
  std::optional<uint64_t> ns;
  if (auto* i = v.as_integer()) {
    if (i->get() < 0 || uint64_t(i->get()) > UINT64_MAX / 1'000'000'000)
      return make_error("must be a duration " + range);
    ns = uint64_t(i->get()) * 1'000'000'000;  // integer seconds
  } else if (auto* t = v.as_string()) {
    ns = parse_duration_ns(t->get());
    if (!ns)
      return make_error("'" + t->get() +
                        "' is not a duration (a number and a unit: ns, us, ms, s, m, h)");
  } else {
    return make_error("expected a duration (a string like \"250ms\" or integer seconds)");
  }
  if (*ns % unit_ns != 0)
    return make_error(duration_text(*ns) + " is finer than this key's resolution (" +
                      duration_text(unit_ns) + ")");
  if (*ns / unit_ns < lo || *ns / unit_ns > hi)
    return make_error(duration_text(*ns) + " is out of range: must be a duration " + range);
  return *ns / unit_ns;
}

ControlConfig default_control_config() {
  ControlConfig c;
  c.run_dir = default_run_dir();
  c.socket = under(c.run_dir, "control.sock");
  c.stats = under(c.run_dir, "stats");
  return c;
}

Result<ControlConfig> control_config_from(const toml::table& root) {
  ControlConfig c;
  std::string run_dir, socket = "control.sock", stats = "stats";
  const toml::table* t = root["control"].as_table();
  if (root.contains("control") && !t) return make_error("control: must be a table");
  if (t) {
    // An old key beside its replacement: which one was meant is unclear.
    for (const auto& [now, old] : kRenamedKeys)
      if (t->contains(now) && t->contains(old))
        return make_error("control." + std::string(old) + ": give " + std::string(now) +
                          " or its deprecated form " + std::string(old) + ", not both");
    for (auto&& kv : *t) {
      // Not a structured binding: the lambdas below capture v, which clang 14 (the fuzz
      // build) does not allow for bindings.
      const toml::node& v = kv.second;
      const std::string key(kv.first.str());
      const std::string where = "control." + key + ": ";
      auto str = [&](std::string& out) -> Result<void> {
        if (!v.is_string()) return make_error(where + "must be a string");
        out = std::string(*v.value<std::string_view>());
        return {};
      };
      auto num = [&](uint32_t& out, int64_t lo, int64_t hi) -> Result<void> {
        auto i = v.value<int64_t>();
        if (!v.is_integer() || !i || *i < lo || *i > hi)
          return make_error(where + "must be an integer in " + std::to_string(lo) + ".." +
                            std::to_string(hi));
        out = uint32_t(*i);
        return {};
      };
      // Durations: a string with a unit, or integer seconds (as everywhere in the config).
      auto dur = [&](uint32_t& out, uint64_t lo_ms, uint64_t hi_ms) -> Result<void> {
        auto ms = duration_from(v, 1'000'000, lo_ms, hi_ms);
        if (!ms) return make_error(where + ms.error().message);
        out = uint32_t(*ms);
        return {};
      };
      // The old integer-millisecond keys still work, with a warning naming the new form.
      auto deprecated = [&](const char* now, uint32_t ms) {
        c.deprecations.push_back("control." + key + " is deprecated: write " + now + " = \"" +
                                 duration_text(uint64_t(ms) * 1'000'000) + "\"");
      };
      Result<void> r;
      if (key == "run_dir")
        r = str(run_dir);
      else if (key == "socket")
        r = str(socket);
      else if (key == "stats")
        r = str(stats);
      else if (key == "publish")
        r = dur(c.publish_ms, kMinPublishMs, kMaxPublishMs);
      else if (key == "drain_timeout")
        r = dur(c.drain_timeout_ms, 0, kMaxDrainTimeoutMs);
      else if (key == "publish_ms") {
        if ((r = num(c.publish_ms, kMinPublishMs, kMaxPublishMs)))
          deprecated("publish", c.publish_ms);
      } else if (key == "drain_timeout_ms") {
        if ((r = num(c.drain_timeout_ms, 0, kMaxDrainTimeoutMs)))
          deprecated("drain_timeout", c.drain_timeout_ms);
      } else if (key == "admin") {
        std::string a;
        r = str(a);
        if (r && a.empty()) {
          c.admin_port = 0;
        } else if (r) {
          const size_t colon = a.rfind(':');
          in_addr ip{};
          if (colon == std::string::npos ||
              ::inet_pton(AF_INET, a.substr(0, colon).c_str(), &ip) != 1)
            return make_error(where + "must be \"127.0.0.1:PORT\"");
          if ((ntohl(ip.s_addr) >> 24) != 127)
            return make_error(where + "admin HTTP listens on loopback only");
          const long port = std::strtol(a.c_str() + colon + 1, nullptr, 10);
          if (port <= 0 || port > 65535) return make_error(where + "port must be 1..65535");
          c.admin_host = a.substr(0, colon);
          c.admin_port = uint16_t(port);
        }
      } else {
        return make_error(where +
                          "unknown key (run_dir, socket, stats, publish, admin, drain_timeout)");
      }
      if (!r) return r.error();
    }
  }
  c.run_dir = run_dir.empty() ? default_run_dir() : run_dir;
  c.socket = under(c.run_dir, socket);
  c.stats = under(c.run_dir, stats);
  return c;
}

Result<ControlConfig> control_config_from_file(const std::string& path) {
  auto fail = [&](const toml::parse_error& e) {
    return make_error(path + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  };
#if TOML_EXCEPTIONS
  try {
    return control_config_from(toml::parse_file(path));
  } catch (const toml::parse_error& e) {
    return fail(e);
  }
#else
  toml::parse_result r = toml::parse_file(path);
  if (!r) return fail(r.error());
  return control_config_from(r.table());
#endif
}

Result<void> ensure_run_dir(const std::string& dir) {
  if (dir.empty()) return make_error("control.run_dir: empty");
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string p = dir.substr(0, i);
    const bool last = i == dir.size();
    if (::mkdir(p.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST)
      return make_error("control.run_dir " + p + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error("control.run_dir " + dir + ": not a directory");
  if (st.st_uid != ::geteuid())
    return make_error("control.run_dir " + dir + ": owned by uid " + std::to_string(st.st_uid) +
                      ", not by us (uid " + std::to_string(::geteuid()) + ")");
  return {};
}

}  // namespace cw::ctl
