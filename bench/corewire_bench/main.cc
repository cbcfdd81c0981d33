// corewire-bench: the load generator. Runs the Client service (client.hh) on the corewire
// runtime (one client per worker, any backend), then merges the workers' results and prints
// them (text, --json, --hgrm), or sweeps open-loop rates (--sweep). Usage: bench/README.md.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>
#include <variant>

#include "app/runtime/launch.hh"
#include "app/services/echo_native.hh"
#include "bench/corewire_bench/client.hh"
#include "bench/corewire_bench/report.hh"

namespace cw::bench {
namespace {

using Services = std::variant<Client>;

constexpr double kProgressEvery_s = 1.0;
constexpr double kLongRun_s = 2.0;          // runs expected longer than this print progress
constexpr double kDefaultSweepStep_s = 2.0;
constexpr double kSaturatedAchieved = 0.95;  // sweep stops when achieved < this * offered
constexpr double kSaturatedLoss = 0.01;      // ... or loss above this ratio
constexpr uint32_t kConnSlack = 64;          // extra connection slots per worker

struct Options {
  std::string proto = "native", target, mode = "closed", arrival = "fixed", backend = "auto";
  bool udp = false, tcp = false, busy_poll = false, check = false, quiet = false;
  uint32_t msg_size = 64, flows = 1, threads = 1, window = 1, conns = 0;
  uint32_t max_outstanding = 4096;
  uint16_t service_id = svc::kEchoService;
  std::vector<int> cores;
  double rate = 0, duration_s = 0, warmup_s = 0, timeout_s = 1.0, connect_timeout_s = 5.0;
  double max_time_s = 300;
  uint64_t count = 0, seed = 1;
  std::string sweep, json, hgrm;
};

uint64_t share(uint64_t total, unsigned w, unsigned n) { return total / n + (w < total % n); }

void raise_nofile(uint64_t want) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  rlim_t target = std::max<rlim_t>(r.rlim_cur, std::min<rlim_t>(r.rlim_max, rlim_t(want)));
  if (target > r.rlim_cur) {
    r.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) std::fprintf(stderr, "corewire-bench: setrlimit failed\n");
  }
  if (r.rlim_cur < want)
    std::fprintf(stderr, "corewire-bench: open-file limit %llu is below the %llu needed\n",
                 (unsigned long long)r.rlim_cur, (unsigned long long)want);
}

// One run at `rate` (open loop) or closed loop; blocks until it is done or cut off.
Result<RunResult> run_one(const Options& o, double rate, bool progress) {
  const unsigned n = o.threads;
  auto target = dp::parse_endpoint(o.target);
  if (!target) return make_error("--target: " + target.error().message);

  ClientConfig base;
  base.dialect = o.proto == "native" ? Dialect::native : Dialect::sockperf;
  base.transport = o.tcp ? dp::Transport::tcp : dp::Transport::udp;
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
  base.service_id = o.service_id;
  base.check = o.check;

  const uint32_t flows_max = o.conns ? uint32_t(share(o.conns, 0, n)) : o.flows;
  rt::RuntimeConfig rc;
  rc.backend = o.backend;
  rc.io.workers = n;
  rc.io.cores = o.cores;
  rc.io.busy_poll = o.busy_poll;
  rc.io.max_conns = std::max<uint32_t>(1024, flows_max + kConnSlack);
  rc.io.idle_timeout_ms = 0;  // the client closes nothing by itself
  base.max_conns = rc.io.max_conns;

  rt::AppSpec<Services> app;
  const dp::Endpoint any{};  // 0.0.0.0:0 (each worker binds its own client sockets)
  if (base.transport == dp::Transport::udp) {
    for (uint32_t f = 0; f < flows_max; ++f) {
      app.sockets.push_back({dp::Transport::udp, any, false});
      app.sock_service.push_back(0);
    }
  } else {
    app.sockets.push_back({dp::Transport::tcp, any, false});
    app.sock_service.push_back(0);
  }
  app.service_names = {"bench-client"};
  auto results = std::make_unique<ClientResults[]>(n);
  app.make_services = [&, base, rate](unsigned w) {
    ClientConfig c = base;
    c.flows = o.conns ? uint32_t(share(o.conns, w, n)) : o.flows;
    c.rate = rate / n;
    c.count = share(o.count, w, n);
    c.seed = o.seed + w;
    return std::vector<Services>{Client(c, &results[w])};
  };

  rt::Runtime<Services> runtime;
  std::string backend_note;
  auto started = runtime.start(rc, std::move(app), [&](const std::string& m) {
    if (!o.quiet) std::fprintf(stderr, "corewire-bench: %s\n", m.c_str());
  });
  if (!started) return started.error();

  // Wait for every worker to finish; print progress once a second on long runs.
  const double expected_s = o.warmup_s + o.duration_s;
  const double cutoff_s = o.duration_s > 0
                              ? expected_s + o.timeout_s + o.connect_timeout_s + 5.0
                              : o.max_time_s;
  const auto t0 = std::chrono::steady_clock::now();
  double next_progress = kProgressEvery_s;
  uint64_t last_rx = 0;
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
      uint64_t sent = 0, rx = 0, lost = 0, err = 0, open = 0;
      for (unsigned w = 0; w < n; ++w) {
        sent += results[w].sent.get() + results[w].warmup_sent.get();
        rx += results[w].received.get();
        lost += results[w].lost.get();
        err += results[w].errors.get();
        open += results[w].conns_open.get();
      }
      std::fprintf(stderr, "[%5.0fs] sent %llu  received %llu (%llu/s)  lost %llu  errors %llu",
                   t, (unsigned long long)sent, (unsigned long long)rx,
                   (unsigned long long)(rx - last_rx), (unsigned long long)lost,
                   (unsigned long long)err);
      if (o.tcp) std::fprintf(stderr, "  conns open %llu", (unsigned long long)open);
      std::fprintf(stderr, "\n");
      last_rx = rx;
    }
  }
  RunResult r;
  // Connections still open at the end (read before the workers stop and close them).
  uint64_t open_at_end = 0;
  for (unsigned w = 0; w < n; ++w) open_at_end += results[w].conns_open.get();
  runtime.stop();
  runtime.join();

  r.info = {o.proto, o.tcp ? "tcp" : "udp", o.target, o.mode, o.arrival, runtime.backend_name(),
            o.msg_size, flows_max, n, o.window, o.conns, rate, o.duration_s, o.warmup_s, o.count};
  for (unsigned w = 0; w < n; ++w) r.add(results[w]);
  r.conns_open = open_at_end;
  return r;
}

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

int fail(const std::string& msg) {
  std::fprintf(stderr, "corewire-bench: %s\n", msg.c_str());
  return 1;
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"corewire-bench: load generator for corewire (native and sockperf dialects)"};
  app.add_option("--proto", o.proto, "dialect")->check(CLI::IsMember({"native", "sockperf"}));
  app.add_flag("--udp", o.udp, "UDP (default)");
  app.add_flag("--tcp", o.tcp, "TCP");
  app.add_option("--target", o.target, "server address:port")->required();
  app.add_option("-m,--msg-size", o.msg_size, "message size in bytes, header included");
  app.add_option("--flows", o.flows, "UDP sockets / TCP connections per worker")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--threads", o.threads, "workers")->check(CLI::Range(1u, 1024u));
  app.add_option("--cores", o.cores, "pin workers to these CPUs (sets --threads)")->delimiter(',');
  app.add_option("--backend", o.backend, "auto | io_uring | epoll")
      ->check(CLI::IsMember({"auto", "io_uring", "epoll"}));
  app.add_flag("--busy-poll", o.busy_poll, "spin instead of blocking");
  app.add_option("--mode", o.mode, "closed | open")->check(CLI::IsMember({"closed", "open"}));
  app.add_option("--window", o.window, "closed loop: outstanding requests per flow")
      ->check(CLI::Range(1u, 65536u));
  app.add_option("--rate", o.rate, "open loop: requests per second (all workers)");
  app.add_option("--arrival", o.arrival, "open loop: fixed | poisson")
      ->check(CLI::IsMember({"fixed", "poisson"}));
  app.add_option("--duration", o.duration_s, "measured seconds");
  app.add_option("--count", o.count, "measured requests (all workers)");
  app.add_option("--warmup", o.warmup_s, "seconds sent but not measured, before the run");
  app.add_option("--timeout", o.timeout_s, "seconds after which a request counts as lost");
  app.add_option("--connect-timeout", o.connect_timeout_s, "seconds to wait for connections");
  app.add_option("--max-time", o.max_time_s, "cut a --count-only run off after this (s)");
  app.add_option("--max-outstanding", o.max_outstanding, "open loop: table size per flow");
  app.add_option("--service-id", o.service_id, "native: service id of requests");
  app.add_option("--seed", o.seed, "Poisson arrivals seed");
  app.add_option("--sweep", o.sweep, "open-loop rates: R1:R2:STEPS or R1,R2,...");
  app.add_option("--conns", o.conns, "hold this many TCP connections (all workers)");
  app.add_flag("--check", o.check, "verify reply payloads");
  app.add_option("--json", o.json, "write the report as JSON to this file");
  app.add_option("--hgrm", o.hgrm, "write the HdrHistogram percentile file");
  app.add_flag("-q,--quiet", o.quiet, "no progress or start-up lines");
  CLI11_PARSE(app, argc, argv);

  if (o.udp && o.tcp) return fail("choose one of --udp and --tcp");
  if (!o.cores.empty()) o.threads = uint32_t(o.cores.size());
  if (o.conns) {
    // Many idle-ish connections: open loop, a small request on each now and then.
    o.tcp = true;
    o.mode = "open";
    if (o.rate <= 0 && o.sweep.empty()) o.rate = o.conns;  // each connection once a second
    o.max_outstanding = std::min<uint32_t>(o.max_outstanding, 8);
    o.threads = std::min<uint32_t>(o.threads, o.conns);
    raise_nofile(uint64_t(o.conns) + 1024);
  }
  if (o.count && o.count < o.threads) o.threads = uint32_t(o.count);
  if (o.duration_s <= 0 && o.count == 0) {
    if (!o.sweep.empty()) o.duration_s = kDefaultSweepStep_s;
    else return fail("give --duration and/or --count (runs are always bounded)");
  }
  if (o.mode == "open" && o.rate <= 0 && o.sweep.empty())
    return fail("--mode open needs --rate (or --sweep)");
  const double min_msg = o.proto == "native" ? proto::native::kHeaderSize
                                             : proto::sockperf::kHeaderSize;
  if (o.msg_size < min_msg) return fail("-m: at least " + std::to_string(int(min_msg)) + " bytes");
  if (o.msg_size > proto::sockperf::kMaxMessage) return fail("-m: at most 65507 bytes");

  if (!o.sweep.empty()) {
    auto rates = parse_sweep(o.sweep);
    if (!rates) return fail(rates.error().message);
    o.mode = "open";
    std::vector<RunResult> steps;
    std::printf("%s", sweep_header().c_str());
    for (double rate : *rates) {
      auto r = run_one(o, rate, false);
      if (!r) return fail(r.error().message);
      std::printf("%s", sweep_row(*r).c_str());
      std::fflush(stdout);
      if (!o.hgrm.empty())
        r->hist->write_hgrm(o.hgrm + "." + std::to_string(uint64_t(rate)) + ".hgrm");
      const bool saturated = r->throughput() < kSaturatedAchieved * rate ||
                             r->loss_ratio() > kSaturatedLoss;
      steps.push_back(std::move(*r));
      if (saturated) {
        std::printf("saturated at %.0f msg/s offered\n", rate);
        break;
      }
    }
    if (!o.json.empty() && !write_file(o.json, json_sweep(steps)))
      return fail("--json " + o.json + ": cannot write");
    return 0;
  }

  const bool progress = !o.quiet && o.warmup_s + o.duration_s > kLongRun_s;
  auto r = run_one(o, o.mode == "open" ? o.rate : 0, progress);
  if (!r) return fail(r.error().message);
  std::printf("%s", text_report(*r).c_str());
  if (!o.json.empty() && !write_file(o.json, json_report(*r)))
    return fail("--json " + o.json + ": cannot write");
  if (!o.hgrm.empty() && !r->hist->write_hgrm(o.hgrm))
    return fail("--hgrm " + o.hgrm + ": cannot write");
  return r->unfinished ? 3 : 0;
}

}  // namespace
}  // namespace cw::bench

int main(int argc, char** argv) { return cw::bench::run(argc, argv); }
