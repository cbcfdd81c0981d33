// The service registry: a service's own [[service]] keys are parsed into its typed Options
// and validated with errors naming service[i].<key>; a service declares a client socket with
// a worker affinity and connects, through it, to another service's server socket in the same
// process (epoll backend over loopback); per-connection state lives in ConnSlots and is reset
// on close. Uses a test-only registry (echo + the Pinger below).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <variant>

#include "app/protocol/native.hh"
#include "app/runtime/conn_slots.hh"
#include "app/runtime/launch.hh"
#include "app/server/config.hh"
#include "app/server/registry.hh"
#include "app/server/services.hh"
#include "app/services/echo_native.hh"

namespace cw::server {
namespace {

namespace nt = proto::native;

constexpr unsigned kMaxTestWorkers = 4;

// What the Pinger instances report to the test (one per worker; written by that worker).
struct PingReport {
  std::atomic<uint32_t> connects{0}, opened{0}, replies{0}, closed{0};
  std::atomic<bool> slot_was_set{false};     // on_closed found the connection's state
  std::atomic<bool> slot_reset{false};       // and after close(c) the state is gone
  std::atomic<uint32_t> replies_in_slot{0};  // the per-connection reply count at close
};
PingReport g_report[kMaxTestWorkers];

// A test-only client service: on worker `worker`, it connects to service `peer`'s TCP socket
// through its own client socket and sends `count` native echo requests (to service id
// `service_id`) one after another, then closes.
class Pinger {
 public:
  struct Options {
    std::string peer;
    uint32_t count = 10;
    int worker = 0;
    uint16_t service_id = svc::kEchoService;
  };
  static constexpr std::array<std::string_view, 4> kOptionKeys = {"peer", "count", "worker",
                                                                  "service_id"};
  static Options parse_options(ServiceKeys& k) {
    Options o;
    if (auto p = k.string("peer"))
      o.peer = *p;
    else
      k.fail("peer", "missing (the service to connect to)");
    if (auto c = k.integer("count", 1, 1000)) o.count = uint32_t(*c);
    if (auto w = k.integer("worker", 0, kMaxTestWorkers - 1)) o.worker = int(*w);
    if (auto s = k.integer("service_id", 1, 65535)) o.service_id = uint16_t(*s);
    return o;
  }
  static std::vector<ClientSocket> client_sockets(const Options& o) {
    return {ClientSocket{{dp::Transport::tcp, false, {}, o.worker}, "worker"}};
  }

  Pinger(const rt::ServiceCtx& ctx, const Options& o)
      : opts_(o),
        sock_(ctx.sockets[0]),  // its one declared socket (client_sockets)
        peer_(ctx.server_endpoint(o.peer, dp::Transport::tcp).value_or(dp::Endpoint{})),
        slots_(ctx.max_conns),
        report_(&g_report[ctx.worker]) {}

  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (!sock_.here || started_ || peer_.port_be == 0) return;
    started_ = true;
    report_->connects.fetch_add(1);
    ctx.io.connect(sock_.id, peer_);
  }
  template <class Io>
  void on_open(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    PerConn* pc = slots_.open(it.conn);
    if (!pc) return;
    report_->opened.fetch_add(1);
    send(ctx, it.conn, *pc);
  }
  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    PerConn* pc = slots_.find(c);
    if (!pc) return {uint32_t(b.size()), true};
    uint32_t used = 0;
    while (used < b.size()) {
      const nt::Decoded d = nt::decode(b.subspan(used));
      if (d.status == nt::Status::need_more) break;
      if (d.status != nt::Status::ok || d.header.kind != nt::Kind::response) return {used, true};
      used += d.frame_len;
      ++pc->replies;
      report_->replies.fetch_add(1);
      if (pc->replies == opts_.count) return {used, true};  // done: close
      send(ctx, c, *pc);
    }
    return {used, false};
  }
  template <class Io>
  void on_closed(rt::Ctx<Io>&, const dp::RxItem& it) {
    if (const PerConn* pc = slots_.find(it.conn)) {
      report_->slot_was_set.store(true);
      report_->replies_in_slot.store(pc->replies);
    }
    slots_.close(it.conn);
    report_->slot_reset.store(slots_.find(it.conn) == nullptr);
    report_->closed.fetch_add(1);
  }

 private:
  struct PerConn {
    uint32_t sent = 0, replies = 0;
  };
  template <class Io>
  void send(rt::Ctx<Io>& ctx, dp::ConnId c, PerConn& pc) {
    const uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t* out = ctx.io.stream_reserve(c, nt::kHeaderSize + sizeof payload);
    if (!out) return;
    nt::Header h;
    h.service = opts_.service_id;
    h.request_id = ++pc.sent;
    ctx.io.stream_commit(c, nt::encode_message(out, h, payload));
  }

  Options opts_;
  rt::SocketRef sock_;
  dp::Endpoint peer_;
  rt::ConnSlots<PerConn> slots_;
  PingReport* report_;
  bool started_ = false;
};

using TestServices = std::variant<svc::NativeEcho, Pinger>;
const std::array<ServiceEntry<TestServices>, 2> kTestRegistry = {
    entry<TestServices, svc::NativeEcho>("echo", "native echo"),
    entry<TestServices, Pinger>("pinger", "test client"),
};
const ServiceCatalog& test_catalog() {
  static const ServiceCatalog c = catalog_of(kTestRegistry);
  return c;
}

std::string error_of(std::string_view toml, const ServiceCatalog& cat = test_catalog()) {
  auto r = parse_config(toml, "t.toml", cat);
  if (!r) return r.error().message;
  auto f = finalize(r.value());
  return f ? "" : f.error().message;
}

constexpr std::string_view kPair = R"([runtime]
backend = "epoll"
workers = 2
[[service]]
name = "echo"
tcp = 0
service_id = 7
[[service]]
name = "pinger"
peer = "echo"
count = 20
worker = 1
service_id = 7
)";

TEST(Registry, ServiceKeysReachTheTypedOptions) {
  auto r = parse_config(kPair, "t.toml", test_catalog());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->services.size(), 2u);
  const auto* echo = static_cast<const svc::NativeEcho::Options*>(r->services[0].options.get());
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->service_id, 7);
  const auto* p = static_cast<const Pinger::Options*>(r->services[1].options.get());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->peer, "echo");
  EXPECT_EQ(p->count, 20u);
  EXPECT_EQ(p->worker, 1);
  // The pinger serves nothing itself but declares a client socket (so it is not refused).
  ASSERT_EQ(r->services[1].clients.size(), 1u);
  EXPECT_FALSE(r->services[1].clients[0].decl.server);
  EXPECT_EQ(r->services[1].clients[0].decl.worker, 1);
  EXPECT_EQ(r->services[1].clients[0].line, 12);
  // The summary (--check-config, and what reload compares) shows the own keys.
  const auto d = describe(r.value());
  EXPECT_NE(std::find(d.begin(), d.end(), "service echo: tcp 127.0.0.1:0 service_id=7"), d.end());
  EXPECT_NE(
      std::find(d.begin(), d.end(), "service pinger: peer='echo' count=20 worker=1 service_id=7"),
      d.end())
      << ::testing::PrintToString(d);
}

TEST(Registry, DefaultsWhenTheServiceKeysAreAbsent) {
  auto r = parse_config("[[service]]\nname = \"echo\"\nudp = 0\n", "t.toml");
  ASSERT_TRUE(r) << r.error().message;
  const auto* o = static_cast<const svc::NativeEcho::Options*>(r->services[0].options.get());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->service_id, svc::kEchoService);
}

struct KeyCase {
  std::string toml, prefix, what;
  bool server_registry = false;
};
class KeyErrors : public ::testing::TestWithParam<KeyCase> {};

TEST_P(KeyErrors, NameTheKey) {
  const KeyCase& c = GetParam();
  const std::string e = c.server_registry ? error_of(c.toml, server_catalog()) : error_of(c.toml);
  EXPECT_EQ(e.rfind(c.prefix, 0), 0u) << e;
  EXPECT_NE(e.find(c.what), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(
    Service, KeyErrors,
    ::testing::Values(
        KeyCase{"[[service]]\nname = \"pinger\"\npeer = \"echo\"\nbogus = 1\n",
                "t.toml:4: service[0].bogus: ",
                "unknown key (known: name, udp, tcp, enabled, peer, count, worker, service_id)"},
        KeyCase{"[[service]]\nname = \"pinger\"\npeer = \"echo\"\ncount = \"many\"\n",
                "t.toml:4: service[0].count: ", "expected an integer, got a string"},
        KeyCase{"[[service]]\nname = \"pinger\"\npeer = \"echo\"\ncount = 0\n",
                "t.toml:4: service[0].count: ", "out of range [1, 1000]"},
        KeyCase{"[[service]]\nname = \"pinger\"\npeer = 5\n",
                "t.toml:3: service[0].peer: ", "expected a string"},
        KeyCase{"[[service]]\nname = \"pinger\"\n", "t.toml:1: service[0].peer: ", "missing"},
        KeyCase{"[runtime]\nworkers = 2\n[[service]]\nname = \"pinger\"\npeer = \"echo\"\n"
                "worker = 3\n",
                "t.toml:6: service[0].worker: ", "worker 3 does not exist (2 worker(s))"},
        // A service that pins its state to a worker without a client socket (rtp).
        KeyCase{"[runtime]\nworkers = 2\n[[service]]\nname = \"rtp\"\nudp = 0\n"
                "peer = \"127.0.0.1:5\"\nworker = 2\n",
                "t.toml:7: service[0].worker: ", "worker 2 does not exist (2 worker(s))", true},
        KeyCase{"[[service]]\nname = \"echo\"\nudp = 0\nservice_id = 0\n",
                "t.toml:4: service[0].service_id: ", "out of range [1, 65535]", true},
        KeyCase{"[[service]]\nname = \"echo\"\nudp = 0\nservice_id = \"1\"\n",
                "t.toml:4: service[0].service_id: ", "expected an integer", true},
        // Another service's key is unknown here.
        KeyCase{"[[service]]\nname = \"sockperf-echo\"\nudp = 0\nservice_id = 3\n",
                "t.toml:4: service[0].service_id: ", "unknown key (known: name, udp, tcp, enabled)",
                true},
        KeyCase{"[[service]]\nname = \"echo\"\nservice_id = 3\n",
                "t.toml:1: service[0]: ", "serves nothing", true}));

// rtp's sessions live on `worker`, checked by the config, and the service opens only its
// udp port: no client socket, which the DPDK backend refuses with more than one worker.
TEST(Registry, RtpPinsItsWorkerWithoutAClientSocket) {
  auto parsed = parse_config(
      "[runtime]\nworkers = 2\n[[service]]\nname = \"rtp\"\nudp = 0\n"
      "peer = \"127.0.0.1:5\"\nworker = 1\n",
      "t.toml", server_catalog());
  ASSERT_TRUE(parsed) << parsed.error().message;
  ServerConfig cfg = std::move(parsed.value());
  ASSERT_TRUE(finalize(cfg));
  EXPECT_EQ(cfg.services[0].owner.worker, 1);
  EXPECT_EQ(cfg.services[0].owner.key, "worker");
  EXPECT_EQ(cfg.services[0].owner.line, 7);
  EXPECT_TRUE(cfg.services[0].clients.empty());
  auto app = make_app(cfg);
  ASSERT_EQ(app.sockets.size(), 1u);
  EXPECT_TRUE(app.sockets[0].server);
  EXPECT_EQ(app.sockets[0].transport, dp::Transport::udp);
}

// The pinger (client socket on worker 1 only) connects to the echo's server socket in the
// same runtime, 20 requests to service id 7 come back, the connection closes and its
// per-connection state is reset.
TEST(Registry, ClientSocketConnectsToAnotherServiceInTheSameProcess) {
  auto parsed = parse_config(kPair, "t.toml", test_catalog());
  ASSERT_TRUE(parsed) << parsed.error().message;
  ServerConfig cfg = std::move(parsed.value());
  ASSERT_TRUE(finalize(cfg));
  auto app = make_app(cfg, kTestRegistry);
  ASSERT_EQ(app.sockets.size(), 2u);
  EXPECT_TRUE(app.sockets[0].server);
  EXPECT_FALSE(app.sockets[1].server);
  EXPECT_EQ(app.sock_service, (std::vector<uint16_t>{0, 1}));

  rt::RuntimeConfig rc;
  rc.backend = cfg.backend;
  rc.io = cfg.io;
  rc.io.max_conns = 64;
  rt::Runtime<TestServices> runtime;
  auto ok = runtime.start(rc, std::move(app), [](const std::string&) {});
  ASSERT_TRUE(ok) << ok.error().message;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (g_report[1].closed.load() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  runtime.stop();
  runtime.join();

  EXPECT_EQ(g_report[0].connects.load(), 0u) << "the client socket is worker 1's only";
  EXPECT_EQ(g_report[1].connects.load(), 1u);
  EXPECT_EQ(g_report[1].opened.load(), 1u);
  EXPECT_EQ(g_report[1].replies.load(), 20u);
  EXPECT_EQ(g_report[1].closed.load(), 1u);
  EXPECT_TRUE(g_report[1].slot_was_set.load());
  EXPECT_EQ(g_report[1].replies_in_slot.load(), 20u);
  EXPECT_TRUE(g_report[1].slot_reset.load());
  uint64_t answered = 0;
  for (unsigned w = 0; w < 2; ++w) answered += runtime.service_stats(w, 0).responses.get();
  EXPECT_EQ(answered, 20u) << "echo answered service id 7 (its service_id key)";
}

}  // namespace
}  // namespace cw::server
