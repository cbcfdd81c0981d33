// The control socket's `rtp` command (docs/rtp.md, "Sessions at run time"; what
// `corewirectl rtp open|close|list` sends):
//   {"cmd":"rtp","op":"open","peer":"127.0.0.1:5006","pt":0,"ssrc":4660,"peer_ssrc":22136}
//   {"cmd":"rtp","op":"close","peer":"127.0.0.1:5006"}
//   {"cmd":"rtp","op":"list"}
// with "table": k for the k-th rtp table of the config (default 0; list asks every table).
// The control thread turns the request into the service's command text, posts it to the
// table on worker 0 as an rt::ServiceCommand (the service forwards it to the worker that
// owns its sessions), and waits for the answer, a JSON object, up to 2 s.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime/control_contract.hh"
#include "control/control_socket.hh"

namespace cw::ctl {

inline constexpr int kServiceCommandTimeoutMs = 2000;
inline constexpr size_t kMaxLateCommands = 64;  // beyond: refuse until workers catch up

// Control thread only: service commands in flight. A command whose worker did not answer
// in time stays here until it does (the worker may still write it), then is freed.
class PendingCommands {
 public:
  PendingCommands() = default;
  PendingCommands(const PendingCommands&) = delete;
  PendingCommands& operator=(const PendingCommands&) = delete;
  // Unanswered blocks are left allocated: a worker may still write them.
  ~PendingCommands() {
    reap();
    for (auto& c : late_) (void)c.release();
  }

  // Posts `request` to service `service` on worker 0 and waits for the reply text.
  template <class R>
  Result<std::string> run(R& rt, uint16_t service, const std::string& request,
                          int timeout_ms = kServiceCommandTimeoutMs) {
    reap();
    if (late_.size() >= kMaxLateCommands)
      return make_error("the workers have not answered " + std::to_string(late_.size()) +
                        " earlier commands: try again later");
    auto c = std::make_unique<rt::ServiceCommand>();
    c->request = request;
    rt::Mail m;
    m.service = service;
    m.kind = rt::kMailServiceCommand;
    m.from = rt::kControlSender;
    m.p = c.get();
    if (!rt.mailboxes().send(rt.workers(), 0, m))
      return make_error("worker 0's control mailbox is full: try again");
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!c->done.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() >= until) {
        late_.push_back(std::move(c));
        return make_error("no answer from the workers within " + std::to_string(timeout_ms) +
                          " ms");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return std::move(c->reply);
  }

  // Frees the late commands that have been answered since.
  void reap() {
    std::erase_if(late_, [](const std::unique_ptr<rt::ServiceCommand>& c) {
      return c->done.load(std::memory_order_acquire);
    });
  }

 private:
  std::vector<std::unique_ptr<rt::ServiceCommand>> late_;
};

// The rtp service's command text (app/services/rtp/command.hh) for a request: "op" and the
// keys peer, pt, ssrc, peer_ssrc (strings without spaces, or non-negative integers). The
// service checks the values.
Result<std::string> rtp_command_text(const Json& req);

// Runs an `rtp` request against the runtime's services named "rtp" (control thread).
template <class R>
Json rtp_command(R& rt, PendingCommands& pending, const Json& req) {
  auto fail = [](const std::string& e) { return Json{{"ok", false}, {"error", e}}; };
  auto text = rtp_command_text(req);
  if (!text) return fail(text.error().message);
  std::vector<uint16_t> tables;
  const auto& names = rt.service_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == "rtp") tables.push_back(uint16_t(i));
  if (tables.empty()) return fail("no rtp service is configured");
  auto ask = [&](size_t k) -> Json {
    auto r = pending.run(rt, tables[k], text.value());
    if (!r) return fail(r.error().message);
    Json j = Json::parse(r.value(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("the service's answer is not JSON");
    j["table"] = k;
    return j;
  };
  const bool list = req.at("op") == "list";
  if (list && !req.contains("table")) {
    Json all = Json::array();
    for (size_t k = 0; k < tables.size(); ++k) {
      Json j = ask(k);
      if (!j.value("ok", false)) return j;
      j.erase("ok");
      all.push_back(std::move(j));
    }
    return Json{{"ok", true}, {"tables", std::move(all)}};
  }
  size_t k = 0;
  if (auto t = req.find("table"); t != req.end()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 0 ||
        uint64_t(t->get<int64_t>()) >= tables.size())
      return fail("\"table\" must be 0.." + std::to_string(tables.size() - 1) +
                  " (the rtp tables in config order)");
    k = t->get<size_t>();
  }
  Json j = ask(k);
  if (list && j.value("ok", false)) {
    Json one = j;
    one.erase("ok");
    return Json{{"ok", true}, {"tables", Json::array({std::move(one)})}};
  }
  return j;
}

}  // namespace cw::ctl
