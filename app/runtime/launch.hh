// Start-up: the one place that names the concrete backends. It picks one by name (once),
// opens every socket, starts one pinned worker thread per configured core, and instantiates
// the worker loop for that backend's type, so the datapath runs with static dispatch.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "app/runtime/counters.hh"
#include "app/runtime/mailbox.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/stats.hh"
#include "app/runtime/worker.hh"
#include "cw_build_config.hh"
#include "dataplane/epoll/epoll_io.hh"
#include "dataplane/io.hh"
#if CW_HAVE_IO_URING
#include "dataplane/uring/uring_io.hh"
#endif
#if CW_HAVE_DPDK
#include "dataplane/dpdk/dpdk_io.hh"
#endif

namespace cw::rt {

struct RuntimeConfig {
  std::string backend = "auto";  // auto | io_uring | epoll | dpdk (never chosen by auto)
  dp::IoConfig io;
#if CW_HAVE_DPDK
  dp::DpdkConfig dpdk;  // EAL arguments, port, addresses: used by backend "dpdk" only
#endif
  LoopConfig loop;
  size_t mailbox_depth = 1024;
};

// Log sink for start-up decisions (which backend and why); defaults to stderr.
using LogFn = std::function<void(const std::string&)>;

template <class Services>
class Runtime {
 public:
  Runtime() = default;
  Runtime(const Runtime&) = delete;
  ~Runtime() {
    stop();
    join();
  }

  // Chooses the backend, opens sockets, starts workers; returns once every worker is
  // polling, or with the first error (then no thread is left running).
  Result<void> start(const RuntimeConfig& cfg, AppSpec<Services> app, const LogFn& log);

  void stop() {
    stop_.store(true);
    go_.store(true);
    go_.notify_all();
    wake_all();
  }
  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  const std::string& backend_name() const { return backend_name_; }
  dp::Endpoint bound(dp::SocketId s) const { return bound_.at(s); }
  unsigned workers() const { return cfg_.io.workers; }
  // Counters, readable from any thread while workers run.
  const WorkerStats& worker_stats(unsigned w) const { return wstats_[w]; }
  const ServiceStats& service_stats(unsigned w, uint16_t s) const {
    return sstats_[size_t(w) * nservices_ + s];
  }
  const dp::IoCounters& io_counters(unsigned w) const { return *io_counters_[w]; }
  // Service s's declared counters (counters.hh): their declarations, and worker w's values.
  // Empty before start().
  std::span<const CounterDecl> counter_decls(uint16_t s) const {
    return named_ ? named_[0].decls(s) : std::span<const CounterDecl>{};
  }
  std::span<const Counter> service_counters(unsigned w, uint16_t s) const {
    return named_ ? named_[w].values(s) : std::span<const Counter>{};
  }
  // Backend-specific counters as (name, total over workers), for backends that have them
  // (DPDK: drop reasons and port statistics); empty otherwise. Control path: allocates.
  std::vector<std::pair<std::string, uint64_t>> backend_counters() const {
    if (!backend_counters_) return {};
    return backend_counters_();
  }
  const std::vector<std::string>& service_names() const { return app_.service_names; }
  Mailboxes& mailboxes() { return *mail_; }

 private:
  template <class B>
  Result<void> run_on(std::unique_ptr<B> backend, const LogFn& log);
  std::vector<Services> make_services(unsigned w) {
    if (!app_.make_worker_services) return app_.make_services(w);
    return app_.make_worker_services(WorkerSetup{w, cfg_.io.workers, cfg_.io.max_conns, bound_});
  }
  void wake_all() {
    for (auto& w : wakers_)
      if (w) w();
  }
  void fail(const std::string& e) {
    std::lock_guard g(err_mu_);
    if (first_error_.empty()) first_error_ = e;
    failed_.store(true);
  }

  RuntimeConfig cfg_;
  AppSpec<Services> app_;
  std::string backend_name_;
  std::vector<dp::Endpoint> bound_;
  std::unique_ptr<WorkerStats[]> wstats_;
  std::unique_ptr<ServiceStats[]> sstats_;
  std::unique_ptr<ServiceCounterBlocks[]> named_;  // by worker, sized by the worker at setup
  size_t nservices_ = 0;
  std::vector<const dp::IoCounters*> io_counters_;
  std::vector<std::function<void()>> wakers_;
  std::unique_ptr<Mailboxes> mail_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> go_{false};
  std::atomic<bool> failed_{false};
  std::unique_ptr<std::latch> ready_;
  std::mutex err_mu_;
  std::string first_error_;
  std::vector<std::shared_ptr<void>> ios_;  // each worker's WorkerIo
  std::shared_ptr<void> backend_;           // keeps the chosen backend alive while workers run
  std::function<std::vector<std::pair<std::string, uint64_t>>()> backend_counters_;
};

// Whether io_uring can be used here; Error says why not (disabled by sysctl, seccomp, ...).
inline Result<void> probe_io_uring() {
#if CW_HAVE_IO_URING
  return dp::UringBackend::probe();
#else
  return make_error("built without liburing");
#endif
}

template <class Services>
Result<void> Runtime<Services>::start(const RuntimeConfig& cfg, AppSpec<Services> app,
                                      const LogFn& log) {
  cfg_ = cfg;
  app_ = std::move(app);
  if (cfg_.io.workers == 0) return make_error("runtime.cores: at least one worker is needed");
  nservices_ = app_.service_names.size();
  wstats_ = std::make_unique<WorkerStats[]>(cfg_.io.workers);
  sstats_ = std::make_unique<ServiceStats[]>(cfg_.io.workers * std::max<size_t>(nservices_, 1));
  named_ = std::make_unique<ServiceCounterBlocks[]>(cfg_.io.workers);
  io_counters_.assign(cfg_.io.workers, nullptr);
  wakers_.assign(cfg_.io.workers, nullptr);
  mail_ = std::make_unique<Mailboxes>(cfg_.io.workers, cfg_.mailbox_depth);
  cfg_.loop.busy_poll = cfg_.io.busy_poll;

  std::string want = cfg_.backend;
  if (want == "auto") {
    auto ok = probe_io_uring();
    if (ok) {
      want = "io_uring";
    } else {
      log("io_uring unavailable (" + ok.error().message + "); using the epoll backend");
      want = "epoll";
    }
  }
  if (want == "io_uring") {
#if CW_HAVE_IO_URING
    auto ok = probe_io_uring();
    if (!ok) return make_error("backend io_uring: " + ok.error().message);
    auto b = dp::UringBackend::create(cfg_.io, app_.sockets);
    if (!b) return b.error();
    return run_on(std::move(b.value()), log);
#else
    return make_error("backend io_uring: this build has no liburing");
#endif
  }
  if (want == "epoll") {
    auto b = dp::EpollBackend::create(cfg_.io, app_.sockets);
    if (!b) return b.error();
    return run_on(std::move(b.value()), log);
  }
  if (want == "dpdk") {
#if CW_HAVE_DPDK
    auto b = dp::DpdkBackend::create(cfg_.io, app_.sockets, cfg_.dpdk, log);
    if (!b) return b.error();
    return run_on(std::move(b.value()), log);
#else
    return make_error("backend dpdk: this build has no DPDK (libdpdk-dev)");
#endif
  }
  return make_error("runtime.backend: unknown backend '" + want +
                    "' (auto, io_uring, epoll, dpdk)");
}

template <class Services>
template <class B>
Result<void> Runtime<Services>::run_on(std::unique_ptr<B> backend, const LogFn& log) {
  static_assert(dp::Backend<B>);
  backend_name_ = B::name();
  // Backends that made start-up choices (io_uring: ring flags, send path, buffer sizes)
  // describe them in one line.
  if constexpr (requires { backend->features(); })
    log(std::string("backend ") + B::name() + " features: " + backend->features());
  if constexpr (requires(const B& cb) { cb.counters_by_name(); })
    backend_counters_ = [be = backend.get()] { return be->counters_by_name(); };
  for (size_t s = 0; s < app_.sockets.size(); ++s)
    bound_.push_back(backend->bound(dp::SocketId(s)));
  B* be = backend.get();
  backend_ = std::shared_ptr<B>(std::move(backend));

  const unsigned n = cfg_.io.workers;
  ios_.assign(n, nullptr);
  ready_ = std::make_unique<std::latch>(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, be, i] {
      if (i < cfg_.io.cores.size() && cfg_.io.cores[i] >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cfg_.io.cores[i], &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
          fail("runtime.cores: cannot pin worker " + std::to_string(i) + " to core " +
               std::to_string(cfg_.io.cores[i]));
      }
      auto w = be->open_worker(i);
      if (!w) {
        fail(w.error().message);
        ready_->count_down();
        return;
      }
      std::shared_ptr<typename B::Worker> io_owner(std::move(w.value()));
      auto& io = *io_owner;
      ios_[i] = io_owner;  // outlives the thread, so wake() stays safe after it exits
      io_counters_[i] = &io.counters();
      wakers_[i] = [p = &io] { p->wake(); };
      mail_->set_waker(
          i, [](void* p) { static_cast<typename B::Worker*>(p)->wake(); }, &io);
      std::span<ServiceStats> ss(&sstats_[size_t(i) * nservices_], nservices_);
      Worker<typename B::Worker, Services> loop(io, make_services(i), app_.sock_service, cfg_.loop,
                                                cfg_.io.max_conns, wstats_[i], ss, *mail_,
                                                &named_[i]);
      ready_->count_down();
      // Serve only once every worker opened; if one failed, stop_ is already set.
      go_.wait(false);
      loop.run(stop_);
      io.flush();
    });
  }
  ready_->wait();
  if (failed_.load()) {
    stop_.store(true);
    go_.store(true);
    go_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard g(err_mu_);
    return make_error(first_error_);
  }
  go_.store(true);
  go_.notify_all();
  log("backend " + backend_name_ + ": " + std::to_string(n) + " worker(s)" +
      (cfg_.io.busy_poll ? ", busy-poll" : ", interrupt mode"));
  return {};
}

}  // namespace cw::rt
