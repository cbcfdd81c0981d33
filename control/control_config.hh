// The [control] section of corewire.toml, shared by the dataplane (which creates the socket
// and the stats segment) and corewirectl (which finds them there):
//
//   [control]
//   run_dir = "/run/corewire"     # default: /run/corewire as root, else
//                                 #   $XDG_RUNTIME_DIR/corewire, else /tmp/corewire-<uid>
//   socket = "control.sock"       # relative to run_dir unless absolute
//   stats = "stats"               # relative to run_dir unless absolute
//   publish = "10ms"              # stats segment publish period (was publish_ms = 10)
//   admin = "127.0.0.1:9901"      # corewirectl's admin HTTP (loopback only); "" = off
//   drain_timeout = "5s"          # graceful drain deadline (was drain_timeout_ms = 5000)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "dataplane/result.hh"

namespace cw::ctl {

struct ControlConfig {
  std::string run_dir;
  std::string socket;  // absolute after resolve
  std::string stats;   // absolute after resolve
  uint32_t publish_ms = 10;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9901;  // 0 = admin HTTP off
  uint32_t drain_timeout_ms = 5000;
  // Deprecated keys the file used, one message each (callers log them as warnings).
  std::vector<std::string> deprecations;
};

inline constexpr uint32_t kMinPublishMs = 1, kMaxPublishMs = 10'000;
inline constexpr uint32_t kMaxDrainTimeoutMs = 600'000;

// Defaults with paths resolved (no [control] section).
ControlConfig default_control_config();
// Reads root["control"] (absent = defaults); unknown keys and bad values are errors naming
// the key.
Result<ControlConfig> control_config_from(const toml::table& root);
// Parses a whole file and reads its [control] section.
Result<ControlConfig> control_config_from_file(const std::string& path);
// mkdir -p with mode 0700 for the last component; refuses a run dir owned by another uid.
Result<void> ensure_run_dir(const std::string& dir);

}  // namespace cw::ctl
