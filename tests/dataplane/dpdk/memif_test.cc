// Two DPDK backends in two processes over net_memif (one EAL per process): this test process
// is the memif server and runs a UDP echo; it re-executes itself as the memif client
// (DpdkMemif.Peer, enabled by an environment variable), which resolves the server by ARP —
// both sides are corewire's stack — and checks the echoes. When the client exits, the
// server's link goes down and its worker must stop polling the port (memif crashes when
// polled after its peer left). Needs root; skipped with the reason when EAL cannot start.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "dataplane/dpdk/dpdk_io.hh"

extern char** environ;

namespace cw::dp {
namespace {

constexpr const char* kPeerEnv = "CW_MEMIF_PEER_SOCKET";
constexpr int kDatagrams = 20;

DpdkConfig memif_config(const std::string& role, const std::string& sock, const char* addr,
                        const std::string& prefix) {
  DpdkConfig cfg;
  cfg.eal_args = {"--no-huge",
                  "-m",
                  "128",
                  "--no-pci",
                  "--no-shconf",
                  "--log-level=lib.eal:error",
                  "--file-prefix=" + prefix};
  cfg.port = "net_memif0,role=" + role + ",socket=" + sock;
  cfg.addresses = {parse_cidr(addr).value()};
  cfg.rx_desc = 256;
  cfg.tx_desc = 256;
  return cfg;
}

IoConfig small_io() {
  IoConfig io;
  io.workers = 1;
  io.rx_buffers = 512;
  io.tx_buffers = 512;
  return io;
}

// The client half, run only as the re-executed child.
TEST(DpdkMemif, Peer) {
  const char* sock = std::getenv(kPeerEnv);
  if (!sock) GTEST_SKIP() << "runs only as the child of DpdkMemif.EchoAcrossProcesses";
  const std::vector<SocketSpec> specs{{Transport::udp, parse_endpoint("0.0.0.0:0").value(), false}};
  auto b = DpdkBackend::create(
      small_io(), specs,
      memif_config("client", sock, "10.98.0.2/24", "cwmc" + std::to_string(getpid())));
  ASSERT_TRUE(b.ok()) << b.error().message;
  auto w = b.value()->open_worker(0);
  ASSERT_TRUE(w.ok()) << w.error().message;
  DpdkWorker& io = *w.value();
  const Endpoint server = parse_endpoint("10.98.0.1:7777").value();
  RxItem items[64];
  int echoed = 0, sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto next_send = std::chrono::steady_clock::now();
  while (echoed < kDatagrams && std::chrono::steady_clock::now() < deadline) {
    if (std::chrono::steady_clock::now() >= next_send && sent - echoed < 4) {
      const std::string msg = "memif " + std::to_string(sent);
      if (uint8_t* p = io.dgram_reserve(0, server, uint32_t(msg.size()))) {
        std::memcpy(p, msg.data(), msg.size());
        io.dgram_commit(uint32_t(msg.size()));
        ++sent;
      }
      io.flush();
      next_send = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    }
    const uint32_t n = io.poll(items, 64, 1'000'000);
    for (uint32_t k = 0; k < n; ++k)
      if (items[k].peer == server &&
          std::string(reinterpret_cast<const char*>(items[k].data), items[k].len)
                  .rfind("memif ", 0) == 0)
        ++echoed;
    io.flush();
  }
  EXPECT_EQ(echoed, kDatagrams) << "sent " << sent;
  w.value().reset();
  b.value().reset();
  std::system(("rm -rf /var/run/dpdk/cwmc" + std::to_string(getpid())).c_str());
}

TEST(DpdkMemif, EchoAcrossProcessesAndSurvivePeerExit) {
  if (std::getenv(kPeerEnv)) GTEST_SKIP() << "this is the child";
  if (geteuid() != 0) GTEST_SKIP() << "needs root (EAL)";
  const std::string tag = std::to_string(getpid());
  const std::string sock = "/tmp/cw-memif-" + tag + ".sock";
  const std::vector<SocketSpec> specs{
      {Transport::udp, parse_endpoint("0.0.0.0:7777").value(), true}};
  auto b = DpdkBackend::create(small_io(), specs,
                               memif_config("server", sock, "10.98.0.1/24", "cwms" + tag));
  if (!b && b.error().message.rfind("dpdk.eal", 0) == 0)
    GTEST_SKIP() << "EAL cannot start here: " << b.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  DpdkBackend& be = *b.value();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> polls_after_down{0};
  std::unique_ptr<DpdkWorker> worker;
  std::thread t([&] {
    auto w = be.open_worker(0);
    if (!w) return;
    worker = std::move(w.value());
    RxItem items[64];
    while (!stop.load()) {
      const uint32_t n = worker->poll(items, 64, 1'000'000);
      for (uint32_t k = 0; k < n; ++k) {
        uint8_t* out = worker->dgram_reserve(items[k].sock, items[k].peer, items[k].len);
        if (!out) continue;
        std::memcpy(out, items[k].data, items[k].len);
        worker->dgram_commit(items[k].len);
      }
      worker->flush();
      if (!be.link_up()) polls_after_down++;
    }
  });

  // The client: this binary again, running only DpdkMemif.Peer.
  setenv(kPeerEnv, sock.c_str(), 1);
  std::string self = "/proc/self/exe", filter = "--gtest_filter=DpdkMemif.Peer";
  char* argv[] = {self.data(), filter.data(), nullptr};
  pid_t pid = -1;
  const int sp = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ);
  unsetenv(kPeerEnv);
  int status = -1;
  if (sp == 0) {
    for (int i = 0; i < 300; ++i) {  // at most 30 s
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (i == 299) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
    }
  }
  // The peer is gone: the link must go down and the worker keep running without polling it.
  for (int i = 0; i < 50 && be.link_up(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  t.join();
  EXPECT_EQ(sp, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client status " << status;
  EXPECT_FALSE(be.link_up());
  EXPECT_GT(polls_after_down.load(), 0u);
  ASSERT_TRUE(worker);
  EXPECT_GE(worker->counters().rx_datagrams.get(), uint64_t(kDatagrams));
  worker.reset();
  b.value().reset();
  std::system(("rm -rf /var/run/dpdk/cwms" + tag + " " + sock).c_str());
}

}  // namespace
}  // namespace cw::dp
