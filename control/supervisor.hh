// Supervising the dataplane process: start it, notice when it dies, restart it after an
// exponential backoff, count restarts and keep the last exit reason. It can also adopt a
// dataplane it did not start (a new corewirectl re-attaching to one left running when the
// previous corewirectl died): such a process is watched through a pidfd, since only its
// real parent can wait() for it.
//
// Single-threaded: the owner calls poll() periodically (corewirectl's main loop).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/result.hh"

namespace cw::ctl {

struct SupervisorConfig {
  std::string program;            // path of the dataplane executable
  std::vector<std::string> args;  // argv[1..]
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10'000};
  // A child that ran at least this long resets the backoff to backoff_initial.
  std::chrono::milliseconds stable_after{10'000};
  // Exit codes that end supervision instead of a restart: 0 (asked to stop) and 2 (usage or
  // configuration error: restarting cannot help).
  std::vector<int> final_codes{0, 2};
};

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Supervisor(SupervisorConfig cfg) : cfg_(std::move(cfg)) {}
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;

  // Starts the dataplane now (fork + exec in a new session, so a terminal's ^C reaches only
  // corewirectl, which then drains it).
  Result<void> start();
  // Watches an already running dataplane (not our child).
  Result<void> adopt(pid_t pid);

  // Reaps a dead child and restarts it when its backoff has elapsed. Returns true if the
  // process state changed (died or restarted).
  bool poll(Clock::time_point now = Clock::now());

  // Stops supervising: no more restarts. Sends sig, waits up to deadline, then SIGKILL.
  // Returns the exit reason.
  std::string stop(int sig, std::chrono::milliseconds deadline);
  // Stop restarting (e.g. the dataplane was told to shut down); poll() still reaps.
  void no_restart() { restart_ = false; }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool adopted() const { return pidfd_ >= 0 && !own_child_; }
  uint64_t restarts() const { return restarts_; }
  uint64_t starts() const { return starts_; }
  const std::string& last_exit() const { return last_exit_; }
  int last_exit_code() const { return last_code_; }  // -1 if killed or unknown
  // Delay before the pending restart (0 when running or none pending).
  std::chrono::milliseconds pending_backoff() const {
    return pending_ ? backoff_ : std::chrono::milliseconds{0};
  }
  // Whether it exited with one of final_codes and so will not be restarted.
  bool finished() const { return finished_; }

 private:
  void died(const std::string& reason, int code, Clock::time_point now);
  Result<void> spawn();
  void close_pidfd();

  SupervisorConfig cfg_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool own_child_ = false;
  bool restart_ = true;
  bool pending_ = false;
  bool finished_ = false;
  Clock::time_point started_at_{}, restart_at_{};
  std::chrono::milliseconds backoff_{0};
  uint64_t restarts_ = 0, starts_ = 0;
  uint32_t consecutive_ = 0;  // crashes since the last stable run
  std::string last_exit_;
  int last_code_ = -1;
};

// "exited with status 3", "killed by signal 9 (Killed)", from a wait status.
std::string describe_wait_status(int status);

}  // namespace cw::ctl
