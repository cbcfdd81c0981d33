// An HTTP tracker on loopback for tests (cpp-httplib's server on a free port): records each
// announce's parameters and answers with `reply`.
#pragma once

#include <httplib.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cw::swarm::test {

struct FakeTracker {
  httplib::Server srv;
  std::thread th;
  int port = 0;
  std::mutex mu;
  std::vector<httplib::Params> seen;  // under mu
  std::string reply;                  // set before the announces it answers

  FakeTracker() {
    srv.Get("/announce", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard g(mu);
      seen.push_back(req.params);
      res.set_content(reply, "text/plain");
    });
    port = srv.bind_to_any_port("127.0.0.1");
    th = std::thread([this] { srv.listen_after_bind(); });
    for (int i = 0; i < 2000 && !srv.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeTracker() {
    srv.stop();
    th.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/announce"; }
  size_t count() {
    std::lock_guard g(mu);
    return seen.size();
  }
  // Parameter k of announce i ("<none>" if absent).
  std::string param(size_t i, const char* k) {
    std::lock_guard g(mu);
    if (i >= seen.size()) return "<no announce>";
    auto it = seen[i].find(k);
    return it == seen[i].end() ? std::string("<none>") : it->second;
  }
};

}  // namespace cw::swarm::test
