// The build's identity, from the meson-generated cw_version.hh (meson.build).
#pragma once

#include <string>

#include "cw_version.hh"

namespace cw {

inline constexpr const char* kVersion = CW_VERSION;
inline constexpr const char* kCommit = CW_COMMIT;      // "unknown" outside a git checkout
inline constexpr const char* kBackends = CW_BACKENDS;  // built-in dataplanes, space-separated

// What --version prints: "corewire 0.1.0 (commit 5684fc1e2a3b; backends: epoll io_uring)".
inline std::string version_line(const std::string& program) {
  return program + " " + kVersion + " (commit " + kCommit + "; backends: " + kBackends + ")";
}

}  // namespace cw
