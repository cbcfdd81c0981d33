// Test helper: a network namespace the test creates, enters (this thread only) and always
// deletes. A net_tap hot-plugged while inside is created in the namespace, so the kernel
// side of the tap is isolated from the host.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace cw::dp::test {

inline int run(const std::string& cmd) {
  const int r = std::system(cmd.c_str());
  return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}
inline int sh(const std::string& cmd) {
  return run(cmd + " >/dev/null 2>&1");
}

// Why a tap-in-namespace test cannot run here (GTEST_SKIP reason), or nullptr.
inline const char* tap_env_missing() {
  if (geteuid() != 0) return "needs root (network namespace, tap device, EAL)";
  if (sh("ip -V") != 0) return "no iproute2 'ip' command";
  if (sh("python3 -c 1") != 0) return "no python3";
  if (access("/dev/net/tun", R_OK | W_OK) != 0) return "no /dev/net/tun for net_tap";
  return nullptr;
}

class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    sh("ip netns del " + name_);
    if (sh("ip netns add " + name_) != 0) return;
    added_ = true;
    home_ = ::open(("/proc/self/task/" + std::to_string(gettid()) + "/ns/net").c_str(), O_RDONLY);
    const int fd = ::open(("/var/run/netns/" + name_).c_str(), O_RDONLY);
    entered_ = home_ >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) ::close(fd);
  }
  ~Netns() {
    if (entered_) setns(home_, CLONE_NEWNET);
    if (home_ >= 0) ::close(home_);
    if (added_) sh("ip netns del " + name_);
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return entered_; }
  std::string exec(const std::string& cmd) const { return "ip netns exec " + name_ + " " + cmd; }

 private:
  std::string name_;
  int home_ = -1;
  bool added_ = false, entered_ = false;
};

// Gives the kernel side of tap `iface` (inside ns) its own MAC (the tap PMD put ours on it),
// an address, and brings it up.
inline bool configure_kernel_side(const Netns& ns, const std::string& iface,
                                  const std::string& cidr) {
  return sh(ns.exec("ip link set " + iface + " down")) == 0 &&
         sh(ns.exec("ip link set " + iface + " address 02:00:00:00:99:01")) == 0 &&
         sh(ns.exec("ip addr add " + cidr + " dev " + iface)) == 0 &&
         sh(ns.exec("ip link set " + iface + " up")) == 0;
}

}  // namespace cw::dp::test
