// cw-dpdk-worker-bench: the cost per message of corewire's own DPDK datapath, without a link.
// One thread runs the real worker loop (rt::Worker over DpdkWorker) with the real sockperf
// echo on a net_ring port: each round puts a burst of request frames on the port's ring, runs
// one loop iteration (poll, parse, dispatch, echo, reply headers, flush), takes the replies
// off the ring and turns them back into the same requests. A second pass does the ring and
// rewrite work alone; the difference is what the worker spends per message: the stack,
// runtime and service, i.e. everything of a memif benchmark that is ours and not the PMD's.
// Single-threaded, so the VM's cross-core noise that halves memif figures does not reach it.
//   cw-dpdk-worker-bench [--burst N] [--rounds N] [--runs N] [--size BYTES]
// Prints one line per run and the median: "worker_ns_per_msg X harness_ns_per_msg Y".
#include <arpa/inet.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <variant>
#include <vector>

#include "app/protocol/sockperf.hh"
#include "app/runtime/mailbox.hh"
#include "app/runtime/worker.hh"
#include "app/services/echo_sockperf.hh"
#include "dataplane/clock.hh"
#include "dataplane/dpdk/dpdk_io.hh"
#include "dataplane/dpdk/net/frame.hh"
#include "tests/dataplane/dpdk/frames.hh"

namespace {

using namespace cw;
using Services = std::variant<svc::SockperfEcho>;
constexpr uint16_t kPort = 11111;
// The unit tests' peer and addresses (tests/dataplane/dpdk/frames.hh): 10.0.0.1 -> 10.0.0.2.
namespace nt = dp::net::test;

struct Bench {
  std::unique_ptr<dp::DpdkBackend> backend;
  std::unique_ptr<dp::DpdkWorker> io;
  rte_ring* ring = nullptr;
  rte_mempool* pool = nullptr;
  std::vector<uint8_t> request;  // the whole frame
};

double now_s() {
  return double(dp::now_ns()) * 1e-9;
}

// Rewrites the frames taken off the ring into the request again and puts them back.
void refill(Bench& b, rte_mbuf** m, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    std::memcpy(rte_pktmbuf_mtod(m[i], uint8_t*), b.request.data(), b.request.size());
    m[i]->data_len = uint16_t(b.request.size());
    m[i]->pkt_len = uint32_t(b.request.size());
  }
  rte_ring_enqueue_burst(b.ring, reinterpret_cast<void**>(m), n, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"per-message cost of corewire's DPDK worker loop with the sockperf echo"};
  uint32_t burst = 32, rounds = 200000, runs = 5, size = 64;
  app.add_option("--burst", burst, "requests per loop iteration")->check(CLI::Range(1u, 64u));
  app.add_option("--rounds", rounds, "loop iterations per run")->check(CLI::Range(1u, 100000000u));
  app.add_option("--runs", runs, "runs (the median is printed)")->check(CLI::Range(1u, 100u));
  app.add_option("--size", size, "sockperf message bytes")->check(CLI::Range(14u, 1400u));
  CLI11_PARSE(app, argc, argv);

  Bench b;
  dp::IoConfig io;
  io.workers = 1;
  io.rx_buffers = 1024;
  io.tx_buffers = 1024;
  dp::DpdkConfig cfg;
  cfg.eal_args = {"--no-huge",
                  "-m",
                  "128",
                  "--no-pci",
                  "--no-shconf",
                  "--log-level=lib.eal:error",
                  "--file-prefix=cwwb" + std::to_string(getpid())};
  cfg.port = "net_ring_cwwb";
  cfg.addresses = {dp::parse_cidr("10.0.0.2/24").value()};
  cfg.rx_desc = cfg.tx_desc = 256;
  const std::vector<dp::SocketSpec> specs{
      {dp::Transport::udp, dp::parse_endpoint("0.0.0.0:" + std::to_string(kPort)).value(), true}};
  auto be = dp::DpdkBackend::create(io, specs, cfg);
  if (!be) return std::fprintf(stderr, "cw-dpdk-worker-bench: %s\n", be.error().message.c_str()), 1;
  b.backend = std::move(be.value());
  auto w = b.backend->open_worker(0);
  if (!w) return std::fprintf(stderr, "cw-dpdk-worker-bench: %s\n", w.error().message.c_str()), 1;
  b.io = std::move(w.value());
  b.ring = rte_ring_lookup("ETH_RXTX0_net_ring_cwwb");
  b.pool = rte_pktmbuf_pool_create("cwwb", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (!b.ring || !b.pool) return std::fprintf(stderr, "cw-dpdk-worker-bench: no ring/pool\n"), 1;
  std::system(("rm -rf /var/run/dpdk/cwwb" + std::to_string(getpid())).c_str());

  // The peer's MAC: an ARP request from it, learned as the stack learns from requests.
  std::vector<rte_mbuf*> m(burst);
  {
    rte_mbuf* a = rte_pktmbuf_alloc(b.pool);
    auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(a, dp::net::kEthMinFrame));
    dp::net::build_arp(f, dp::net::kArpRequest, dp::net::kBroadcastMac, nt::kPeerMac,
                       nt::ip("10.0.0.1"), dp::net::kZeroMac, nt::ip("10.0.0.2"));
    rte_ring_enqueue(b.ring, a);
    dp::RxItem items[64];
    b.io->poll(items, 64, 0);
    b.io->flush();
    void* o = nullptr;
    while (rte_ring_dequeue(b.ring, &o) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(o));
  }
  // The request: sockperf client + pong-request, from the peer to our echo port.
  std::vector<uint8_t> msg(size);
  proto::sockperf::encode_header(
      msg.data(), {7, proto::sockperf::kClient | proto::sockperf::kPongRequest, size});
  dp::net::UdpHeaderSpec h = nt::peer_to_us(kPort);
  h.dst_mac = b.backend->mac();
  b.request = nt::udp_frame(msg, h);

  rt::WorkerStats stats;
  std::vector<rt::ServiceStats> svc(1);
  rt::Mailboxes mail{1, 8};
  rt::LoopConfig loop{.burst = 64, .busy_poll = true};
  rt::Worker<dp::DpdkWorker, Services> worker{
      *b.io, {svc::SockperfEcho{}}, {0}, loop, 16, stats, svc, mail};

  if (rte_pktmbuf_alloc_bulk(b.pool, m.data(), burst) != 0)
    return std::fprintf(stderr, "cw-dpdk-worker-bench: pool\n"), 1;
  std::vector<double> worker_ns, harness_ns;
  for (uint32_t r = 0; r < runs; ++r) {
    // Worker loop: requests in, replies out, rewritten into requests.
    refill(b, m.data(), burst);
    const uint64_t replies0 = svc[0].responses.get();
    double t0 = now_s();
    for (uint32_t i = 0; i < rounds; ++i) {
      worker.run_once();
      const unsigned got =
          rte_ring_dequeue_burst(b.ring, reinterpret_cast<void**>(m.data()), burst, nullptr);
      refill(b, m.data(), got);
    }
    const double with_worker = now_s() - t0;
    const uint64_t replies = svc[0].responses.get() - replies0;
    if (replies != uint64_t(rounds) * burst)
      return std::fprintf(stderr, "cw-dpdk-worker-bench: %llu replies, expected %llu\n",
                          (unsigned long long)replies, (unsigned long long)rounds * burst),
             1;
    // The same ring and rewrite work without the worker.
    t0 = now_s();
    for (uint32_t i = 0; i < rounds; ++i) {
      const unsigned got =
          rte_ring_dequeue_burst(b.ring, reinterpret_cast<void**>(m.data()), burst, nullptr);
      refill(b, m.data(), got);
    }
    const double alone = now_s() - t0;
    const double msgs = double(rounds) * burst;
    worker_ns.push_back((with_worker - alone) * 1e9 / msgs);
    harness_ns.push_back(alone * 1e9 / msgs);
    std::printf("run %u: worker_ns_per_msg %.2f harness_ns_per_msg %.2f\n", r, worker_ns.back(),
                harness_ns.back());
    const unsigned left =
        rte_ring_dequeue_burst(b.ring, reinterpret_cast<void**>(m.data()), burst, nullptr);
    (void)left;
  }
  std::sort(worker_ns.begin(), worker_ns.end());
  std::sort(harness_ns.begin(), harness_ns.end());
  std::printf(
      "cw-dpdk-worker-bench: burst %u size %u: worker_ns_per_msg %.2f (min %.2f max %.2f) "
      "harness_ns_per_msg %.2f\n",
      burst, size, worker_ns[runs / 2], worker_ns.front(), worker_ns.back(), harness_ns[runs / 2]);
  rte_pktmbuf_free_bulk(m.data(), burst);
  worker.run_once();
  b.io.reset();
  b.backend.reset();
  return 0;
}
