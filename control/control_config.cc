#include "control/control_config.hh"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace cw::ctl {

namespace {

std::string default_run_dir() {
  if (::geteuid() == 0) return "/run/corewire";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/corewire";
  return "/tmp/corewire-" + std::to_string(::geteuid());
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
      Result<void> r;
      if (key == "run_dir")
        r = str(run_dir);
      else if (key == "socket")
        r = str(socket);
      else if (key == "stats")
        r = str(stats);
      else if (key == "publish_ms")
        r = num(c.publish_ms, kMinPublishMs, kMaxPublishMs);
      else if (key == "drain_timeout_ms")
        r = num(c.drain_timeout_ms, 0, 600'000);
      else if (key == "admin") {
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
        return make_error(
            where + "unknown key (run_dir, socket, stats, publish_ms, admin, drain_timeout_ms)");
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
