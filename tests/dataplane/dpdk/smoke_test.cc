// End-to-end smoke test of the DPDK backend on a net_tap vdev inside a network namespace the
// test creates (and always removes): the kernel in the namespace resolves our address by
// ARP, pings it, and sends UDP datagrams (small and fragmented) that an echo loop on the
// DpdkWorkers returns. Needs root; skipped with the reason otherwise or when EAL cannot start.
//
// The tap must be created inside the namespace (so the PMD's ioctl/netlink sockets live
// there): the test thread enters the namespace before the backend hot-plugs the tap and
// leaves it after the backend is gone.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dpdk/dpdk_io.hh"
#include "tests/dataplane/dpdk/netns.hh"

namespace cw::dp {
namespace {

using test::Netns;
using test::run;
using test::sh;

// Runs in the namespace: ICMP echo by raw socket (no ping binary needed), then UDP echo of a
// small and a fragmented datagram, then one datagram to a port nobody serves.
constexpr const char* kPeerScript = R"PY(
import socket, struct, sys, time
dst, port = sys.argv[1], int(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ping():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1.0)
    body = struct.pack('!BBHHH', 8, 0, 0, 0x4242, 1) + b'corewire-ping'
    body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
    for _ in range(5):
        s.sendto(body, (dst, 0))
        end = time.time() + 1.0
        while time.time() < end:
            try: d = s.recv(2048)
            except socket.timeout: break
            ihl = (d[0] & 15) * 4
            if d[ihl] == 0 and d[ihl + 4:ihl + 6] == b'\x42\x42' and d[ihl + 8:] == b'corewire-ping':
                return True
    return False
def echo(payload):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(1.0)
    for _ in range(5):
        u.sendto(payload, (dst, port))
        try:
            d, a = u.recvfrom(65535)
            if d == payload and a == (dst, port): return True
        except socket.timeout: pass
    return False
ok = True
if not ping(): print('ping failed'); ok = False
if not echo(b'hello corewire'): print('small echo failed'); ok = False
if not echo(bytes(range(256)) * 12): print('fragmented echo failed'); ok = False
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', (dst, port + 1))
time.sleep(0.2)
sys.exit(0 if ok else 1)
)PY";

TEST(DpdkSmoke, TapInNamespaceAnswersArpPingAndUdp) {
  if (const char* why = test::tap_env_missing()) GTEST_SKIP() << why;
  const std::string tag = std::to_string(getpid());
  const std::string iface = "cwt" + tag.substr(tag.size() > 6 ? tag.size() - 6 : 0);
  Netns ns("cwdpdk" + tag);
  if (!ns.ok()) GTEST_SKIP() << "cannot create or enter a network namespace here";

  IoConfig io;
  io.workers = 2;  // two queue pairs: exercises ARP copies between workers
  io.rx_buffers = 1024;
  io.tx_buffers = 1024;
  DpdkConfig cfg;
  cfg.eal_args = {"--no-huge",
                  "-m",
                  "256",
                  "--no-pci",
                  "--log-level=lib.eal:error",
                  "--no-shconf",
                  "--file-prefix=cwsmoke" + tag};
  cfg.port = "net_tap_cw" + tag + ",iface=" + iface;
  cfg.addresses = {parse_cidr("10.99.0.2/24").value()};
  cfg.arp_learn_from_requests = false;  // so our replies must resolve the peer by ARP
  const std::vector<SocketSpec> specs{
      {Transport::udp, parse_endpoint("0.0.0.0:7777").value(), true},
      {Transport::tcp, parse_endpoint("0.0.0.0:7777").value(), true},  // accepted, never used
  };
  std::vector<std::string> log;
  auto b = DpdkBackend::create(io, specs, cfg, [&](const std::string& s) { log.push_back(s); });
  if (!b && b.error().message.rfind("dpdk.eal", 0) == 0)
    GTEST_SKIP() << "EAL cannot start here: " << b.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  for (const auto& l : log) std::printf("%s\n", l.c_str());
  DpdkBackend& be = *b.value();
  EXPECT_EQ(ntohs(be.bound(0).port_be), 7777);

  // Kernel side of the tap: its own MAC (the PMD set ours on it), an address, up.
  ASSERT_TRUE(test::configure_kernel_side(ns, iface, "10.99.0.1/24"));

  // Echo workers, one per queue, until told to stop.
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<DpdkWorker>> workers(io.workers);
  std::vector<std::thread> threads;
  std::atomic<unsigned> opened{0};
  for (unsigned i = 0; i < io.workers; ++i)
    threads.emplace_back([&, i] {
      auto w = be.open_worker(i);
      if (!w) {
        ADD_FAILURE() << w.error().message;
        opened++;
        return;
      }
      workers[i] = std::move(w.value());
      DpdkWorker& io_w = *workers[i];
      opened++;
      RxItem items[64];
      while (!stop.load()) {
        const uint32_t n = io_w.poll(items, 64, 1'000'000);
        for (uint32_t k = 0; k < n; ++k) {
          if (items[k].kind != RxKind::datagram) continue;
          uint8_t* out = io_w.dgram_reserve(items[k].sock, items[k].peer, items[k].len);
          if (!out) continue;
          std::memcpy(out, items[k].data, items[k].len);
          io_w.dgram_commit(items[k].len);
        }
        io_w.flush();
      }
    });
  while (opened.load() < io.workers) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const std::string script = "/tmp/cw_dpdk_peer_" + tag + ".py";
  std::ofstream(script) << kPeerScript;
  const int rc = run(ns.exec("timeout 60 python3 " + script + " 10.99.0.2 7777"));
  std::remove(script.c_str());
  stop = true;
  for (auto& t : threads) t.join();

  // What the workers saw.
  uint64_t rx = 0, tx = 0;
  net::DropCounters sum;
  for (unsigned i = 0; i < io.workers; ++i) {
    ASSERT_TRUE(workers[i]);
    rx += workers[i]->counters().rx_datagrams.get();
    tx += workers[i]->counters().tx_datagrams.get();
    for (size_t r = 0; r < net::kDropReasonCount; ++r) {
      const uint64_t v = be.drops(i).get(net::DropReason(r));
      sum.add(net::DropReason(r), v);
      if (v)
        std::printf("worker %u drop %s = %llu\n", i, net::drop_reason_name(net::DropReason(r)),
                    static_cast<unsigned long long>(v));
    }
  }
  for (const auto& st : be.port_stats())
    if (st.value && st.name.rfind("x.", 0) != 0)
      std::printf("port %s = %llu\n", st.name.c_str(), static_cast<unsigned long long>(st.value));
  EXPECT_EQ(rc, 0) << "the peer script in the namespace failed (see its output above)";
  EXPECT_GE(rx, 2u);
  EXPECT_GE(tx, 2u);
  EXPECT_GE(sum.get(net::DropReason::udp_no_socket), 1u);
  // Nothing well-formed was dropped for checksum or length reasons.
  EXPECT_EQ(sum.get(net::DropReason::ip_bad_checksum), 0u);
  EXPECT_EQ(sum.get(net::DropReason::udp_bad_checksum), 0u);
  EXPECT_EQ(sum.get(net::DropReason::ip_frag_dropped), 0u);
  EXPECT_EQ(sum.get(net::DropReason::tx_arp_failed), 0u);

  workers.clear();
  b.value().reset();  // stops and removes the tap before the namespace goes
  sh("rm -rf /var/run/dpdk/cwsmoke" + tag);
}

}  // namespace
}  // namespace cw::dp
