// corewirectl's admin HTTP server (cpp-httplib), loopback only:
//   GET  /metrics   Prometheus text 0.0.4 from the stats segment + supervisor counters
//   GET  /status    JSON: the supervisor's view and the dataplane's "status" reply
//   GET  /ready     200 when the dataplane is up and serving, else 503
//   GET  /varz, /subsz  nats-server's monitoring subset for the pubsub service (404 without)
//   POST /drain, /shutdown, /reload, /log-level?level=L, /service/NAME/enable|disable
// Mutations are POST only (GET on them answers 405). Handlers run on httplib's threads and
// share AdminState with the supervisor loop under its mutex; none touches the dataplane's
// workers (segment reads and control-socket requests only).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/segment.hh"
#include "dataplane/result.hh"

namespace httplib {
class Server;
}

namespace cw::ctl {

struct AdminState {
  std::mutex mu;
  std::unique_ptr<SegmentReader> reader;  // null until the dataplane's segment appears
  bool up = false;
  pid_t pid = -1;
  bool adopted = false;
  uint64_t restarts = 0;
  uint64_t scrapes = 0;
  std::string last_exit;
  std::string socket;  // control socket path (fixed after setup)
};

class AdminHttp {
 public:
  // Binds host:port (host must be a loopback address) and serves on its own thread.
  static Result<std::unique_ptr<AdminHttp>> start(const std::string& host, uint16_t port,
                                                  AdminState& st);
  ~AdminHttp();
  uint16_t port() const { return port_; }

 private:
  AdminHttp() = default;
  std::unique_ptr<httplib::Server> srv_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace cw::ctl
