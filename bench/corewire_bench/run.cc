#include "bench/corewire_bench/run.hh"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>
#include <variant>

#include "app/runtime/launch.hh"
#include "bench/corewire_bench/client.hh"
#include "bench/corewire_bench/nats_client.hh"

namespace cw::bench {
namespace {

using Services = std::variant<Client, NatsClient>;

constexpr double kProgressEvery_s = 1.0;
constexpr double kProgressFrom_s = 2.0;  // short runs print no progress at all
constexpr uint32_t kConnSlack = 64;      // extra connection slots per worker
constexpr uint32_t kPreloadWindow = 32;  // --kv-preload: at least this many sets in flight
// --kv-preload: a set counts as lost after at least this long. The preload is not timed
// and fails unless every set was STORED, so a server stalled by a busy machine (a late
// reply over TCP) must not fail it; one that never answers still does.
constexpr double kPreloadTimeout_s = 10.0;

uint64_t share(uint64_t total, unsigned w, unsigned n) {
  return total / n + (w < total % n);
}

// --backend dpdk: the generator's own user-space stack (one port, our address), UDP or its
// TCP engine's client role. Client sockets on DPDK need a single worker (UDP: the backend
// refuses more, naming why; TCP: main refuses more, as TCP runs on worker 0 only).
Result<void> dpdk_config(const Options& o, [[maybe_unused]] rt::RuntimeConfig& rc) {
  if (o.backend != "dpdk") return {};
#if CW_HAVE_DPDK
  if (o.dpdk_port.empty()) return make_error("--backend dpdk needs --dpdk-port");
  if (o.dpdk_addr.empty()) return make_error("--backend dpdk needs --dpdk-addr (a.b.c.d/len)");
  dp::DpdkConfig& d = rc.dpdk;
  d.eal_args = o.eal;
  d.port = o.dpdk_port;
  auto a = dp::parse_cidr(o.dpdk_addr);
  if (!a) return make_error("--dpdk-addr: " + a.error().message);
  d.addresses = {a.value()};
  if (!o.dpdk_gateway.empty()) {
    auto g = dp::parse_endpoint(o.dpdk_gateway + ":0");
    if (!g) return make_error("--dpdk-gateway: " + g.error().message);
    d.gateway_be = g.value().addr_be;
  }
  d.mtu = o.dpdk_mtu;
  return {};
#else
  return make_error("--backend dpdk: this build has no DPDK (libdpdk-dev)");
#endif
}

Result<RunResult> run(const Options& o, double rate, bool progress, bool preload);

}  // namespace

void raise_nofile(uint64_t want) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  rlim_t target = std::max<rlim_t>(r.rlim_cur, std::min<rlim_t>(r.rlim_max, rlim_t(want)));
  if (target > r.rlim_cur) {
    r.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0)
      std::fprintf(stderr, "corewire-bench: setrlimit failed\n");
  }
  if (r.rlim_cur < want)
    std::fprintf(stderr, "corewire-bench: open-file limit %llu is below the %llu needed\n",
                 (unsigned long long)r.rlim_cur, (unsigned long long)want);
}

// One run at `rate` (open loop) or closed loop; blocks until it is done or cut off.
Result<RunResult> run_one(const Options& o, double rate, bool progress) {
  return run(o, rate, progress, false);
}

Result<RunResult> run_preload(const Options& o) {
  Options p = o;
  p.tcp = true;
  p.udp = false;
  p.mode = "closed";
  p.window = std::max(o.window, kPreloadWindow);
  p.timeout_s = std::max(o.timeout_s, kPreloadTimeout_s);
  p.count = o.kv_keys;
  p.duration_s = p.warmup_s = 0;
  p.conns = 0;
  if (p.count < p.threads) p.threads = uint32_t(p.count);
  return run(p, 0, false, true);
}

Result<void> parse_value_size(Options& o) {
  const std::string& s = o.kv_value_size;
  const size_t colon = s.find(':');
  try {
    size_t end = 0;
    o.kv_value_min = uint32_t(std::stoul(s.substr(0, colon), &end));
    if (end != s.substr(0, colon).size()) throw std::invalid_argument(s);
    o.kv_value_max = o.kv_value_min;
    if (colon != std::string::npos) {
      o.kv_value_max = uint32_t(std::stoul(s.substr(colon + 1), &end));
      if (end != s.size() - colon - 1) throw std::invalid_argument(s);
    }
  } catch (...) {
    return make_error("--kv-value-size: expected N or MIN:MAX bytes, got '" + s + "'");
  }
  if (o.kv_value_min > o.kv_value_max || o.kv_value_max > kv::kMaxValue)
    return make_error("--kv-value-size: need MIN <= MAX <= " + std::to_string(kv::kMaxValue));
  return {};
}

namespace {

Result<RunResult> run(const Options& o, double rate, bool progress, bool preload) {
  const unsigned n = o.threads;
  auto target = dp::parse_endpoint(o.target);
  if (!target) return make_error("--target: " + target.error().message);

  ClientConfig base;
  base.dialect = o.proto == "native"     ? Dialect::native
                 : o.proto == "sockperf" ? Dialect::sockperf
                 : o.proto == "nats"     ? Dialect::nats
                                         : Dialect::memcached;
  const bool kv = base.dialect == Dialect::memcached;
  if (kv) {
    KvConfig& k = base.kv;
    k.proto = o.kv_proto == "meta" ? kv::KvProto::meta : kv::KvProto::text;
    k.get_ratio = o.kv_get_ratio;
    k.key_size = o.kv_key_size;
    k.value_min = o.kv_value_min;
    k.value_max = o.kv_value_max;
    k.multiget = o.kv_multiget;
    k.preload = preload;
    // One table for all workers (setup: O(keys) time, 8 bytes per key for Zipf).
    k.keys = std::make_shared<const kv::KeyDist>(o.kv_keys, o.kv_dist == "zipf" ? o.kv_theta : 0);
  }
  const bool nats = base.dialect == Dialect::nats;  // NatsClient: its connections over TCP
  base.transport = o.tcp || nats ? dp::Transport::tcp : dp::Transport::udp;
  base.target = *target;
  base.msg_size = o.msg_size;
  base.mode = o.mode == "open" ? LoopMode::open : LoopMode::closed;
  base.window = o.window;
  base.arrival = o.arrival == "poisson" ? Arrival::poisson : Arrival::fixed;
  base.duration_ns = uint64_t(o.duration_s * 1e9);
  base.warmup_ns = uint64_t(o.warmup_s * 1e9);
  base.timeout_ns = uint64_t(o.timeout_s * 1e9);
  base.connect_timeout_ns = uint64_t(o.connect_timeout_s * 1e9);
  base.max_outstanding = o.max_outstanding;
  base.sends_per_tick = o.sends_per_tick;
  base.service_id = o.service_id;
  base.check = o.check;

  const uint32_t flows_max = o.conns ? uint32_t(share(o.conns, 0, n))
                             : nats  ? uint32_t(share(o.nats_pubs, 0, n) + share(o.nats_subs, 0, n))
                                     : o.flows;
  // nats: what the workers share (set-up barrier, end of publishing, deliveries).
  auto nats_shared = std::make_shared<NatsShared>(n, std::max(o.nats_pubs, 1u));
  rt::RuntimeConfig rc;
  rc.backend = o.backend;
  rc.io.workers = n;
  rc.io.cores = o.cores;
  rc.io.busy_poll = o.busy_poll;
  rc.io.max_conns = std::max<uint32_t>(1024, flows_max + kConnSlack);
  rc.io.idle_timeout_ms = 0;  // the client closes nothing by itself
  if (kv) {
    // A full window of the largest sets may be queued on a connection at once.
    const uint64_t window_bytes = uint64_t(std::max(o.window, 1u)) *
                                  (kv::set_size(base.kv.proto, o.kv_key_size, o.kv_value_max) + 64);
    rc.io.conn_out_limit = uint32_t(
        std::clamp<uint64_t>(window_bytes, rc.io.conn_out_limit, rc.io.worker_out_limit / 2));
  }
  if (nats) {
    // A publisher's whole window of PUBs may be queued on its connection at once (a
    // reservation past the limit closes the connection); open loop: at least 4.
    const uint64_t window_bytes = uint64_t(std::max(o.window, 4u)) *
                                  (nats::pub_size(o.nats_subject, o.msg_size) + nats::kPing.size());
    rc.io.conn_out_limit = uint32_t(
        std::clamp<uint64_t>(window_bytes, rc.io.conn_out_limit, rc.io.worker_out_limit / 2));
  }
  if (auto d = dpdk_config(o, rc); !d) return d.error();

  // One service; its client sockets are declared (UDP: one per flow, TCP: the group its
  // connections join) and the factory learns their ids from ServiceCtx::sockets.
  rt::ServiceDecl<Services> client{"bench-client", {}, {}};
  const dp::Endpoint any{};  // 0.0.0.0:0 (each worker binds its own client sockets)
  const uint32_t nsock = base.transport == dp::Transport::udp ? flows_max : 1;
  for (uint32_t f = 0; f < nsock; ++f)
    client.sockets.push_back({base.transport, false, any, rt::kAllWorkers});
  auto results = std::make_unique<ClientResults[]>(n);
  client.make = [&, base, rate](const rt::ServiceCtx& ctx) {
    const unsigned w = ctx.worker;
    ClientConfig c = base;
    c.flows = o.conns ? uint32_t(share(o.conns, w, n)) : o.flows;
    c.rate = rate / n;
    c.count = share(o.count, w, n);
    c.seed = o.seed + w;
    for (unsigned v = 0; v < w; ++v) c.kv.preload_first += share(o.count, v, n);
    c.max_conns = ctx.max_conns;
    for (const rt::SocketRef& s : ctx.sockets) c.sockets.push_back(s.id);
    if (nats) {
      NatsConfig nc;
      nc.pubs = uint32_t(share(o.nats_pubs, w, n));
      nc.subs = uint32_t(share(o.nats_subs, w, n));
      for (unsigned v = 0; v < w; ++v) nc.pub_base += uint32_t(share(o.nats_pubs, v, n));
      nc.pubs_total = o.nats_pubs;
      nc.subs_total = o.nats_subs;
      nc.subject = o.nats_subject;
      nc.queue = o.nats_queue;
      nc.ack_window = o.nats_closed == "ack";
      nc.shared = nats_shared;
      return Services(std::in_place_type<NatsClient>, c, nc, &results[w]);
    }
    return Services(std::in_place_type<Client>, c, &results[w]);
  };
  auto app = rt::build_app<Services>({std::move(client)});

  rt::Runtime<Services> runtime;
  std::string backend_note;
  auto started = runtime.start(rc, std::move(app), [&](const std::string& m) {
    if (!o.quiet) std::fprintf(stderr, "corewire-bench: %s\n", m.c_str());
  });
  if (!started) return started.error();

  // Wait for every worker to finish; on long runs print progress once a second.
  const double expected_s = o.warmup_s + o.duration_s;
  const double cutoff_s =
      o.duration_s > 0 ? expected_s + o.timeout_s + o.connect_timeout_s + 5.0 : o.max_time_s;
  const auto t0 = std::chrono::steady_clock::now();
  double next_progress = kProgressFrom_s;
  uint64_t last_rx = 0;
  double last_t = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    bool all = true;
    for (unsigned w = 0; w < n; ++w) all = all && results[w].done();
    if (all) break;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t >= cutoff_s) {
      std::fprintf(stderr, "corewire-bench: cut off after %.0f s\n", t);
      break;
    }
    if (progress && t >= next_progress) {
      next_progress += kProgressEvery_s;
      uint64_t sent = 0, warm = 0, rx = 0, lost = 0, err = 0, open = 0;
      for (unsigned w = 0; w < n; ++w) {
        sent += results[w].sent.get();
        warm += results[w].warmup_sent.get();
        rx += results[w].received.get();
        lost += results[w].lost.get();
        err += results[w].errors.get();
        open += results[w].conns_open.get();
      }
      std::fprintf(stderr,
                   "[%5.1fs] sent %llu (+%llu warm-up)  received %llu (%.0f/s)  lost %llu  "
                   "errors %llu",
                   t, (unsigned long long)sent, (unsigned long long)warm, (unsigned long long)rx,
                   double(rx - last_rx) / (t - last_t), (unsigned long long)lost,
                   (unsigned long long)err);
      if (o.tcp) std::fprintf(stderr, "  conns open %llu", (unsigned long long)open);
      std::fprintf(stderr, "\n");
      last_rx = rx;
      last_t = t;
    }
  }
  RunResult r;
  // Connections still open at the end (read before the workers stop and close them).
  uint64_t open_at_end = 0;
  for (unsigned w = 0; w < n; ++w) open_at_end += results[w].conns_open.get();
  runtime.stop();
  runtime.join();

  r.info = {o.proto,
            o.tcp || nats ? "tcp" : "udp",
            o.target,
            o.mode,
            o.arrival,
            runtime.backend_name(),
            o.msg_size,
            flows_max,
            n,
            o.window,
            o.conns,
            rate,
            o.duration_s,
            o.warmup_s,
            o.count,
            {},
            {}};
  if (kv)
    r.info.kv = {o.kv_proto,   o.kv_dist,     o.kv_get_ratio, o.kv_dist == "zipf" ? o.kv_theta : 0,
                 o.kv_keys,    o.kv_key_size, o.kv_value_min, o.kv_value_max,
                 o.kv_multiget};
  for (unsigned w = 0; w < n; ++w) r.add(results[w]);
  r.conns_open = open_at_end;
  if (nats) {
    r.info.nats = {o.nats_pubs, o.nats_subs, o.nats_subject, o.nats_queue};
    r.info.conns = o.nats_pubs + o.nats_subs;
    r.set_nats_expected(r.sent, o.nats_queue.empty() ? o.nats_subs : (o.nats_subs ? 1 : 0));
  }
  r.backend_counters = runtime.backend_counters();
  return r;
}

}  // namespace

Result<std::vector<double>> parse_sweep(const std::string& s) {
  std::vector<double> rates;
  double a, b;
  unsigned steps;
  char c1, c2;
  std::istringstream in(s);
  if (s.find(':') != std::string::npos) {
    if (!(in >> a >> c1 >> b >> c2 >> steps) || c1 != ':' || c2 != ':' || steps < 1 || a <= 0 ||
        b < a)
      return make_error("--sweep: expected R1:R2:STEPS with 0 < R1 <= R2, got '" + s + "'");
    for (unsigned i = 0; i < steps; ++i)
      rates.push_back(steps == 1 ? a : a + (b - a) * i / (steps - 1));
    return rates;
  }
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      rates.push_back(std::stod(item));
    } catch (...) {
      return make_error("--sweep: bad rate '" + item + "'");
    }
    if (rates.back() <= 0) return make_error("--sweep: rates must be positive");
  }
  if (rates.empty()) return make_error("--sweep: no rates given");
  return rates;
}

}  // namespace cw::bench
