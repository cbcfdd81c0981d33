// corewire: the server. Reads the config (file + command line), starts the per-core runtime
// with the configured services, logs the endpoints it actually bound, and runs until SIGINT
// or SIGTERM; then drains (every worker closes its listeners, so new connects are refused;
// then it waits, up to control.drain_timeout, for open connections to close), stops the
// workers (which flush queued replies), logs the counters and exits 0. Management
// (control/): the stats segment and the control socket run on one control thread; SIGHUP
// reloads the config and applies what can change live (the log level, services' enabled),
// naming the keys that need a restart.
//
// Exit codes: 0 clean stop (or --help/--version/--check-config ok), 1 start-up failed
// (bind, backend, pinning), 2 bad configuration or command line.
#include <signal.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "app/runtime/launch.hh"
#include "app/server/config.hh"
#include "app/server/services.hh"
#include "control/dataplane_control.hh"
#include "control/logging.hh"

namespace {

using namespace cw;

constexpr int kExitStartFailed = 1;
constexpr int kExitBadConfig = 2;
constexpr int kMailPostTries = 1000;  // 1 ms apart: workers empty their mailboxes every loop

// Totals over every worker, one line per service and one for the backend.
void log_counters(const rt::Runtime<server::Services>& r) {
  const auto& names = r.service_names();
  for (uint16_t s = 0; s < names.size(); ++s) {
    uint64_t req = 0, resp = 0, err = 0, bad = 0, drop = 0;
    for (unsigned w = 0; w < r.workers(); ++w) {
      const auto& st = r.service_stats(w, s);
      req += st.requests.get();
      resp += st.responses.get();
      err += st.errors.get();
      bad += st.malformed.get();
      drop += st.dropped.get();
    }
    spdlog::info("stats service[{}] {}: requests={} responses={} errors={} malformed={} dropped={}",
                 s, names[s], req, resp, err, bad, drop);
  }
  uint64_t rxd = 0, txd = 0, rxs = 0, txs = 0, acc = 0, closed = 0, ovf = 0, rej = 0, idle = 0,
           txnb = 0, rxnb = 0, trunc = 0, txerr = 0, oversize = 0, nobuf = 0, unknown = 0,
           sends = 0, polls = 0, bursts = 0, items = 0;
  for (unsigned w = 0; w < r.workers(); ++w) {
    const auto& io = r.io_counters(w);
    rxd += io.rx_datagrams.get();
    txd += io.tx_datagrams.get();
    rxs += io.rx_stream_bytes.get();
    txs += io.tx_stream_bytes.get();
    acc += io.conns_accepted.get();
    closed += io.conns_closed.get();
    ovf += io.conns_overflow.get();
    rej += io.conns_rejected.get();
    idle += io.conns_idle.get();
    txnb += io.tx_no_buffer.get();
    rxnb += io.rx_no_buffer.get();
    trunc += io.rx_truncated.get();
    txerr += io.tx_errors.get();
    sends += io.tx_stream_sends.get();
    polls += io.polls.get();
    const auto& ws = r.worker_stats(w);
    bursts += ws.bursts.get();
    items += ws.items.get();
    oversize += ws.stream_oversize.get();
    nobuf += ws.stream_no_buffer.get();
    unknown += ws.unknown_socket.get();
  }
  spdlog::info(
      "stats io: rx_datagrams={} tx_datagrams={} rx_stream_bytes={} tx_stream_bytes={} "
      "conns_accepted={} conns_closed={} conns_overflow={} conns_rejected={} conns_idle={} "
      "tx_no_buffer={} rx_no_buffer={} rx_truncated={} tx_errors={} stream_oversize={} "
      "stream_no_buffer={} unknown_socket={}",
      rxd, txd, rxs, txs, acc, closed, ovf, rej, idle, txnb, rxnb, trunc, txerr, oversize, nobuf,
      unknown);
  // How the work was batched (bytes per TCP send, items per burst, share of empty polls):
  // kept in every benchmark run's server output, so runs in a slow state can be told apart.
  spdlog::info("stats batching: tx_stream_sends={} polls={} bursts={} items={}", sends, polls,
               bursts, items);
  // Backend-specific totals (e.g. DPDK drop reasons), when the backend has any.
  std::string extra;
  for (const auto& [name, value] : r.backend_counters())
    extra += (extra.empty() ? "" : " ") + name + "=" + std::to_string(value);
  if (!extra.empty()) spdlog::info("stats {}: {}", r.backend_name(), extra);
}

// [dpdk] -> RuntimeConfig::dpdk (only in builds with DPDK; otherwise launch.hh refuses
// backend "dpdk" with a clear error). Unset values keep the backend's defaults.
Result<void> dpdk_config(const server::DpdkSection& d, [[maybe_unused]] rt::RuntimeConfig& rc) {
#if CW_HAVE_DPDK
  dp::DpdkConfig& o = rc.dpdk;
  o.eal_args = d.eal;
  o.port = d.port;
  for (const auto& a : d.addresses) {
    auto la = dp::parse_cidr(a);
    if (!la) return make_error("dpdk.addresses: " + la.error().message);
    o.addresses.push_back(la.value());
  }
  if (d.gateway_be) o.gateway_be = *d.gateway_be;
  if (d.mtu) o.mtu = uint16_t(*d.mtu);
  if (d.rx_desc) o.rx_desc = uint16_t(*d.rx_desc);
  if (d.tx_desc) o.tx_desc = uint16_t(*d.tx_desc);
  if (d.arp_entries) o.arp_entries = *d.arp_entries;
  if (d.arp_queue) o.arp_queue = *d.arp_queue;
  if (d.frag_flows) o.frag_flows = *d.frag_flows;
  if (d.frag_timeout_ms) o.frag_timeout_ms = *d.frag_timeout_ms;
  if (d.arp_learn_from_requests) o.arp_learn_from_requests = *d.arp_learn_from_requests;
#else
  (void)d;
#endif
  return {};
}

// SIGHUP / "reload": re-reads the config; the log level and each service's `enabled`
// apply live (through set_enabled), any other difference is named as needing a restart.
// `running` is updated to what was applied. Callers serialise (reload_mu in main).
ctl::Json reload(const server::CommandLine& cl, server::ServerConfig& running,
                 const std::function<void(uint16_t, bool)>& set_enabled) {
  auto next = server::load(cl);
  if (!next) return {{"ok", false}, {"error", next.error().message}};
  server::ServerConfig& n = next.value();
  for (const auto& d : n.deprecations) spdlog::warn("{}", d);  // an edited file may add some
  ctl::Json applied = ctl::Json::array(), restart = ctl::Json::array();
  if (n.log_level != running.log_level) {
    log::set_level(n.log_level);
    applied.push_back("log.level = " + n.log_level);
    running.log_level = n.log_level;
  }
  n.log_level = running.log_level;  // applied above; compare everything else
  // Enable/disable by service index, as long as the list of services is the same.
  const bool same_services =
      n.services.size() == running.services.size() &&
      std::equal(n.services.begin(), n.services.end(), running.services.begin(),
                 [](const auto& a, const auto& b) { return a.name == b.name; });
  for (size_t i = 0; same_services && i < n.services.size(); ++i) {
    if (n.services[i].enabled == running.services[i].enabled) continue;
    set_enabled(uint16_t(i), n.services[i].enabled);
    running.services[i].enabled = n.services[i].enabled;
    applied.push_back("service[" + std::to_string(i) + "] " + n.services[i].name +
                      ".enabled = " + (n.services[i].enabled ? "true" : "false"));
  }
  for (size_t i = 0; same_services && i < n.services.size(); ++i)
    n.services[i].enabled = running.services[i].enabled;
  const auto was = server::describe(running), now = server::describe(n);
  for (const auto& l : now)
    if (std::find(was.begin(), was.end(), l) == was.end()) restart.push_back(l);
  return {{"applied", applied}, {"restart_needed", restart}};
}

}  // namespace

int main(int argc, char** argv) {
  const server::CommandLine cl = server::parse_command_line(argc, argv);
  if (cl.exit_code) {
    if (*cl.exit_code != 0 && log::stderr_is_journal()) std::fputs("<3>", stderr);
    std::fputs(cl.output.c_str(), *cl.exit_code == 0 ? stdout : stderr);
    return *cl.exit_code;
  }
  auto loaded = server::load(cl);
  if (!loaded) {
    log::early_error("corewire", "config error: " + loaded.error().message);
    return kExitBadConfig;
  }
  server::ServerConfig& cfg = loaded.value();
  if (cl.check_only) {
    for (const auto& d : cfg.deprecations)
      std::fprintf(stderr, "corewire: warning: %s\n", d.c_str());
    for (const auto& l : server::describe(cfg)) std::printf("%s\n", l.c_str());
    std::printf("corewire: config ok\n");
    return 0;
  }
  log::setup("corewire", cfg.log_level);
  for (const auto& d : cfg.deprecations) spdlog::warn("{}", d);
  for (const auto& l : server::describe(cfg)) spdlog::info("{}", l);

  // Block the stop signals before any worker starts, so every thread inherits the mask and
  // only sigwait() below sees them. A peer closing a socket must not kill the process.
  sigset_t stop_sigs;
  sigemptyset(&stop_sigs);
  sigaddset(&stop_sigs, SIGINT);
  sigaddset(&stop_sigs, SIGTERM);
  sigaddset(&stop_sigs, SIGHUP);   // reload
  sigaddset(&stop_sigs, SIGUSR1);  // immediate stop, raised by the "shutdown" command
  pthread_sigmask(SIG_BLOCK, &stop_sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rt::RuntimeConfig rc;
  rc.backend = cfg.backend;
  rc.io = cfg.io;
  rc.loop = cfg.loop;
  if (auto r = dpdk_config(cfg.dpdk, rc); !r) {
    spdlog::error("config error: {}: {}", cfg.source, r.error().message);
    return kExitBadConfig;
  }
  rt::Runtime<server::Services> runtime;
  auto app = server::make_app(cfg);
  const auto sockets = app.sockets;
  const auto sock_service = app.sock_service;
  auto started =
      runtime.start(rc, std::move(app), [](const std::string& m) { spdlog::info("{}", m); });
  if (!started) {
    spdlog::error("error: cannot start: {}", started.error().message);
    return kExitStartFailed;
  }
  // The endpoints actually bound (ports resolved when the config said 0); tests read these.
  for (size_t s = 0; s < sockets.size(); ++s) {
    if (!sockets[s].server) continue;  // a service's client socket: nothing is served there
    spdlog::info("serving {} {} {}", runtime.service_names()[sock_service[s]],
                 sockets[s].transport == dp::Transport::udp ? "udp" : "tcp",
                 dp::to_string(runtime.bound(dp::SocketId(s))));
  }
  spdlog::info("ready (backend {}, pid {})", runtime.backend_name(), getpid());

  // Management: stats segment + control socket. Required when [control] is configured; with
  // the defaults only, a failure (e.g. another corewire owns the default socket) is logged.
  using Rt = rt::Runtime<server::Services>;
  ctl::DataplaneHooks hooks;
  hooks.set_log_level = [](const std::string& l) {
    if (!log::set_level(l)) return "unknown level '" + l + "' (" + log::levels_text(", ") + ")";
    return std::string();
  };
  // `cfg` changes on reload (main thread on SIGHUP, control thread on "reload"): reload_mu
  // guards it from then on.
  std::mutex reload_mu;
  std::unique_ptr<ctl::DataplaneControl<Rt>> control;
  // A service's enabled state reaches the workers through the control thread when there is
  // one; without it, main is the control rings' only producer and mails them itself.
  auto set_enabled = [&](uint16_t s, bool on) {
    if (control) return control->set_service_enabled(s, on);
    for (int i = 0; i < kMailPostTries; ++i) {
      if (ctl::post_service_state(runtime, s, on) == runtime.workers()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  hooks.config_json = [&] {
    std::lock_guard g(reload_mu);
    return ctl::Json(server::describe(cfg));
  };
  hooks.reload = [&] {
    std::lock_guard g(reload_mu);
    return reload(cl, cfg, set_enabled);
  };
  hooks.request_exit = [](bool drain) { kill(getpid(), drain ? SIGTERM : SIGUSR1); };
  if (auto c = ctl::DataplaneControl<Rt>::start(runtime, cfg.control, hooks); c) {
    std::lock_guard g(reload_mu);  // a "reload" may already run on the control thread
    control = std::move(c.value());
    spdlog::info("control socket {}, stats {}", cfg.control.socket, cfg.control.stats);
  } else if (cfg.control_explicit) {
    spdlog::error("error: cannot start: {}", c.error().message);
    return kExitStartFailed;
  } else {
    spdlog::warn("management disabled: {}", c.error().message);
  }
  // Services configured `enabled = false` start disabled: the mail reaches each worker within
  // its first loop iterations (requests in the very first bursts may still be served).
  for (size_t s = 0; s < cfg.services.size(); ++s)
    if (!cfg.services[s].enabled) set_enabled(uint16_t(s), false);

  int sig = 0;
  for (;;) {
    if (sigwait(&stop_sigs, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    spdlog::info("SIGHUP: reload: {}", hooks.reload().dump());
  }
  if (sig == SIGUSR1) {
    spdlog::info("shutdown requested, stopping");
  } else {
    spdlog::info("{} received, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    const auto deadline = std::chrono::milliseconds(cfg.control.drain_timeout_ms);
    if (control) {
      control->drain();  // its thread posts the drain mail (the control rings' one producer)
    } else {
      std::vector<char> done;  // no control thread: main is the rings' only producer
      for (int i = 0; i < kMailPostTries && !ctl::post_drain(runtime, done); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ctl::wait_drained(runtime, deadline))
      spdlog::warn("drain deadline passed with connections open; stopping");
  }
  runtime.stop();
  runtime.join();
  log_counters(runtime);
  spdlog::info("stopped");
  return 0;
}
