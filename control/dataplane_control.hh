// What the dataplane (corewire's main) runs for management: the stats segment, its
// publisher, and the control socket, all on one control thread that never touches the
// workers except to read their counters and to push mail into their control mailboxes
// (this thread is the only producer of those SPSC rings).
//
// Use from main, after rt.start():
//   auto ctl = ctl::DataplaneControl<Rt>::start(rt, control_cfg, hooks);
//   ... wait for a signal or hooks.request_exit ...
//   ctl->drain(); ctl::wait_drained(rt, deadline); rt.stop();
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime/control_contract.hh"
#include "control/control_config.hh"
#include "control/control_socket.hh"
#include "control/publisher.hh"
#include "control/rtp_command.hh"
#include "control/segment.hh"

namespace cw::ctl {

// Mails rt::kMailServiceEnable/Disable to `service` on every worker; returns how many were
// queued. Only the control ring's producer may call this (see post_drain).
template <class R>
unsigned post_service_state(R& rt, uint16_t service, bool on) {
  unsigned sent = 0;
  for (unsigned w = 0; w < rt.workers(); ++w) {
    rt::Mail m;
    m.service = service;
    m.kind = on ? rt::kMailServiceEnable : rt::kMailServiceDisable;
    m.from = rt::kControlSender;
    sent += rt.mailboxes().send(rt.workers(), w, m);
  }
  return sent;
}

// The drain mail: rt::kMailStopAccepting to every worker (its listeners close) and
// rt::kMailDrain to every service on every worker. Only the control ring's producer may call
// this (the control thread, or main when management is off). `done` has one byte per mail
// (sized by the first call) and remembers what is queued; a full ring is retried by the
// next call. True once everything is queued.
template <class R>
bool post_drain(R& rt, std::vector<char>& done) {
  const unsigned nw = rt.workers();
  const size_t per = 1 + rt.service_names().size();
  done.resize(size_t(nw) * per, 0);
  bool all = true;
  for (unsigned w = 0; w < nw; ++w) {
    for (size_t i = 0; i < per; ++i) {
      char& d = done[w * per + i];
      if (d) continue;
      rt::Mail m;
      m.service = i == 0 ? rt::kWorkerMail : uint16_t(i - 1);
      m.kind = i == 0 ? rt::kMailStopAccepting : rt::kMailDrain;
      m.from = rt::kControlSender;
      d = rt.mailboxes().send(nw, w, m);
      all = all && d;
    }
  }
  return all;
}

struct DataplaneHooks {
  std::function<Json()> config_json;                             // "config"
  std::function<std::string(const std::string&)> set_log_level;  // "" on success, else error
  std::function<Json()> reload;  // SIGHUP/"reload": {"applied":[..], "restart_needed":[..]}
  std::function<void(bool drain)> request_exit;  // "drain" / "shutdown"
};

// Sum of open connections over all workers (what a drain waits for).
template <class R>
uint64_t open_connections(const R& rt) {
  uint64_t n = 0;
  for (unsigned w = 0; w < rt.workers(); ++w) n += rt.io_counters(w).conns_open.get();
  return n;
}

// Waits until no connection is open or the deadline passes; true if drained.
template <class R>
bool wait_drained(const R& rt, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (open_connections(rt) != 0) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

template <class R>
class DataplaneControl {
 public:
  static Result<std::unique_ptr<DataplaneControl>> start(R& rt, const ControlConfig& cfg,
                                                         DataplaneHooks hooks) {
    if (auto d = ensure_run_dir(cfg.run_dir); !d) return d.error();
    SegmentInfo info;
    info.workers = rt.workers();
    info.services = rt.service_names();
    info.backend = rt.backend_name();
    info.counters = declared_counters(rt);
    auto seg = SegmentWriter::create(cfg.stats, info);
    if (!seg) return seg.error();
    auto srv = ControlServer::listen(cfg.socket);
    if (!srv) return srv.error();
    std::unique_ptr<DataplaneControl> c(new DataplaneControl(rt, cfg, std::move(hooks)));
    c->seg_ = std::make_unique<SegmentWriter>(std::move(seg.value()));
    c->srv_ = std::move(srv.value());
    c->posted_.assign(info.services.size(), true);
    c->want_enabled_ = std::make_unique<std::atomic<bool>[]>(info.services.size());
    for (size_t i = 0; i < info.services.size(); ++i) c->want_enabled_[i].store(true);
    c->register_commands();
    c->srv_->start([p = c.get()] { p->tick(); }, int(cfg.publish_ms));
    return c;
  }

  ~DataplaneControl() {
    srv_.reset();  // joins the control thread
    if (seg_) {
      publish(*seg_, rt_);  // final counters stay readable after exit
      seg_->set_state(State::stopped);
    }
  }

  // Any thread: the state published on the next tick.
  void set_state(State s) { want_state_.store(uint64_t(s)); }
  // Any thread (SIGHUP reload, start-up): service `s` enabled or disabled; the control
  // thread mails it to every worker on its next tick.
  void set_service_enabled(uint16_t s, bool on) { want_enabled_[s].store(on); }
  // Any thread (SIGTERM in main, the "drain" command): state draining, and the control
  // thread posts the drain mail (post_drain) from its next tick on until all is queued.
  void drain() {
    set_state(State::draining);
    drain_requested_.store(true);
  }
  State state() const { return State(want_state_.load()); }
  const std::string& stats_path() const { return cfg_.stats; }
  const std::string& socket_path() const { return cfg_.socket; }

 private:
  DataplaneControl(R& rt, const ControlConfig& cfg, DataplaneHooks hooks)
      : rt_(rt), cfg_(cfg), hooks_(std::move(hooks)), started_(std::chrono::steady_clock::now()) {}

  // Control thread: publish counters and state.
  void tick() {
    sync_services();
    if (drain_requested_.load() && !drain_posted_) drain_posted_ = post_drain(rt_, drain_done_);
    pending_.reap();
    publish(*seg_, rt_);
    seg_->set_state(State(want_state_.load()));
  }

  // Control thread: `service` enabled or not on every worker; true once all are mailed.
  bool post_enabled(uint16_t service, bool on) {
    const bool all = post_service_state(rt_, service, on) == rt_.workers();
    if (all) posted_[service] = on;
    return all;
  }
  // Control thread: mails what set_service_enabled() asked for and is not yet posted.
  void sync_services() {
    for (uint16_t s = 0; s < posted_.size(); ++s)
      if (bool(posted_[s]) != want_enabled_[s].load()) post_enabled(s, want_enabled_[s].load());
  }

  Result<uint16_t> service_index(const Json& req) {
    auto n = req.find("name");
    if (n == req.end() || !n->is_string()) return make_error("needs a string \"name\"");
    const auto& names = rt_.service_names();
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == n->template get<std::string>()) return uint16_t(i);
    return make_error("no service named '" + n->template get<std::string>() + "'");
  }

  static Json fail(const std::string& e) { return Json{{"ok", false}, {"error", e}}; }

  void register_commands() {
    srv_->on("status", [this](const Json&) {
      static constexpr const char* kStates[] = {"starting", "serving", "draining", "stopped"};
      const auto up = std::chrono::steady_clock::now() - started_;
      return Json{{"protocol", kControlProtocolVersion},
                  {"pid", ::getpid()},
                  {"epoch", seg_->epoch()},
                  {"backend", rt_.backend_name()},
                  {"workers", rt_.workers()},
                  {"services", rt_.service_names()},
                  {"state", kStates[std::min<uint64_t>(want_state_.load(), 3)]},
                  {"uptime_s", std::chrono::duration<double>(up).count()},
                  {"connections", open_connections(rt_)},
                  {"stats", cfg_.stats},
                  {"socket", cfg_.socket}};
    });
    srv_->on("services", [this](const Json&) {
      Json list = Json::array();
      const auto& names = rt_.service_names();
      for (size_t s = 0; s < names.size(); ++s) {
        Json j{{"name", names[s]}, {"enabled", want_enabled_[s].load()}};
        for (auto& f : kServiceFields) {
          uint64_t t = 0;
          for (unsigned w = 0; w < rt_.workers(); ++w)
            t += (rt_.service_stats(w, uint16_t(s)).*f.member).get();
          j[f.name] = t;
        }
        if constexpr (requires { rt_.service_counters(0u, uint16_t(0)); }) {
          Json named = Json::object();  // declared counters, totals over workers
          const auto decls = rt_.counter_decls(uint16_t(s));
          for (size_t k = 0; k < decls.size(); ++k) {
            uint64_t t = 0;
            for (unsigned w = 0; w < rt_.workers(); ++w) {
              const auto v = rt_.service_counters(w, uint16_t(s));
              if (k < v.size()) t += v[k].get();
            }
            named[decls[k].name] = t;
          }
          j["counters"] = named;
        }
        list.push_back(j);
      }
      return Json{{"services", list}};
    });
    srv_->on("config", [this](const Json&) {
      return Json{{"config", hooks_.config_json ? hooks_.config_json() : Json::object()}};
    });
    srv_->on("log-level", [this](const Json& req) {
      auto l = req.find("level");
      if (l == req.end() || !l->is_string()) return fail("needs a string \"level\"");
      if (!hooks_.set_log_level) return fail("log level cannot be changed in this process");
      const std::string e = hooks_.set_log_level(l->template get<std::string>());
      return e.empty() ? Json{{"level", *l}} : fail(e);
    });
    srv_->on("service", [this](const Json& req) {
      auto s = service_index(req);
      if (!s) return fail(s.error().message);
      auto en = req.find("enable");
      if (en == req.end() || !en->is_boolean()) return fail("needs a boolean \"enable\"");
      const bool on = en->template get<bool>();
      want_enabled_[s.value()].store(on);
      const unsigned sent = post_service_state(rt_, s.value(), on);
      if (sent == rt_.workers()) posted_[s.value()] = on;  // else the tick retries
      return Json{{"name", req["name"]}, {"enabled", on}, {"workers_notified", sent}};
    });
    srv_->on("drain", [this](const Json&) {
      drain();
      if (!drain_posted_) drain_posted_ = post_drain(rt_, drain_done_);
      if (hooks_.request_exit) hooks_.request_exit(true);
      return Json{{"state", "draining"},
                  {"deadline_ms", cfg_.drain_timeout_ms},
                  {"mail_queued", bool(drain_posted_)}};
    });
    srv_->on("shutdown", [this](const Json&) {
      if (hooks_.request_exit) hooks_.request_exit(false);
      return Json{{"state", "stopping"}};
    });
    // The rtp service's run-time sessions (control/rtp_command.hh, docs/rtp.md).
    srv_->on("rtp", [this](const Json& req) { return rtp_command(rt_, pending_, req); });
    srv_->on("reload", [this](const Json&) {
      if (!hooks_.reload) return fail("reload is not supported by this process");
      return hooks_.reload();
    });
  }

  R& rt_;
  ControlConfig cfg_;
  DataplaneHooks hooks_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<SegmentWriter> seg_;
  std::unique_ptr<ControlServer> srv_;
  std::vector<char> posted_;  // control thread only: the state last mailed to all workers
  std::unique_ptr<std::atomic<bool>[]> want_enabled_;  // by service; set_service_enabled
  std::vector<char> drain_done_;  // control thread only: post_drain's bookkeeping
  PendingCommands pending_;       // control thread only: service commands not yet answered
  bool drain_posted_ = false;     // control thread only
  std::atomic<bool> drain_requested_{false};
  std::atomic<uint64_t> want_state_{uint64_t(State::serving)};
};

}  // namespace cw::ctl
