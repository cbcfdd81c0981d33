// corewire-bench: the load generator. Runs the Client service (client.hh) on the corewire
// runtime (one client per worker, any backend), then merges the workers' results and prints
// them (text, --json, --hgrm), or sweeps open-loop rates (--sweep). Usage: bench/README.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>

#include "bench/corewire_bench/nats_codec.hh"
#include "bench/corewire_bench/run.hh"
#include "control/version.hh"

namespace cw::bench {
namespace {

constexpr double kDefaultSweepStep_s = 2.0;  // seconds per sweep step without --duration
constexpr double kSaturatedAchieved = 0.95;  // sweep stops when achieved < this * offered
constexpr double kSaturatedLoss = 0.01;      // ... or loss above this ratio
// --backend dpdk without --warmup: the memif/NIC link comes up and ARP resolves the target
// while the first requests are in flight; those requests may be lost and must not count.
constexpr double kDpdkDefaultWarmup_s = 1.0;

// --proto nats: publishers have 16-bit ids in the stamp; payloads up to nats-server's
// default max_payload.
constexpr uint32_t kMaxNatsConns = 1u << nats::kPubBits;
constexpr uint32_t kMaxNatsPayload = 1u << 20;

int fail(const std::string& msg) {
  std::fprintf(stderr, "corewire-bench: %s\n", msg.c_str());
  return 1;
}

// --kv-preload: whether every key was set and stored (STORED, no error reply, nothing
// lost, no connection refused, no worker cut off).
bool complete_preload(const Options& o, const RunResult& p) {
  return p.sent == o.kv_keys && p.received == p.sent && p.lost == 0 && p.errors == 0 &&
         p.kv.error_replies == 0 && p.conns_failed == 0 && p.unfinished == 0;
}

// --proto nats: what the NATS workload cannot do, refused before anything starts.
Result<void> check_nats(const Options& o) {
  if (o.udp) return make_error("--proto nats: TCP only");
  if (o.backend == "dpdk") return make_error("--proto nats: TCP only (not with --backend dpdk)");
  if (o.conns || o.check) return make_error("--conns and --check: native and sockperf only");
  if (o.nats_pubs == 0 && o.nats_subs == 0) return make_error("--proto nats: no connections");
  if (o.msg_size < nats::kStampSize || o.msg_size > kMaxNatsPayload)
    return make_error("-m: the NATS payload, " + std::to_string(nats::kStampSize) + " .. " +
                      std::to_string(kMaxNatsPayload) + " bytes (a 16-byte time stamp first)");
  auto bad_token = [](const std::string& s) {
    return s.find_first_of(" \t\r\n") != std::string::npos;
  };
  if (o.nats_subject.empty() || bad_token(o.nats_subject) || bad_token(o.nats_queue))
    return make_error("--nats-subject / --nats-queue: one token, no whitespace");
  return {};
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"corewire-bench: load generator for corewire (native, sockperf, memcached, nats)"};
  app.set_version_flag("--version", version_line("corewire-bench"));
  app.add_option("--proto", o.proto, "dialect")
      ->check(CLI::IsMember({"native", "sockperf", "memcached", "nats"}));
  app.add_option("--kv-proto", o.kv_proto, "memcached: text | meta")
      ->check(CLI::IsMember({"text", "meta"}));
  app.add_option("--kv-get-ratio", o.kv_get_ratio, "memcached: share of gets (rest: sets)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--kv-keys", o.kv_keys, "memcached: key space size")
      ->check(CLI::Range(uint64_t{1}, uint64_t{UINT32_MAX}));
  app.add_option("--kv-key-size", o.kv_key_size, "memcached: key length in bytes")
      ->check(CLI::Range(2u, 250u));
  app.add_option("--kv-value-size", o.kv_value_size, "memcached: set value bytes, N or MIN:MAX");
  app.add_option("--kv-dist", o.kv_dist, "memcached: key choice, uniform | zipf")
      ->check(CLI::IsMember({"uniform", "zipf"}));
  app.add_option("--kv-zipf-theta", o.kv_theta, "memcached: Zipf exponent")
      ->check(CLI::Range(0.01, 5.0));
  app.add_option("--kv-multiget", o.kv_multiget, "memcached: keys per get")
      ->check(CLI::Range(1u, kv::kMaxMultiget));
  app.add_flag("--kv-preload", o.kv_preload, "memcached: set every key once first (TCP)");
  bool preload_only = false;
  app.add_flag("--kv-preload-only", preload_only, "memcached: only set every key once (TCP)");
  app.add_option("--nats-pubs", o.nats_pubs, "nats: publisher connections (all workers)")
      ->check(CLI::Range(0u, kMaxNatsConns));
  app.add_option("--nats-subs", o.nats_subs, "nats: subscriber connections (all workers)")
      ->check(CLI::Range(0u, kMaxNatsConns));
  app.add_option("--nats-subject", o.nats_subject, "nats: the subject published to");
  app.add_option("--nats-queue", o.nats_queue, "nats: subscribers join this queue group");
  app.add_option("--nats-closed", o.nats_closed,
                 "nats closed loop: a PUB is in flight until delivery | ack (server's PONG)")
      ->check(CLI::IsMember({"delivery", "ack"}));
  app.add_flag("--udp", o.udp, "UDP (default)");
  app.add_flag("--tcp", o.tcp, "TCP");
  app.add_option("--target", o.target, "server address:port")->required();
  app.add_option("-m,--msg-size", o.msg_size, "message size in bytes, header included");
  app.add_option("--flows", o.flows, "UDP sockets / TCP connections per worker")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--threads", o.threads, "workers")->check(CLI::Range(1u, 1024u));
  app.add_option("--cores", o.cores, "pin workers to these CPUs (sets --threads)")->delimiter(',');
  app.add_option("--backend", o.backend, "auto | io_uring | epoll | dpdk")
      ->check(CLI::IsMember({"auto", "io_uring", "epoll", "dpdk"}));
  std::string eal_line;
  std::vector<std::string> eal_tail;
  app.add_option("--eal", eal_line, "dpdk: EAL arguments, one string split at spaces");
  app.add_option("--dpdk-port", o.dpdk_port,
                 "dpdk: PCI address or vdev devargs, e.g. net_memif0,role=client,socket=/tmp/s");
  app.add_option("--dpdk-addr", o.dpdk_addr, "dpdk: our IPv4 address/prefix, e.g. 10.0.0.2/24");
  app.add_option("--dpdk-gateway", o.dpdk_gateway, "dpdk: next hop for off-link targets");
  app.add_option("--dpdk-mtu", o.dpdk_mtu, "dpdk: IPv4 MTU")->check(CLI::Range(576, 9000));
  app.add_option("eal", eal_tail, "after --: more EAL arguments (dpdk)");
  app.add_flag("--busy-poll", o.busy_poll, "spin instead of blocking");
  app.add_option("--mode", o.mode, "closed | open")->check(CLI::IsMember({"closed", "open"}));
  app.add_option("--window", o.window, "closed loop: outstanding requests per flow")
      ->check(CLI::Range(1u, 65536u));
  app.add_option("--rate", o.rate, "open loop: requests per second (all workers)");
  app.add_option("--arrival", o.arrival, "open loop: fixed | poisson")
      ->check(CLI::IsMember({"fixed", "poisson"}));
  app.add_option("--duration", o.duration_s, "measured seconds");
  app.add_option("--count", o.count, "measured requests (all workers)");
  auto* warmup = app.add_option("--warmup", o.warmup_s,
                                "seconds sent but not measured, before the run (dpdk: 1)");
  app.add_option("--timeout", o.timeout_s, "seconds after which a request counts as lost");
  app.add_option("--connect-timeout", o.connect_timeout_s, "seconds to wait for connections");
  app.add_option("--max-time", o.max_time_s, "cut a --count-only run off after this (s)");
  app.add_option("--max-outstanding", o.max_outstanding, "open loop: table size per flow");
  app.add_option("--sends-per-tick", o.sends_per_tick,
                 "requests sent per loop iteration at most (per worker; the rest follow in "
                 "the next iterations)")
      ->check(CLI::Range(1u, 65536u));
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
  std::istringstream eal_words(eal_line);
  for (std::string w; eal_words >> w;) o.eal.push_back(w);
  o.eal.insert(o.eal.end(), eal_tail.begin(), eal_tail.end());
  if (o.backend != "dpdk" && (!o.eal.empty() || !o.dpdk_port.empty() || !o.dpdk_addr.empty()))
    return fail("--eal, --dpdk-port and --dpdk-addr need --backend dpdk");
  if (o.backend == "dpdk") {
    if (o.dpdk_port.empty() || o.dpdk_addr.empty())
      return fail("--backend dpdk needs --dpdk-port and --dpdk-addr");
    if (!warmup->count()) o.warmup_s = kDpdkDefaultWarmup_s;
  }
  if (!o.cores.empty()) o.threads = uint32_t(o.cores.size());
  const bool nats = o.proto == "nats";
  if (nats) {
    if (auto v = check_nats(o); !v) return fail(v.error().message);
    o.tcp = true;
  } else if (o.nats_pubs != 1 || o.nats_subs != 1 || !o.nats_queue.empty() ||
             o.nats_closed != "delivery") {
    return fail("--nats-*: only with --proto nats");
  }
  const bool kv = o.proto == "memcached";
  if (kv) {
    if (auto v = parse_value_size(o); !v) return fail(v.error().message);
    o.msg_size = o.kv_value_max;  // reported as the message size
    if (o.kv_key_size < kv::min_key_size(o.kv_keys))
      return fail("--kv-key-size: " + std::to_string(o.kv_keys) + " keys need at least " +
                  std::to_string(kv::min_key_size(o.kv_keys)) + " bytes");
    if (o.conns) return fail("--conns: native and sockperf only");
    if (o.backend == "dpdk" && (o.kv_preload || preload_only))
      return fail("--kv-preload sets over TCP: not with --backend dpdk (preload first)");
    if (o.check) return fail("--check: native and sockperf only");
    if (!o.tcp && std::max(o.window, o.max_outstanding) > Client::kMaxKvUdpOutstanding)
      return fail("memcached over UDP: --window and --max-outstanding at most 32768");
    const uint32_t set_max =
        kv::set_size(o.kv_proto == "meta" ? kv::KvProto::meta : kv::KvProto::text, o.kv_key_size,
                     o.kv_value_max);
    if (!o.tcp && o.kv_get_ratio < 1 && set_max + 8 > proto::sockperf::kMaxMessage)
      return fail("memcached over UDP: a set must fit one datagram (--kv-value-size)");
  }
  if (o.conns) {
    // Many idle-ish connections: open loop, a small request on each now and then.
    o.tcp = true;
    o.mode = "open";
    if (o.rate <= 0 && o.sweep.empty()) o.rate = o.conns;  // each connection once a second
    o.max_outstanding = std::min<uint32_t>(o.max_outstanding, 8);
    o.threads = std::min<uint32_t>(o.threads, o.conns);
    raise_nofile(uint64_t(o.conns) + 1024);
  }
  // The DPDK stack serves TCP on worker 0 only; other workers' connects would all fail.
  if (o.backend == "dpdk" && o.tcp && o.threads > 1)
    return fail("--backend dpdk --tcp: one worker (the DPDK stack's TCP is on worker 0)");
  if (o.count && o.count < o.threads) o.threads = uint32_t(o.count);
  if (preload_only) {
    if (!kv) return fail("--kv-preload-only needs --proto memcached");
    o.kv_preload = true;
    o.count = 1;  // no measured run follows; this only passes the check below
  }
  if (o.duration_s <= 0 && o.count == 0) {
    if (!o.sweep.empty())
      o.duration_s = kDefaultSweepStep_s;
    else
      return fail("give --duration and/or --count (runs are always bounded)");
  }
  if (o.mode == "open" && o.rate <= 0 && o.sweep.empty())
    return fail("--mode open needs --rate (or --sweep)");
  const double min_msg = kv || nats            ? 0
                         : o.proto == "native" ? proto::native::kHeaderSize
                                               : proto::sockperf::kHeaderSize;
  if (o.msg_size < min_msg) return fail("-m: at least " + std::to_string(int(min_msg)) + " bytes");
  if (!kv && !nats && o.msg_size > proto::sockperf::kMaxMessage)
    return fail("-m: at most 65507 bytes");

  // --kv-preload: every key set once, before the measured run(s).
  std::optional<RunResult> preload;
  if (kv && o.kv_preload) {
    auto p = run_preload(o);
    if (!p) return fail(p.error().message);
    std::printf("preload: %llu keys set in %.3f s (%llu stored, %llu lost, %llu errors)\n",
                (unsigned long long)p->sent, p->elapsed_s, (unsigned long long)p->received,
                (unsigned long long)p->lost, (unsigned long long)p->errors);
    // Every key must be stored: a refused connection sends nothing (so sent == received
    // == 0), and a measured run on a partly loaded store would be another workload.
    if (preload_only && !o.json.empty() && !write_file(o.json, json_report(*p)))
      return fail("--json " + o.json + ": cannot write");
    if (!complete_preload(o, *p))
      return fail("preload failed: " + std::to_string(p->received) + " of " +
                  std::to_string(o.kv_keys) + " keys stored (" + std::to_string(p->sent) +
                  " sent, " + std::to_string(p->conns_failed) + " connection(s) failed, " +
                  std::to_string(p->lost) + " lost, " + std::to_string(p->errors) + " errors, " +
                  std::to_string(p->kv.error_replies) + " error replies)");
    preload = std::move(*p);
    if (preload_only) return 0;
  }

  if (!o.sweep.empty()) {
    auto rates = parse_sweep(o.sweep);
    if (!rates) return fail(rates.error().message);
    o.mode = "open";
    std::vector<RunResult> steps;
    std::printf("%s", sweep_header().c_str());
    for (double rate : *rates) {
      auto r = run_one(o, rate, false);
      if (!r) return fail(r.error().message);
      if (preload) r->set_preload(*preload);
      std::printf("%s", sweep_row(*r).c_str());
      std::fflush(stdout);
      if (!o.hgrm.empty())
        r->hist->write_hgrm(o.hgrm + "." + std::to_string(uint64_t(rate)) + ".hgrm");
      const bool saturated =
          r->achieved_load() < kSaturatedAchieved * rate || r->loss_ratio() > kSaturatedLoss;
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

  auto r = run_one(o, o.mode == "open" ? o.rate : 0, !o.quiet);
  if (!r) return fail(r.error().message);
  if (preload) r->set_preload(*preload);
  std::printf("%s", text_report(*r).c_str());
  if (!o.json.empty() && !write_file(o.json, json_report(*r)))
    return fail("--json " + o.json + ": cannot write");
  if (!o.hgrm.empty() && !r->hist->write_hgrm(o.hgrm))
    return fail("--hgrm " + o.hgrm + ": cannot write");
  return r->unfinished ? 3 : 0;
}

}  // namespace
}  // namespace cw::bench

int main(int argc, char** argv) {
  return cw::bench::run(argc, argv);
}
