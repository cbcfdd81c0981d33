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
#include <optional>
#include <string>
#include <string_view>
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

// A duration as every duration key of corewire.toml writes it: an unsigned integer and a
// unit, "100us" ("\u00b5s" too), "250ms", "5s", "2m" ("2min"), "1h", "10ns", or a bare "0"; in
// nanoseconds. Empty when the text is not one or overflows 64 bits.
std::optional<uint64_t> parse_duration_ns(std::string_view s);
// ns in the largest unit that writes it exactly ("250ms", "5s", "0").
std::string duration_text(uint64_t ns);
// A duration key's value: a string with a unit or integer seconds, in whole units of
// unit_ns (1'000'000 for a key kept in ms), in [lo, hi] units. The error says what is wrong
// (not a duration, finer than the key's resolution, out of range) without the key's name.
Result<uint64_t> duration_from(const toml::node& v, uint64_t unit_ns, uint64_t lo, uint64_t hi);

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
