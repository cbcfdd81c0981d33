// io_uring specifics: multishot recvmsg on a provided-buffer ring (whole 64 KiB datagrams,
// truncation, buffer exhaustion and re-arm), batched sends, TCP accept/recv/send/close,
// output bound, connect, idle timeout, wake-up from another thread, and no fd leaks under
// connection churn. Every wait is bounded by a poll count, never asserted on time.
#include "dataplane/uring/uring_io.hh"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace cw::dp {
namespace {

constexpr uint32_t kLoopback = 0x0100007f;  // 127.0.0.1 in network byte order
constexpr int kMaxPolls = 2000;             // bound on every wait loop
constexpr int64_t kPollNs = 5'000'000;      // per blocking poll

int count_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d)) ++n;
  closedir(d);
  return n;
}

sockaddr_in sa(Endpoint ep) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ep.addr_be;
  a.sin_port = ep.port_be;
  return a;
}

Endpoint local_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return Endpoint{a.sin_addr.s_addr, a.sin_port};
}

// A plain blocking UDP socket on 127.0.0.1 with a receive timeout (the peer in tests).
int udp_client() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = sa({kLoopback, 0});
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return fd;
}

int tcp_client(Endpoint to) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = sa(to);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

class UringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ok = UringBackend::probe();
    if (!ok) GTEST_SKIP() << "io_uring unavailable: " << ok.error().message;
  }

  // Creates the backend with `specs` and opens worker 0 on this thread.
  void open(std::vector<SocketSpec> specs) {
    auto b = UringBackend::create(cfg, specs);
    ASSERT_TRUE(b) << b.error().message;
    backend = std::move(b.value());
    auto w = backend->open_worker(0);
    ASSERT_TRUE(w) << w.error().message;
    io = std::move(w.value());
  }

  // Polls (blocking briefly) until pred() holds over the collected items; bounded.
  bool poll_until(const std::function<bool()>& pred) {
    for (int i = 0; i < kMaxPolls && !pred(); ++i) {
      RxItem items[64];
      const uint32_t n = io->poll(items, 64, kPollNs);
      for (uint32_t k = 0; k < n; ++k) on_item(items[k]);
      io->flush();
    }
    return pred();
  }

  // Writes msg on connection c from a helper thread while polling (the worker echoes it);
  // returns what came back once as many bytes arrived, or what did by the poll bound.
  std::string echo_stream(int c, const std::string& msg) {
    std::thread writer([&] { EXPECT_EQ(send(c, msg.data(), msg.size(), 0), ssize_t(msg.size())); });
    std::string back;
    EXPECT_TRUE(poll_until([&] {
      char buf[65536];
      ssize_t r;
      while ((r = recv(c, buf, sizeof buf, MSG_DONTWAIT)) > 0) back.append(buf, size_t(r));
      return back.size() == msg.size();
    }));
    writer.join();
    return back;
  }

  // Default item handling: record, echo datagrams and stream bytes when `echo` is set.
  void on_item(const RxItem& it) {
    seen.push_back(it);
    if (it.kind == RxKind::datagram) {
      dgrams.emplace_back(it.data, it.data + it.len);
      if (echo) {
        uint8_t* out = io->dgram_reserve(it.sock, it.peer, it.len);
        if (out) {
          std::memcpy(out, it.data, it.len);
          io->dgram_commit(it.len);
        }
      }
    } else if (it.kind == RxKind::stream_data) {
      stream_in.append(reinterpret_cast<const char*>(it.data), it.len);
      if (echo) {
        uint8_t* out = io->stream_reserve(it.conn, it.len);
        if (out) {
          std::memcpy(out, it.data, it.len);
          io->stream_commit(it.conn, it.len);
        }
      }
    } else if (it.kind == RxKind::stream_open) {
      opened.push_back(it.conn);
    } else {
      closed.push_back(it);
    }
  }

  IoConfig cfg;
  std::unique_ptr<UringBackend> backend;
  std::unique_ptr<UringWorker> io;
  std::vector<RxItem> seen;
  std::vector<std::vector<uint8_t>> dgrams;
  std::string stream_in;
  std::vector<ConnId> opened;
  std::vector<RxItem> closed;
  bool echo = true;
};

TEST_F(UringTest, ProbeAndFeatures) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  EXPECT_NE(backend->features().find("ring flags"), std::string::npos);
  EXPECT_EQ(std::string(UringBackend::name()), "io_uring");
  EXPECT_NE(backend->bound(0).port_be, 0);
}

TEST_F(UringTest, BadConfigIsRejected) {
  cfg.rx_buffers = 1000;  // not a power of two
  SocketSpec s{Transport::udp, {kLoopback, 0}, true};
  EXPECT_FALSE(UringBackend::create(cfg, {&s, 1}));
}

TEST_F(UringTest, BindConflictIsAnError) {
  const int fd = udp_client();  // holds a port without SO_REUSEPORT
  SocketSpec s{Transport::udp, local_of(fd), true};
  auto b = UringBackend::create(cfg, {&s, 1});
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("bind"), std::string::npos);
  ::close(fd);
}

TEST_F(UringTest, UdpEchoBatch) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  constexpr int kN = 100;
  for (int i = 0; i < kN; ++i) {
    std::string m = "msg-" + std::to_string(i);
    sendto(c, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }
  ASSERT_TRUE(poll_until([&] { return dgrams.size() == kN; }));
  for (int i = 0; i < kN; ++i) {
    char buf[64];
    const ssize_t r = recv(c, buf, sizeof buf, 0);
    ASSERT_GT(r, 0);
    EXPECT_EQ(std::string(buf, size_t(r)), "msg-" + std::to_string(i));
  }
  EXPECT_EQ(seen[0].peer, local_of(c));
  EXPECT_EQ(io->counters().rx_datagrams.get(), uint64_t(kN));
  poll_until([&] { return io->counters().tx_datagrams.get() == kN; });
  EXPECT_EQ(io->counters().tx_datagrams.get(), uint64_t(kN));
  ::close(c);
}

// Interrupt moderation (IoConfig::coalesce_us) must never strand an item: a clustered burst
// engages it, then a lone datagram and single ping-pong exchanges still arrive (a moderated
// wait ends at coalesce_us with whatever is there).
TEST_F(UringTest, CoalescingDeliversBurstsAndLoneDatagrams) {
  cfg.coalesce_us = 200;
  open({{Transport::udp, {kLoopback, 0}, true}});
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  for (int i = 0; i < 50; ++i)
    sendto(c, "burst", 5, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  ASSERT_TRUE(poll_until([&] { return dgrams.size() == 50; }));
  for (int i = 0; i < 20; ++i) {
    const std::string m = "ping-" + std::to_string(i);
    sendto(c, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    ASSERT_TRUE(poll_until([&] { return dgrams.size() == size_t(51 + i); })) << i;
    EXPECT_EQ(std::string(dgrams.back().begin(), dgrams.back().end()), m);
  }
  char buf[64];
  int replies = 0;
  while (replies < 70 && recv(c, buf, sizeof buf, 0) > 0) ++replies;
  EXPECT_EQ(replies, 70);
  ::close(c);
}

TEST_F(UringTest, SendmsgFallbackEchoes) {
  auto b =
      UringBackend::create(cfg, std::vector<SocketSpec>{{Transport::udp, {kLoopback, 0}, true}});
  ASSERT_TRUE(b) << b.error().message;
  backend = std::move(b.value());
  backend->force_sendmsg();
  auto w = backend->open_worker(0);
  ASSERT_TRUE(w) << w.error().message;
  io = std::move(w.value());
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  for (int i = 0; i < 10; ++i) {
    const std::string m(size_t(100 + i * 1000), char('a' + i));
    sendto(c, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    std::string back(m.size() + 10, 0);
    ASSERT_TRUE(poll_until([&] { return dgrams.size() == size_t(i + 1); }));
    ASSERT_EQ(recv(c, back.data(), back.size(), 0), ssize_t(m.size()));
    back.resize(m.size());
    EXPECT_EQ(back, m);
  }
  ::close(c);
}

TEST_F(UringTest, LargeDatagramArrivesWhole) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  std::vector<uint8_t> big(65000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  ASSERT_EQ(sendto(c, big.data(), big.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
            ssize_t(big.size()));
  ASSERT_TRUE(poll_until([&] { return dgrams.size() == 1; }));
  EXPECT_EQ(dgrams[0], big);
  std::vector<uint8_t> back(70000);
  EXPECT_EQ(recv(c, back.data(), back.size(), 0), ssize_t(big.size()));
  back.resize(big.size());
  EXPECT_EQ(back, big);
  EXPECT_EQ(io->counters().rx_truncated.get(), 0u);
  ::close(c);
}

// A sender's GSO train reaches the socket as one UDP_GRO run (loopback never cuts it) and
// leaves poll() as its datagrams, whole and in order, even three at a time; what follows
// the run arrives after it.
TEST_F(UringTest, GroRunLeavesAsItsDatagrams) {
  if (!kernel::udp_gso_available() || !kernel::udp_gro_available())
    GTEST_SKIP() << "the kernel lacks UDP_SEGMENT or UDP_GRO";
  echo = false;
  open({{Transport::udp, {kLoopback, 0}, true}});
  ASSERT_NE(backend->features().find("+ gro"), std::string::npos) << backend->features();
  const int c = udp_client();
  sockaddr_in to = sa(backend->bound(0));
  constexpr uint16_t kSeg = 100;
  constexpr int kN = 40;  // 39 full datagrams and a short one
  std::vector<uint8_t> train(size_t(kSeg) * (kN - 1) + 37);
  for (size_t i = 0; i < train.size(); ++i) train[i] = uint8_t(i / kSeg + i % 7);
  kernel::GsoTrain t;  // the backends' own train builder, as the sender
  t.to = to;
  t.seg = kSeg;
  for (size_t off = 0; off < train.size(); off += kSeg)
    t.add(0, train.data() + off, uint32_t(std::min<size_t>(kSeg, train.size() - off)));
  ASSERT_EQ(sendmsg(c, t.finish(), 0), ssize_t(train.size()));
  ASSERT_EQ(sendto(c, "after", 5, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to), 5);
  for (int i = 0; i < kMaxPolls && dgrams.size() < kN + 1; ++i) {
    RxItem items[3];
    const uint32_t n = io->poll(items, 3, kPollNs);
    EXPECT_LE(n, 3u);
    for (uint32_t k = 0; k < n; ++k) on_item(items[k]);
  }
  ASSERT_EQ(dgrams.size(), size_t(kN + 1));
  for (int i = 0; i < kN; ++i) {
    const size_t off = size_t(i) * kSeg;
    const std::vector<uint8_t> want(train.begin() + off,
                                    train.begin() + std::min(off + kSeg, train.size()));
    EXPECT_EQ(dgrams[i], want) << "datagram " << i;
    EXPECT_EQ(seen[i].peer, local_of(c));
  }
  EXPECT_EQ(std::string(dgrams[kN].begin(), dgrams[kN].end()), "after");
  EXPECT_EQ(io->counters().rx_datagrams.get(), uint64_t(kN + 1));
  EXPECT_EQ(io->counters().rx_bytes.get(), uint64_t(train.size() + 5));
  ::close(c);
}

TEST_F(UringTest, DatagramAboveMaxIsCountedAndDropped) {
  cfg.max_datagram = 1000;
  open({{Transport::udp, {kLoopback, 0}, true}});
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  std::vector<uint8_t> big(3000, 1);
  sendto(c, big.data(), big.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  sendto(c, "ok", 2, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  ASSERT_TRUE(poll_until([&] { return dgrams.size() == 1; }));
  EXPECT_EQ(dgrams[0], std::vector<uint8_t>({'o', 'k'}));
  EXPECT_EQ(io->counters().rx_truncated.get(), 1u);
  // A reply above max_datagram cannot be reserved: counted, nothing sent.
  EXPECT_EQ(io->dgram_reserve(0, local_of(c), 1001), nullptr);
  EXPECT_EQ(io->counters().tx_no_buffer.get(), 1u);
  ::close(c);
}

TEST_F(UringTest, BufferExhaustionRearmsAndServiceContinues) {
  cfg.rx_buffers = 2;
  open({{Transport::udp, {kLoopback, 0}, true}});
  ASSERT_EQ(io->udp_rx_buffers(), 2u);
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  // A burst far larger than the buffer ring, with nobody polling: the multishot recvmsg
  // runs dry (ENOBUFS) and must be re-armed.
  constexpr int kBurst = 64;
  for (int i = 0; i < kBurst; ++i)
    sendto(c, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  // Poll one item at a time so at most two buffers are ever out.
  for (int i = 0; i < kMaxPolls && dgrams.size() < kBurst; ++i) {
    RxItem it;
    if (io->poll(&it, 1, kPollNs)) on_item(it);
    io->flush();
  }
  EXPECT_GE(io->counters().rx_no_buffer.get(), 1u);
  // Everything the socket queued still arrives (the kernel keeps it while we re-arm).
  EXPECT_EQ(dgrams.size(), size_t(kBurst));
  // And the service continues.
  sendto(c, "after", 5, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  ASSERT_TRUE(poll_until([&] { return dgrams.size() == kBurst + 1; }));
  ::close(c);
}

TEST_F(UringTest, KernelReceiveQueueDropsAreCounted) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  const int c = udp_client();
  const sockaddr_in to = sa(backend->bound(0));
  // Far more than any socket buffer the kernel grants, while the worker does not enter the
  // kernel (DEFER_TASKRUN: nothing is received meanwhile) or has no buffers left.
  constexpr uint32_t kSent = 20000;
  const std::string m(1400, 'd');
  for (uint32_t i = 0; i < kSent; ++i)
    sendto(c, m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  echo = false;
  for (int quiet = 0, i = 0; quiet < 3 && i < 100000; ++i) {
    RxItem items[64];
    quiet = io->poll(items, 64, 0) ? 0 : quiet + 1;
  }
  // The drop counter is sampled (every kernel::kDropSamplePeriodNs): poll (bounded) until
  // every datagram is accounted for.
  const IoCounters& k = io->counters();
  ASSERT_TRUE(poll_until([&] { return k.rx_datagrams.get() + k.rx_no_buffer.get() >= kSent; }))
      << k.rx_datagrams.get() << " received, " << k.rx_no_buffer.get() << " dropped";
  EXPECT_GT(k.rx_no_buffer.get(), 0u);
  // No silent loss: every datagram was received or counted (rx_no_buffer also counts the
  // ENOBUFS re-arms of the multishot receive, so it may exceed the kernel's drops).
  EXPECT_LE(k.rx_datagrams.get(), uint64_t(kSent));
  EXPECT_GE(k.rx_datagrams.get() + k.rx_no_buffer.get(), uint64_t(kSent))
      << k.rx_datagrams.get() << " received, " << k.rx_no_buffer.get() << " dropped";
  ::close(c);
}

TEST_F(UringTest, WorkerOpensOnce) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  auto again = backend->open_worker(0);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("twice"), std::string::npos);
  EXPECT_FALSE(backend->open_worker(1));
}

TEST_F(UringTest, TxPoolExhaustionIsCounted) {
  cfg.tx_buffers = 4;
  open({{Transport::udp, {kLoopback, 0}, true}});
  const Endpoint to{kLoopback, htons(9)};
  // tx_buffers small buffers, then the pool's few max-size ones.
  const uint32_t total = 4 + kernel::kTxLargeBuffers;
  for (uint32_t i = 0; i < total; ++i) {
    ASSERT_NE(io->dgram_reserve(0, to, 10), nullptr);
    io->dgram_commit(0);
  }
  EXPECT_EQ(io->dgram_reserve(0, to, 10), nullptr);
  EXPECT_EQ(io->counters().tx_no_buffer.get(), 1u);
  io->flush();
  // Slots come back with their CQEs.
  ASSERT_TRUE(poll_until(
      [&] { return io->counters().tx_datagrams.get() + io->counters().tx_errors.get() == total; }));
  EXPECT_NE(io->dgram_reserve(0, to, 10), nullptr);
  io->dgram_commit(0);
  io->flush();
}

TEST_F(UringTest, WakeFromAnotherThread) {
  open({{Transport::udp, {kLoopback, 0}, true}});
  std::thread t([&] { io->wake(); });
  RxItem it;
  // A long block returns once woken (no datagram arrives).
  int polls = 0;
  while (io->counters().wakeups.get() == 0 && polls++ < 10) io->poll(&it, 1, 10'000'000'000);
  t.join();
  EXPECT_EQ(io->counters().wakeups.get(), 1u);
}

TEST_F(UringTest, TcpEchoAndPeerClose) {
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c = tcp_client(backend->bound(0));
  ASSERT_TRUE(poll_until([&] { return opened.size() == 1; }));
  const std::string msg(100000, 'a');
  const std::string back = echo_stream(c, msg);
  EXPECT_EQ(back, msg);
  EXPECT_EQ(io->counters().conns_open.get(), 1u);
  ::close(c);
  ASSERT_TRUE(poll_until([&] { return closed.size() == 1; }));
  EXPECT_EQ(closed[0].reason, CloseReason::peer);
  EXPECT_EQ(closed[0].conn, opened[0]);
  EXPECT_EQ(io->counters().conns_open.get(), 0u);
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
  // The handle is dead.
  EXPECT_EQ(io->stream_reserve(opened[0], 1), nullptr);
}

TEST_F(UringTest, StreamBufferExhaustionRearmsWithoutLosingBytes) {
  cfg.rx_buffers = 2;       // two 64-byte stream buffers: the multishot recv runs dry
  cfg.rx_buffer_size = 64;  // constantly and must be re-armed
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c = tcp_client(backend->bound(0));
  ASSERT_TRUE(poll_until([&] { return opened.size() == 1; }));
  std::string msg(50000, 0);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = char('a' + i % 23);
  const std::string back = echo_stream(c, msg);
  EXPECT_EQ(stream_in, msg);
  EXPECT_EQ(back, msg);
  EXPECT_GE(io->counters().rx_no_buffer.get(), 1u);
  ::close(c);
}

TEST_F(UringTest, LocalCloseSendsQueuedOutputFirst) {
  echo = false;
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c = tcp_client(backend->bound(0));
  ASSERT_TRUE(poll_until([&] { return opened.size() == 1; }));
  const std::string reply(300000, 'r');
  uint8_t* out = io->stream_reserve(opened[0], uint32_t(reply.size()));
  ASSERT_NE(out, nullptr);
  std::memcpy(out, reply.data(), reply.size());
  io->stream_commit(opened[0], uint32_t(reply.size()));
  io->close(opened[0]);
  io->flush();
  std::string back;
  ASSERT_TRUE(poll_until([&] {
    char buf[65536];
    ssize_t r;
    while ((r = recv(c, buf, sizeof buf, MSG_DONTWAIT)) > 0) back.append(buf, size_t(r));
    return r == 0;  // EOF after everything
  }));
  EXPECT_EQ(back.size(), reply.size());
  ASSERT_TRUE(poll_until([&] { return closed.size() == 1; }));
  EXPECT_EQ(closed[0].reason, CloseReason::local);
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
  ::close(c);
}

TEST_F(UringTest, SlowReaderIsClosedAtOutputLimit) {
  cfg.conn_out_limit = 64 << 10;
  echo = false;
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c = tcp_client(backend->bound(0));
  int small = 4096;
  setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_TRUE(poll_until([&] { return opened.size() == 1; }));
  // The client never reads: keep queueing 8 KiB replies until the bound closes it.
  const ConnId id = opened[0];
  bool refused = false;
  for (int i = 0; i < kMaxPolls && !refused; ++i) {
    uint8_t* out = io->stream_reserve(id, 8192);
    if (!out) {
      refused = true;
      break;
    }
    std::memset(out, 'z', 8192);
    io->stream_commit(id, 8192);
    io->flush();
    RxItem items[8];
    const uint32_t n = io->poll(items, 8, 0);
    for (uint32_t k = 0; k < n; ++k) on_item(items[k]);
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(io->counters().conns_overflow.get(), 1u);
  ASSERT_TRUE(poll_until([&] { return closed.size() == 1; }));
  EXPECT_EQ(closed[0].reason, CloseReason::overflow);
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
  ::close(c);
}

TEST_F(UringTest, ConnectAndConnectFailure) {
  // A listener outside the backend, and a client spec in it.
  const int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = sa({kLoopback, 0});
  bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(l, 16);
  open({{Transport::tcp, {kLoopback, 0}, false}});
  const ConnId id = io->connect(0, local_of(l));
  ASSERT_NE(id, kNoConn);
  // Output queued before the connection is up goes out once it is.
  uint8_t* out = io->stream_reserve(id, 5);
  ASSERT_NE(out, nullptr);
  std::memcpy(out, "hello", 5);
  io->stream_commit(id, 5);
  io->flush();
  ASSERT_TRUE(poll_until([&] { return opened.size() == 1; }));
  EXPECT_EQ(opened[0], id);
  const int s = accept(l, nullptr, nullptr);
  char buf[8] = {};
  timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(recv(s, buf, 5, MSG_WAITALL), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(io->counters().conns_connected.get(), 1u);
  ::close(s);
  ASSERT_TRUE(poll_until([&] { return closed.size() == 1; }));
  const Endpoint dead = local_of(l);
  ::close(l);
  // Nothing listens there any more: connect_failed.
  const ConnId bad = io->connect(0, dead);
  ASSERT_NE(bad, kNoConn);
  ASSERT_TRUE(poll_until([&] { return closed.size() == 2; }));
  EXPECT_EQ(closed[1].conn, bad);
  EXPECT_EQ(closed[1].reason, CloseReason::connect_failed);
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
}

TEST_F(UringTest, IdleConnectionIsClosed) {
  cfg.idle_timeout_ms = 1;
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c = tcp_client(backend->bound(0));
  ASSERT_TRUE(poll_until([&] { return closed.size() == 1; }));
  EXPECT_EQ(closed[0].reason, CloseReason::idle);
  EXPECT_EQ(io->counters().conns_idle.get(), 1u);
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
  char b;
  EXPECT_EQ(recv(c, &b, 1, 0), 0);  // the server side is gone
  ::close(c);
}

TEST_F(UringTest, MaxConnsRejectsBeyondLimit) {
  cfg.max_conns = 2;
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int c1 = tcp_client(backend->bound(0));
  const int c2 = tcp_client(backend->bound(0));
  const int c3 = tcp_client(backend->bound(0));
  ASSERT_TRUE(poll_until([&] { return io->counters().conns_rejected.get() == 1; }));
  EXPECT_EQ(opened.size(), 2u);
  char b;
  EXPECT_EQ(recv(c3, &b, 1, 0), 0);
  for (int fd : {c1, c2, c3}) ::close(fd);
}

TEST_F(UringTest, AcceptOutOfFdsPausesAndResumes) {
  const std::vector<SocketSpec> specs{{Transport::tcp, {kLoopback, 0}, true}};
  auto b = UringBackend::create(cfg, specs);
  ASSERT_TRUE(b) << b.error().message;
  backend = std::move(b.value());
  // Three clients complete their handshakes into the listener's backlog...
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(tcp_client(backend->bound(0)));
  // ...and the worker starts with no descriptor to spare (the accept takes its limit when
  // armed): every number below the limit is taken but the two the ring and eventfd need.
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  rlimit tight = old;
  tight.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> filler;
  for (int fd; (fd = dup(clients[0])) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  for (int i = 0; i < 2; ++i) {
    ::close(filler.back());
    filler.pop_back();
  }
  auto w = backend->open_worker(0);
  ASSERT_TRUE(w) << w.error().message;
  io = std::move(w.value());
  for (int i = 0; i < 20; ++i) {
    RxItem items[8];
    const uint32_t n = io->poll(items, 8, 1'000'000);
    for (uint32_t k = 0; k < n; ++k) on_item(items[k]);
    io->flush();
  }
  EXPECT_EQ(opened.size(), 0u);
  for (int fd : filler) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  // Accepting resumes after the back-off; every client gets through.
  ASSERT_TRUE(poll_until([&] { return opened.size() == 3; }));
  for (int fd : clients) ::close(fd);
}

TEST_F(UringTest, ConnectionChurnLeaksNoFds) {
  open({{Transport::tcp, {kLoopback, 0}, true}});
  const int before = count_fds();
  constexpr int kRounds = 200;
  for (int i = 0; i < kRounds; ++i) {
    const int c = tcp_client(backend->bound(0));
    send(c, "ping", 4, 0);
    ASSERT_TRUE(poll_until([&] { return stream_in.size() == size_t(4 * (i + 1)); }));
    char buf[4];
    ASSERT_EQ(recv(c, buf, 4, MSG_WAITALL), 4);
    if (i % 2) {
      ::close(c);  // peer closes
      ASSERT_TRUE(poll_until([&] { return closed.size() == size_t(i + 1); }));
    } else {
      io->close(opened.back());  // we close
      io->flush();
      ASSERT_TRUE(poll_until([&] { return closed.size() == size_t(i + 1); }));
      ::close(c);
    }
  }
  ASSERT_TRUE(poll_until([&] { return io->conns_in_use() == 0; }));
  EXPECT_EQ(count_fds(), before);
  EXPECT_EQ(io->counters().conns_accepted.get(), uint64_t(kRounds));
  EXPECT_EQ(io->counters().conns_closed.get(), uint64_t(kRounds));
}

TEST_F(UringTest, TwoWorkersShareAServerPort) {
  cfg.workers = 2;
  auto b =
      UringBackend::create(cfg, std::vector<SocketSpec>{{Transport::udp, {kLoopback, 0}, true}});
  ASSERT_TRUE(b) << b.error().message;
  // Each worker's ring is created on its own thread (SINGLE_ISSUER).
  for (unsigned w = 0; w < 2; ++w) {
    std::thread t([&] {
      auto io = b.value()->open_worker(w);
      ASSERT_TRUE(io) << io.error().message;
      EXPECT_EQ(io.value()->worker_id(), w);
    });
    t.join();
  }
}

}  // namespace
}  // namespace cw::dp
