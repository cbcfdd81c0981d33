#include "control/supervisor.hh"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace cw::ctl {

namespace {

int pidfd_open(pid_t pid) {
  return int(::syscall(SYS_pidfd_open, pid, 0));
}

bool pidfd_exited(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string s = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                    ::strsignal(WTERMSIG(status)) + ")";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "stopped (status " + std::to_string(status) + ")";
}

Supervisor::~Supervisor() {
  close_pidfd();
}

void Supervisor::close_pidfd() {
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

Result<void> Supervisor::spawn() {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(cfg_.program.c_str()));
  for (auto& a : cfg_.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return make_error(std::string("supervisor: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // corewirectl blocks signals it handles
    ::execv(argv[0], argv.data());
    ::_exit(127);  // exec failed
  }
  pid_ = pid;
  own_child_ = true;
  pidfd_ = pidfd_open(pid);  // optional for own children (waitpid is used); kept for symmetry
  started_at_ = Clock::now();
  ++starts_;
  return {};
}

Result<void> Supervisor::start() {
  if (::access(cfg_.program.c_str(), X_OK) != 0)
    return make_error("supervisor: " + cfg_.program + ": " + std::strerror(errno));
  restart_ = true;
  finished_ = false;
  return spawn();
}

Result<void> Supervisor::adopt(pid_t pid) {
  const int fd = pidfd_open(pid);
  if (fd < 0)
    return make_error("supervisor: cannot watch pid " + std::to_string(pid) + ": " +
                      std::strerror(errno));
  close_pidfd();
  pidfd_ = fd;
  pid_ = pid;
  own_child_ = false;
  restart_ = true;
  finished_ = false;
  started_at_ = Clock::now();
  return {};
}

void Supervisor::died(const std::string& reason, int code, Clock::time_point now) {
  close_pidfd();
  pid_ = -1;
  last_exit_ = reason;
  last_code_ = code;
  const bool final_code =
      std::find(cfg_.final_codes.begin(), cfg_.final_codes.end(), code) != cfg_.final_codes.end();
  if (final_code || !restart_) {
    finished_ = final_code;
    pending_ = false;
    return;
  }
  if (now - started_at_ >= cfg_.stable_after) consecutive_ = 0;
  ++consecutive_;
  auto b = cfg_.backoff_initial;
  for (uint32_t i = 1; i < consecutive_ && b < cfg_.backoff_max; ++i) b *= 2;
  backoff_ = std::min(b, cfg_.backoff_max);
  restart_at_ = now + backoff_;
  pending_ = true;
}

bool Supervisor::poll(Clock::time_point now) {
  bool changed = false;
  if (pid_ > 0) {
    if (own_child_) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        died(describe_wait_status(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1, now);
        changed = true;
      }
    } else if (pidfd_exited(pidfd_)) {
      died("exited (adopted process: status unknown)", -1, now);
      changed = true;
    }
  }
  if (pid_ < 0 && pending_ && restart_ && now >= restart_at_) {
    pending_ = false;
    if (spawn()) {
      ++restarts_;
    } else {
      died("restart failed", -1, now);
    }
    changed = true;
  }
  return changed;
}

std::string Supervisor::stop(int sig, std::chrono::milliseconds deadline) {
  restart_ = false;
  pending_ = false;
  if (pid_ <= 0) return last_exit_;
  ::kill(pid_, sig);
  const auto until = Clock::now() + deadline;
  while (pid_ > 0 && Clock::now() < until) {
    poll();
    if (pid_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (pid_ > 0) {
      poll();
      if (pid_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return last_exit_;
}

}  // namespace cw::ctl
