// corewirectl run: validate, start (or re-attach to) and supervise the dataplane, serve admin
// HTTP, tell systemd (Type=notify), turn SIGTERM/SIGINT into a graceful drain and SIGHUP into
// a live reload.
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "control/admin_http.hh"
#include "control/cli.hh"
#include "control/supervisor.hh"

namespace cw::ctl {

namespace {

constexpr auto kLoopPeriod = std::chrono::milliseconds(20);   // supervision granularity
constexpr auto kStopGrace = std::chrono::milliseconds(2000);  // beyond the drain deadline

// printf-style into the process logger (control/logging.hh).
void log(spdlog::level::level_enum level, const char* fmt, auto... args) {
  char line[1024];
  std::snprintf(line, sizeof line, fmt, args...);
  spdlog::log(level, "{}", line);
}

// The dataplane next to corewirectl, else in the build tree's app/server/.
std::string find_corewire() {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "corewire";
  self[n] = 0;
  std::string dir(self);
  dir.resize(dir.rfind('/'));
  for (const std::string& p : {dir + "/corewire", dir + "/../app/server/corewire"})
    if (::access(p.c_str(), X_OK) == 0) return p;
  return dir + "/corewire";
}

// Runs "<program> --check-config <args>" (stdout discarded); its exit code, or -1.
int check_config(const std::string& program, const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>(program.c_str()), const_cast<char*>("--check-config")};
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, program.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

}  // namespace

int cmd_run(const RunOptions& o) {
  if (!o.run_dir.empty()) {
    log(spdlog::level::err, "run: set control.run_dir in %s (the dataplane reads it there)",
        o.config.c_str());
    return 2;
  }
  auto cfgr = resolve_target(o.config, "");
  if (!cfgr) {
    log(spdlog::level::err, "%s", cfgr.error().message.c_str());
    return 2;
  }
  ControlConfig cfg = cfgr.value();
  for (const auto& d : cfg.deprecations) spdlog::warn("{}: {}", o.config, d);
  if (o.admin_port >= 0) cfg.admin_port = uint16_t(o.admin_port);
  if (auto d = ensure_run_dir(cfg.run_dir); !d) {
    log(spdlog::level::err, "%s", d.error().message.c_str());
    return 2;
  }

  SupervisorConfig sc;
  sc.program = o.corewire.empty() ? find_corewire() : o.corewire;
  // No config file: the dataplane runs its built-in default, and both find the default paths.
  if (!o.config.empty()) sc.args = {"-c", o.config};
  sc.args.insert(sc.args.end(), o.extra_args.begin(), o.extra_args.end());
  sc.backoff_initial = std::chrono::milliseconds(o.backoff_initial_ms);
  sc.backoff_max = std::chrono::milliseconds(o.backoff_max_ms);
  Supervisor sup(sc);
  // The dataplane validates its own config (one line naming file, line and key on error).
  if (const int rc = check_config(sc.program, sc.args); rc != 0) {
    log(spdlog::level::err, "%s --check-config %s: %s", sc.program.c_str(),
        o.config.empty() ? "(built-in default)" : o.config.c_str(),
        rc < 0 ? "cannot run it" : "configuration rejected");
    return 2;
  }

  // Signals are taken synchronously by this loop; threads started below inherit the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  ::pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  AdminState st;
  st.socket = cfg.socket;

  // One supervisor per run dir: the lock is released by the kernel when corewirectl dies
  // (even by SIGKILL), and is close-on-exec so the dataplane never holds it.
  const std::string lock_path = cfg.run_dir + "/corewirectl.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    log(spdlog::level::err, "%s: %s", lock_path.c_str(),
        errno == EWOULDBLOCK ? "another corewirectl supervises this run dir"
                             : std::strerror(errno));
    return 1;
  }
  // Admin HTTP before touching the dataplane, so a bind failure leaves it alone.
  std::unique_ptr<AdminHttp> http;
  if (cfg.admin_port != 0) {
    auto h = AdminHttp::start(cfg.admin_host, cfg.admin_port, st);
    if (!h) {
      log(spdlog::level::err, "%s", h.error().message.c_str());
      return 2;
    }
    http = std::move(h.value());
    log(spdlog::level::info, "admin HTTP on http://%s:%u/", cfg.admin_host.c_str(),
        unsigned(http->port()));
  }

  // Re-attach to a dataplane left running by a previous corewirectl, else start one.
  if (auto r = control_request(cfg.socket, {{"cmd", "status"}}, 1000);
      r && r.value().value("ok", false)) {
    const pid_t pid = r.value().value("pid", -1);
    if (auto a = sup.adopt(pid); !a) {
      log(spdlog::level::err, "%s", a.error().message.c_str());
      return 1;
    }
    log(spdlog::level::info, "re-attached to the running dataplane, pid %d", int(pid));
  } else {
    if (auto s = sup.start(); !s) {
      log(spdlog::level::err, "%s", s.error().message.c_str());
      return 2;
    }
    log(spdlog::level::info, "started %s (pid %d)", sc.program.c_str(), int(sup.pid()));
  }

  bool notified_ready = false;
  uint64_t seen_restarts = 0;
  int exit_code = 0;
  // WatchdogSec= in the unit: this loop pets the watchdog at half the interval, so a hung
  // supervisor is restarted by systemd (the dataplane is watched by this loop).
  uint64_t watchdog_us = 0;
  if (sd_watchdog_enabled(0, &watchdog_us) <= 0) watchdog_us = 0;
  auto last_pet = std::chrono::steady_clock::now() - std::chrono::hours(1);
  for (;;) {
    if (watchdog_us &&
        std::chrono::steady_clock::now() - last_pet >= std::chrono::microseconds(watchdog_us / 2)) {
      sd_notify(0, "WATCHDOG=1");
      last_pet = std::chrono::steady_clock::now();
    }
    // 1. Supervise: reap, restart after backoff.
    if (sup.poll()) {
      if (!sup.running() && !sup.finished())
        log(spdlog::level::warn, "dataplane %s; restart in %lld ms", sup.last_exit().c_str(),
            (long long)sup.pending_backoff().count());
      if (sup.restarts() != seen_restarts) {
        seen_restarts = sup.restarts();
        log(spdlog::level::warn, "dataplane restarted (pid %d, restart #%llu)", int(sup.pid()),
            (unsigned long long)seen_restarts);
        sd_notifyf(0, "STATUS=restarted after: %s", sup.last_exit().c_str());
      }
    }
    if (sup.finished()) {
      log(spdlog::level::info, "dataplane %s; exiting", sup.last_exit().c_str());
      exit_code = sup.last_exit_code();  // 0 (asked to stop) or 2 (configuration)
      break;
    }
    // 2. Follow the segment (new file after each dataplane start).
    {
      std::lock_guard g(st.mu);
      if (!st.reader || st.reader->replaced()) {
        auto r = SegmentReader::open(cfg.stats);
        if (r && r->pid() == sup.pid())
          st.reader = std::make_unique<SegmentReader>(std::move(r.value()));
        else if (st.reader && st.reader->replaced())
          st.reader.reset();
      }
      st.up = sup.running();
      st.pid = sup.pid();
      st.adopted = sup.adopted();
      st.restarts = sup.restarts();
      st.last_exit = sup.last_exit();
      if (!notified_ready && st.reader && st.reader->pid() == sup.pid()) {
        sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=serving (dataplane pid %d)", int(::getpid()),
                   int(sup.pid()));
        notified_ready = true;
      }
    }
    // 3. Signals.
    timespec ts{0, long(std::chrono::nanoseconds(kLoopPeriod).count())};
    const int sig = ::sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGHUP) {
      auto r = control_request(cfg.socket, {{"cmd", "reload"}});
      log(spdlog::level::info, "reload: %s",
          r ? r.value().dump().c_str() : r.error().message.c_str());
    } else if (sig == SIGTERM || sig == SIGINT) {
      sd_notify(0, "STOPPING=1\nSTATUS=draining");
      log(spdlog::level::info, "%s: draining the dataplane (deadline %u ms)", ::strsignal(sig),
          cfg.drain_timeout_ms);
      // The dataplane drains on SIGTERM; after the deadline (+grace) it is killed.
      const std::string why =
          sup.stop(SIGTERM, std::chrono::milliseconds(cfg.drain_timeout_ms) + kStopGrace);
      log(spdlog::level::info, "dataplane %s", why.c_str());
      break;
    }
  }
  http.reset();
  return exit_code;
}

}  // namespace cw::ctl
