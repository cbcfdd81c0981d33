#include "control/control_config.hh"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

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

// A duration as corewire's config writes them: "250ms", "5s", "2m", "1h", or "0"; in ms.
std::optional<uint64_t> duration_ms(std::string_view s) {
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"min", 60'000}, {"m", 60'000}, {"h", 3'600'000}};
  uint64_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  const std::string_view unit(p, size_t(s.data() + s.size() - p));
  if (unit.empty()) return n == 0 ? std::optional<uint64_t>(0) : std::nullopt;
  for (const auto& [name, mul] : kUnits)
    if (unit == name)
      return n <= UINT64_MAX / mul ? std::optional<uint64_t>(n * mul) : std::nullopt;
  return std::nullopt;
}

std::string under(const std::string& dir, const std::string& p) {
  return !p.empty() && p[0] == '/' ? p : dir + "/" + p;
}

}  // namespace

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
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
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
        std::optional<uint64_t> ms;
        if (auto i = v.value<int64_t>(); v.is_integer() && i && *i >= 0)
          ms = uint64_t(*i) <= hi_ms / 1000 ? uint64_t(*i) * 1000 : hi_ms + 1;
        else if (v.is_string())
          ms = duration_ms(*v.value<std::string_view>());
        if (!ms || *ms < lo_ms || *ms > hi_ms)
          return make_error(where + "must be a duration from " + std::to_string(lo_ms) + "ms to " +
                            std::to_string(hi_ms) + "ms, e.g. \"10ms\" or \"5s\"");
        out = uint32_t(*ms);
        return {};
      };
      // The old integer-millisecond keys still work, with a warning naming the new form.
      auto deprecated = [&](const char* now, uint32_t ms) {
        c.deprecations.push_back("control." + key + " is deprecated: write " + now + " = \"" +
                                 std::to_string(ms) + "ms\"");
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
