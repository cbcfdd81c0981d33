#include "control/admin_http.hh"

#include <httplib.h>

#include <chrono>
#include <optional>

#include "control/cli.hh"
#include "control/control_socket.hh"
#include "control/metrics.hh"
#include "control/nats_monitor.hh"

namespace cw::ctl {

namespace {

constexpr int kRequestTimeoutMs = 2000;  // a control-socket request made for an HTTP call

void reply_json(httplib::Response& res, const Json& j, int ok_status = 200) {
  res.status = j.value("ok", false) ? ok_status : 400;  // the dataplane refused it
  res.set_content(j.dump() + "\n", "application/json");
}

void forward(AdminState& st, const Json& req, httplib::Response& res) {
  auto r = control_request(st.socket, req, kRequestTimeoutMs);
  if (!r) {
    res.status = 503;
    res.set_content(Json{{"ok", false}, {"error", r.error().message}}.dump() + "\n",
                    "application/json");
    return;
  }
  reply_json(res, r.value());
}

// POST handlers take the content-reader form: the request body is never read, so a POST
// without Content-Length (curl -X POST) is accepted instead of answered 400 by httplib.
void post(httplib::Server& s, const std::string& pattern,
          std::function<void(const httplib::Request&, httplib::Response&)> fn) {
  s.Post(pattern, [fn = std::move(fn)](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader&) { fn(req, res); });
}

void post_only(httplib::Server& s, const std::string& pattern) {
  s.Get(pattern, [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "POST");
    res.set_content("use POST\n", "text/plain");
  });
}

}  // namespace

Result<std::unique_ptr<AdminHttp>> AdminHttp::start(const std::string& host, uint16_t port,
                                                    AdminState& st) {
  if (host.rfind("127.", 0) != 0 && host != "::1")
    return make_error("admin HTTP: " + host + " is not a loopback address");
  std::unique_ptr<AdminHttp> a(new AdminHttp());
  a->srv_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *a->srv_;

  s.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    std::lock_guard g(st.mu);
    SupervisorMetrics m{st.up, st.restarts, ++st.scrapes};
    Result<Snapshot> snap = make_error("no segment");
    if (st.reader) snap = st.reader->snapshot();
    res.set_content(prometheus_text(snap ? &snap.value() : nullptr, m),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/status", [&st](const httplib::Request&, httplib::Response& res) {
    Json sup;
    {
      std::lock_guard g(st.mu);
      sup = {{"dataplane_up", st.up},
             {"pid", st.pid},
             {"adopted", st.adopted},
             {"restarts", st.restarts},
             {"last_exit", st.last_exit}};
    }
    auto r = control_request(st.socket, {{"cmd", "status"}}, kRequestTimeoutMs);
    Json j{{"ok", bool(r)}, {"supervisor", sup}};
    if (r)
      j["dataplane"] = r.value();
    else
      j["error"] = r.error().message;
    res.status = r ? 200 : 503;
    res.set_content(j.dump() + "\n", "application/json");
  });
  // Liveness: corewirectl answers (the dataplane may be restarting; /ready says if it serves).
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  // Every counter of the stats segment as JSON, with latency percentiles per service.
  s.Get("/stats", [&st](const httplib::Request&, httplib::Response& res) {
    std::lock_guard g(st.mu);
    Result<Snapshot> snap = make_error("no dataplane attached");
    if (st.reader) snap = st.reader->snapshot();
    res.status = snap ? 200 : 503;
    res.set_content(
        (snap ? stats_json(snap.value()) : Json{{"ok", false}, {"error", snap.error().message}})
                .dump() +
            "\n",
        "application/json");
  });
  // nats-server's monitoring endpoints, for NATS tools pointed at this port.
  for (const char* path : {"/varz", "/subsz"}) {
    s.Get(path, [&st, path](const httplib::Request&, httplib::Response& res) {
      std::lock_guard g(st.mu);
      Result<Snapshot> snap = make_error("no dataplane attached");
      if (st.reader) snap = st.reader->snapshot();
      std::optional<Json> j;
      if (snap) {
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        j = std::string_view(path) == "/varz"
                ? nats_varz(snap.value(), uint64_t(std::chrono::nanoseconds(now).count()))
                : nats_subsz(snap.value());
      }
      res.status = !snap ? 503 : j ? 200 : 404;
      if (!j)
        j = Json{{"ok", false},
                 {"error", snap ? "the dataplane runs no pubsub service" : snap.error().message}};
      res.set_content(j->dump() + "\n", "application/json");
    });
  }
  s.Get("/ready", [&st](const httplib::Request&, httplib::Response& res) {
    auto r = control_request(st.socket, {{"cmd", "status"}}, kRequestTimeoutMs);
    const bool ready = r && r.value().value("state", "") == "serving";
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  for (const char* cmd : {"drain", "shutdown", "reload"}) {
    const std::string path = std::string("/") + cmd;
    post(s, path, [&st, cmd](const httplib::Request&, httplib::Response& res) {
      forward(st, {{"cmd", cmd}}, res);
    });
    post_only(s, path);
  }
  post(s, "/log-level", [&st](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("level")) {
      res.status = 400;
      res.set_content("needs ?level=\n", "text/plain");
      return;
    }
    forward(st, {{"cmd", "log-level"}, {"level", req.get_param_value("level")}}, res);
  });
  post_only(s, "/log-level");
  post(s, R"(/service/([^/]+)/(enable|disable))",
       [&st](const httplib::Request& req, httplib::Response& res) {
         forward(st,
                 {{"cmd", "service"},
                  {"name", req.matches[1].str()},
                  {"enable", req.matches[2].str() == "enable"}},
                 res);
       });
  post_only(s, R"(/service/([^/]+)/(enable|disable))");

  if (port == 0) {
    const int p = s.bind_to_any_port(host);
    if (p <= 0) return make_error("admin HTTP: cannot bind " + host);
    a->port_ = uint16_t(p);
  } else {
    if (!s.bind_to_port(host, port))
      return make_error("admin HTTP: cannot bind " + host + ":" + std::to_string(port) +
                        " (in use?)");
    a->port_ = port;
  }
  a->thread_ = std::thread([&s] { s.listen_after_bind(); });
  return a;
}

AdminHttp::~AdminHttp() {
  if (srv_) srv_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cw::ctl
