// The control socket: a Unix stream socket (mode 0600, peers checked with SO_PEERCRED: only
// the same uid or root) speaking JSON lines. Each request is one JSON object on one line,
// {"cmd":"status", ...}; each reply is one line, {"ok":true, ...} or
// {"ok":false,"error":"..."}. Served by one thread off the workers' path (the dataplane's
// control thread, which also runs the stats publisher on its tick). Commands that must
// reach the workers are posted to their control mailboxes by the handler.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "dataplane/result.hh"

namespace cw::ctl {

using Json = nlohmann::json;

inline constexpr size_t kMaxRequestBytes = 4096;  // one request line, newline excluded
inline constexpr int kMaxControlClients = 16;     // further connections are refused
inline constexpr int kControlProtocolVersion = 1;

// Runs on the control thread; returns the reply object ("ok":true is added if missing).
// May throw (e.g. nlohmann type errors): the server answers {"ok":false,"error":what()}.
using CommandFn = std::function<Json(const Json& request)>;

class ControlServer {
 public:
  // Binds path (replacing a stale socket; refusing if a live server answers there),
  // chmod 0600.
  static Result<std::unique_ptr<ControlServer>> listen(const std::string& path);
  ~ControlServer();

  // Setup, before start(): register a command.
  void on(const std::string& cmd, CommandFn fn) { cmds_[cmd] = std::move(fn); }

  // Starts the control thread: serves requests and calls tick() about every tick_ms.
  void start(std::function<void()> tick, int tick_ms);
  void stop();  // any thread; joins the control thread

  // Handles one request line (public for tests); never throws.
  std::string handle_line(const std::string& line);

  const std::string& path() const { return path_; }
  uint64_t refused_peers() const { return refused_.load(); }

 private:
  ControlServer() = default;
  void run(const std::function<void()>& tick, int tick_ms);

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() wakes poll()
  std::string path_;
  std::map<std::string, CommandFn> cmds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
};

// Client side: connects, sends one request, waits up to timeout_ms for the reply line.
Result<Json> control_request(const std::string& path, const Json& request, int timeout_ms = 5000);
// The same with a raw line (tests send garbage with it).
Result<std::string> control_request_raw(const std::string& path, const std::string& line,
                                        int timeout_ms = 5000);

}  // namespace cw::ctl
