// The TCP engine on the DPDK datapath against the Linux kernel's TCP: a net_tap inside a
// network namespace the test creates (and always removes), one worker echoing every stream
// (stream_reserve/commit), and python's socket module in the namespace as the client: a
// 4 MiB stream echoed intact while the client reads concurrently, 200 short connections, one
// reset by the client, a refused connect. Then the client role: the worker connect()s to a
// kernel echo server in the namespace, sends 1 MiB in reservations of 256 KiB (queued beyond
// the send ring; the next one on stream_writable), gets it back intact and closes; a
// connect to a closed port ends in stream_closed(connect_failed). Needs root; skipped with
// the reason otherwise or when EAL cannot start.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
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

constexpr const char* kClientScript = R"PY(
import os, socket, struct, sys, threading
dst, port = sys.argv[1], int(sys.argv[2])
def bulk(n):
    data = os.urandom(n)
    s = socket.create_connection((dst, port), timeout=20)
    got = bytearray()
    def reader():
        while len(got) < n:
            d = s.recv(65536)
            if not d: break
            got.extend(d)
    t = threading.Thread(target=reader); t.start()
    for i in range(0, n, 65536): s.sendall(data[i:i + 65536])
    t.join(60)
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(1)  # the server's FIN follows ours
    s.close()
    return bytes(got) == data and rest == b''
def short(i):
    s = socket.create_connection((dst, port), timeout=5)
    msg = b'ping %d' % i
    s.sendall(msg)
    d = b''
    while len(d) < len(msg):
        c = s.recv(100)
        if not c: break
        d += c
    s.close()
    return d == msg
def reset():
    s = socket.create_connection((dst, port), timeout=5)
    s.sendall(b'x' * 1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()  # RST
    return True
def refused():
    try:
        socket.create_connection((dst, port + 1), timeout=5)
    except ConnectionRefusedError:
        return True
    return False
ok = True
if not bulk(4 << 20): print('bulk echo failed'); ok = False
bad = [i for i in range(200) if not short(i)]
if bad: print('short connections failed:', bad[:10]); ok = False
reset()
if not refused(): print('connect to a closed port was not refused'); ok = False
sys.exit(0 if ok else 1)
)PY";

// A kernel echo server for the client role: one connection, echoed until its EOF.
constexpr const char* kServerScript = R"PY(
import socket, sys
host, port, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port)); ls.listen(1); ls.settimeout(30)
open(ready, 'w').close()
s, _ = ls.accept(); s.settimeout(30)
while True:
    d = s.recv(65536)
    if not d: break
    s.sendall(d)
s.close()
)PY";

constexpr uint32_t kDialBytes = 1u << 20;
constexpr uint32_t kDialPiece = 256u << 10;

TEST(DpdkTcp, KernelClientEchoOverTap) {
  if (const char* why = test::tap_env_missing()) GTEST_SKIP() << why;
  const std::string tag = std::to_string(getpid());
  const std::string iface = "cwtt" + tag.substr(tag.size() > 6 ? tag.size() - 6 : 0);
  Netns ns("cwtcp" + tag);
  if (!ns.ok()) GTEST_SKIP() << "cannot create or enter a network namespace here";

  IoConfig io;
  io.workers = 1;  // TCP is served by worker 0
  io.rx_buffers = 2048;
  io.tx_buffers = 2048;
  DpdkConfig cfg;
  cfg.eal_args = {"--no-huge",
                  "-m",
                  "512",
                  "--no-pci",
                  "--log-level=lib.eal:error",
                  "--no-shconf",
                  "--file-prefix=cwtcp" + tag};
  cfg.port = "net_tap_cwt" + tag + ",iface=" + iface;
  cfg.addresses = {parse_cidr("10.98.0.2/24").value()};
  const std::vector<SocketSpec> specs{
      {Transport::tcp, parse_endpoint("0.0.0.0:7780").value(), true},
      {Transport::tcp, parse_endpoint("0.0.0.0:0").value(), false},  // connect()s
  };
  auto b = DpdkBackend::create(io, specs, cfg);
  if (!b && b.error().message.rfind("dpdk.eal", 0) == 0)
    GTEST_SKIP() << "EAL cannot start here: " << b.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  DpdkBackend& be = *b.value();
  ASSERT_TRUE(test::configure_kernel_side(ns, iface, "10.98.0.1/24"));

  std::atomic<bool> stop{false}, opened{false};
  std::atomic<int> dial{0};  // 1: connect now; 2: connected out; 3: both dials ended
  std::unique_ptr<DpdkWorker> worker;
  uint64_t opens = 0, closes = 0, echoed = 0, failed_reserve = 0;
  ConnId dialed = kNoConn, refused = kNoConn;
  bool dialed_open = false;
  uint32_t dial_sent = 0;
  CloseReason dialed_end = CloseReason::none, refused_end = CloseReason::none;
  std::vector<uint8_t> sent(kDialBytes), back;
  for (uint32_t i = 0; i < kDialBytes; ++i) sent[i] = uint8_t(i * 2654435761u >> 24);
  back.reserve(kDialBytes);
  std::thread t([&] {
    auto w = be.open_worker(0);
    if (!w) {
      ADD_FAILURE() << w.error().message;
      opened = true;
      return;
    }
    worker = std::move(w.value());
    opened = true;
    RxItem items[64];
    while (!stop.load()) {
      if (dial.load() == 1) {
        dialed = worker->connect(1, parse_endpoint("10.98.0.1:7790").value());
        refused = worker->connect(1, parse_endpoint("10.98.0.1:7791").value());
        dial = 2;
      }
      const uint32_t n = worker->poll(items, 64, 100'000);
      for (uint32_t k = 0; k < n; ++k) {
        const RxItem& it = items[k];
        const bool client = it.conn == dialed || it.conn == refused;
        if (client) {
          if ((it.kind == RxKind::stream_open || it.kind == RxKind::stream_writable) &&
              it.conn == dialed) {
            // A bulk sender per the contract: a piece (4 send rings' worth, so most of it is
            // queued beyond the ring), then the next once queued() fell to the low water.
            dialed_open = true;
            const uint32_t k = std::min(kDialPiece, kDialBytes - dial_sent);
            uint8_t* out = k ? worker->stream_reserve(dialed, k) : nullptr;
            if (out) {
              std::memcpy(out, sent.data() + dial_sent, k);
              worker->stream_commit(dialed, k);
              dial_sent += k;
              if (dial_sent < kDialBytes) worker->notify_writable(dialed);
            }
          } else if (it.kind == RxKind::stream_data) {
            back.insert(back.end(), it.data, it.data + it.len);
            if (back.size() >= kDialBytes) worker->close(dialed);
          } else if (it.kind == RxKind::stream_closed) {
            (it.conn == dialed ? dialed_end : refused_end) = it.reason;
            if (dialed_end != CloseReason::none && refused_end != CloseReason::none) dial = 3;
          }
          continue;
        }
        if (it.kind == RxKind::stream_open) ++opens;
        if (it.kind == RxKind::stream_closed) ++closes;
        if (it.kind != RxKind::stream_data) continue;
        uint8_t* out = worker->stream_reserve(it.conn, it.len);
        if (!out) {
          ++failed_reserve;
          continue;
        }
        std::memcpy(out, it.data, it.len);
        worker->stream_commit(it.conn, it.len);
        echoed += it.len;
      }
      worker->flush();
    }
  });
  while (!opened.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const std::string script = "/tmp/cw_dpdk_tcp_client_" + tag + ".py";
  std::ofstream(script) << kClientScript;
  const int rc = run(ns.exec("timeout 120 python3 " + script + " 10.98.0.2 7780"));
  std::remove(script.c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the last FINs and ACKs

  // The client role: a kernel echo server in the namespace, dialed from the worker.
  const std::string server = "/tmp/cw_dpdk_tcp_server_" + tag + ".py";
  const std::string ready = "/tmp/cw_dpdk_tcp_ready_" + tag;
  std::ofstream(server) << kServerScript;
  std::remove(ready.c_str());
  run(ns.exec("timeout 60 python3 " + server + " 10.98.0.1 7790 " + ready + " &"));
  for (int i = 0; i < 100 && access(ready.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  dial = 1;
  for (int i = 0; i < 300 && dial.load() != 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the last FINs and ACKs
  stop = true;
  t.join();
  std::remove(server.c_str());
  std::remove(ready.c_str());

  ASSERT_TRUE(worker);
  for (size_t r = 0; r < net::kDropReasonCount; ++r)
    if (const uint64_t v = be.drops(0).get(net::DropReason(r)))
      std::printf("drop %s = %llu\n", net::drop_reason_name(net::DropReason(r)),
                  static_cast<unsigned long long>(v));
  std::printf("opens %llu closes %llu echoed %llu\n", static_cast<unsigned long long>(opens),
              static_cast<unsigned long long>(closes), static_cast<unsigned long long>(echoed));
  EXPECT_EQ(rc, 0) << "the client script in the namespace failed (see its output above)";
  EXPECT_EQ(opens, 202u);   // the client role's connections are not counted here
  EXPECT_EQ(closes, 202u);  // the reset one included
  EXPECT_EQ(failed_reserve, 0u);
  // The bulk stream, 200 "ping <i>", and what of the reset connection's 1000 bytes came
  // before its RST.
  EXPECT_GE(echoed, (4u << 20) + 1490u);
  EXPECT_LE(echoed, (4u << 20) + 1490u + 1000u);
  EXPECT_EQ(worker->counters().conns_open.get(), 0u);
  EXPECT_EQ(be.drops(0).get(net::DropReason::tcp_bad_checksum), 0u);
  EXPECT_EQ(be.drops(0).get(net::DropReason::tcp_no_listener), 1u);  // the refused connect

  // The client role.
  EXPECT_NE(dialed, kNoConn);
  EXPECT_NE(refused, kNoConn);
  EXPECT_EQ(dial.load(), 3) << "the dials did not both end";
  EXPECT_TRUE(dialed_open);
  EXPECT_EQ(back.size(), size_t(kDialBytes));
  EXPECT_TRUE(back == sent) << "the echo from the kernel server differs";
  EXPECT_EQ(dialed_end, CloseReason::local);
  EXPECT_EQ(refused_end, CloseReason::connect_failed);
  EXPECT_EQ(worker->counters().conns_connected.get(), 1u);

  worker.reset();
  b.value().reset();  // stops and removes the tap before the namespace goes
  sh("rm -rf /var/run/dpdk/cwtcp" + tag);
}

}  // namespace
}  // namespace cw::dp
