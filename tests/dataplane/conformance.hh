// Backend conformance suite: what every kernel backend (epoll, io_uring) must do, checked
// through real loopback sockets on 127.0.0.1, port 0. Instantiate it for a backend type:
//
//   using Backends = ::testing::Types<cw::dp::EpollBackend>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(Epoll, BackendConformance, Backends);
//
// The tests drive WorkerIo directly (poll / reserve / commit / flush) from the test thread;
// the peers are plain blocking sockets with receive timeouts, some on helper threads. Every
// wait is bounded in time (kDeadline) and count; no assertion is about timing.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/io.hh"
#include "dataplane/kernel/udp_gso.hh"

namespace cw::dp::conformance {

using Clock = std::chrono::steady_clock;
inline constexpr auto kDeadline = std::chrono::seconds(10);
inline constexpr int64_t kPollNs = 2'000'000;  // 2 ms per poll while waiting

inline Endpoint loopback(uint16_t port = 0) {
  return {htonl(INADDR_LOOPBACK), htons(port)};
}

// Deterministic payload: byte i of message `seed`.
inline uint8_t pattern(uint32_t seed, size_t i) {
  return uint8_t((seed * 131u + i * 7u + (i >> 8)) & 0xFF);
}
inline std::vector<uint8_t> payload(uint32_t seed, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = pattern(seed, i);
  return v;
}

// ---- peers: plain blocking sockets with timeouts ------------------------------------------

inline void set_timeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct Sock {
  int fd = -1;
  explicit Sock(int f = -1) : fd(f) {}
  Sock(Sock&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Sock& operator=(Sock&& o) noexcept {
    reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Sock() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

inline sockaddr_in sa(Endpoint ep) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ep.addr_be;
  a.sin_port = ep.port_be;
  return a;
}

inline Sock udp_peer() {
  Sock s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = sa(loopback());
  ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  int big = 4 << 20;
  setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  set_timeout(s.fd, 5000);
  return s;
}

inline Endpoint local_of(int fd) {
  sockaddr_in a{};
  socklen_t l = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  return {a.sin_addr.s_addr, a.sin_port};
}

// A loopback TCP port nobody listens on: bound, read and closed again.
inline Endpoint dead_port() {
  Sock s(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a = sa(loopback());
  ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  return local_of(s.fd);
}

inline bool udp_send(const Sock& s, Endpoint to, const std::vector<uint8_t>& d) {
  sockaddr_in a = sa(to);
  return ::sendto(s.fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
         ssize_t(d.size());
}

inline std::vector<uint8_t> udp_recv(const Sock& s) {
  std::vector<uint8_t> b(70000);
  const ssize_t r = ::recv(s.fd, b.data(), b.size(), 0);
  b.resize(r < 0 ? 0 : size_t(r));
  return b;
}

inline Sock tcp_peer(Endpoint to) {
  Sock s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  set_timeout(s.fd, 5000);
  sockaddr_in a = sa(to);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) s.reset();
  return s;
}

inline bool send_all(const Sock& s, const std::vector<uint8_t>& d) {
  size_t off = 0;
  while (off < d.size()) {
    const ssize_t r = ::send(s.fd, d.data() + off, d.size() - off, MSG_NOSIGNAL);
    if (r <= 0) return false;
    off += size_t(r);
  }
  return true;
}

// Reads exactly n bytes (or fewer on EOF/timeout/error).
inline std::vector<uint8_t> recv_n(const Sock& s, size_t n) {
  std::vector<uint8_t> b(n);
  size_t off = 0;
  while (off < n) {
    const ssize_t r = ::recv(s.fd, b.data() + off, n - off, 0);
    if (r <= 0) break;
    off += size_t(r);
  }
  b.resize(off);
  return b;
}

// 0: orderly EOF; <0: -errno (e.g. -ECONNRESET); >0: bytes were still there.
inline ssize_t recv_eof(const Sock& s) {
  uint8_t b[4096];
  for (;;) {
    const ssize_t r = ::recv(s.fd, b, sizeof b, 0);
    if (r < 0) return -errno;
    if (r == 0) return 0;
  }
}

inline int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (readdir(d)) ++n;
  closedir(d);
  return n;
}

// ---- the fixture ---------------------------------------------------------------------------

template <class B>
class BackendConformance : public ::testing::Test {
 protected:
  using W = typename B::Worker;

  // Creates the backend and opens every worker (on this thread).
  void open(IoConfig cfg, std::vector<SocketSpec> specs) {
    specs_ = std::move(specs);
    auto b = B::create(cfg, specs_);
    ASSERT_TRUE(b) << b.error().message;
    backend_ = std::move(b.value());
    for (unsigned i = 0; i < cfg.workers; ++i) {
      auto w = backend_->open_worker(i);
      ASSERT_TRUE(w) << w.error().message;
      workers_.push_back(std::move(w.value()));
    }
  }
  W& io(unsigned i = 0) { return *workers_.at(i); }
  Endpoint bound(SocketId s) const { return backend_->bound(s); }

  // Polls worker w (and flushes after each poll) until done() or the deadline; every item
  // goes to on_item. Returns done().
  bool pump(unsigned w, const std::function<void(const RxItem&)>& on_item,
            const std::function<bool()>& done, uint32_t burst = 64) {
    std::vector<RxItem> items(burst);
    const auto end = Clock::now() + kDeadline;
    while (!done()) {
      if (Clock::now() > end) return false;
      const uint32_t n = io(w).poll(items.data(), burst, kPollNs);
      for (uint32_t i = 0; i < n; ++i) on_item(items[i]);
      io(w).flush();
    }
    return true;
  }

  // An echo server: datagrams back to their sender, stream bytes back on their connection.
  void echo(unsigned w, const RxItem& it) {
    if (it.kind == RxKind::datagram) {
      uint8_t* p = io(w).dgram_reserve(it.sock, it.peer, it.len);
      ASSERT_NE(p, nullptr);
      std::memcpy(p, it.data, it.len);
      io(w).dgram_commit(it.len);
    } else if (it.kind == RxKind::stream_data) {
      uint8_t* p = io(w).stream_reserve(it.conn, it.len);
      if (!p) return;
      std::memcpy(p, it.data, it.len);
      io(w).stream_commit(it.conn, it.len);
    }
  }

  // Queues n bytes of pattern(seed) on c in pieces of at most `piece`; false when refused.
  bool queue_stream(unsigned w, ConnId c, uint32_t seed, size_t from, size_t n, uint32_t piece) {
    while (n) {
      const uint32_t k = uint32_t(std::min<size_t>(n, piece));
      uint8_t* p = io(w).stream_reserve(c, k);
      if (!p) return false;
      for (uint32_t i = 0; i < k; ++i) p[i] = pattern(seed, from + i);
      io(w).stream_commit(c, k);
      from += k;
      n -= k;
    }
    return true;
  }

  static IoConfig small_config() {
    IoConfig c;
    c.max_conns = 64;
    c.rx_buffers = 256;
    c.tx_buffers = 256;
    return c;
  }

  std::vector<SocketSpec> specs_;
  std::unique_ptr<B> backend_;
  std::vector<std::unique_ptr<W>> workers_;
};

TYPED_TEST_SUITE_P(BackendConformance);
// Files that include this header only for the peer helpers do not instantiate the suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendConformance);

// ---- UDP -----------------------------------------------------------------------------------

TYPED_TEST_P(BackendConformance, UdpEchoRoundTripAllSizes) {
  this->open(this->small_config(), {{Transport::udp, loopback(), true}});
  const Endpoint srv = this->bound(0);
  ASSERT_NE(srv.port_be, 0);
  Sock peer = udp_peer();
  uint64_t sent = 0;
  for (size_t size : {size_t(1), size_t(64), size_t(1472), size_t(9000), size_t(65000)}) {
    const auto msg = payload(uint32_t(size), size);
    ASSERT_TRUE(udp_send(peer, srv, msg)) << size;
    ++sent;
    ASSERT_TRUE(this->pump(
        0,
        [&](const RxItem& it) {
          EXPECT_EQ(it.kind, RxKind::datagram);
          EXPECT_EQ(it.peer, local_of(peer.fd));
          this->echo(0, it);
        },
        [&] { return this->io().counters().tx_datagrams.get() == sent; }))
        << size;
    EXPECT_EQ(udp_recv(peer), msg) << "size " << size;
  }
  const IoCounters& c = this->io().counters();
  EXPECT_EQ(c.rx_datagrams.get(), 5u);
  EXPECT_EQ(c.rx_bytes.get(), 1u + 64 + 1472 + 9000 + 65000);
  EXPECT_EQ(c.tx_bytes.get(), c.rx_bytes.get());
  EXPECT_EQ(c.rx_truncated.get(), 0u);
}

// Replies in one burst to two interleaved peers, with sizes that end GSO trains (a shorter
// datagram), start new ones (a longer one) and bypass them (above kGsoMaxSegBytes): each
// peer gets every reply whole, as its own datagram, in the order it was sent; runs of
// equal-sized replies did leave as GSO sends where the kernel offers UDP_SEGMENT, and none
// did with runtime.udp_gso off.
inline std::vector<uint32_t> gso_sizes() {
  std::vector<uint32_t> v(10, 100);
  v.push_back(50);  // shorter: ends the train
  v.insert(v.end(), 5, 100);
  v.push_back(3000);  // too big for a train: goes alone, after the train before it
  v.insert(v.end(), 6, 100);
  v.insert(v.end(), 6, 200);  // longer: a new train
  return v;
}

TYPED_TEST_P(BackendConformance, GsoTrainsKeepEveryDatagramWholeAndInOrder) {
  for (bool gso : {true, false}) {
    SCOPED_TRACE(gso ? "udp_gso on" : "udp_gso off");
    this->workers_.clear();
    IoConfig cfg = this->small_config();
    cfg.udp_gso = gso;
    this->open(cfg, {{Transport::udp, loopback(), true}});
    Sock peers[2] = {udp_peer(), udp_peer()};
    // First many flushes that each send one datagram (a train of one): more than there are
    // train descriptors, so none may stay taken.
    for (uint32_t i = 0; i < 2 * kernel::kGsoTrains; ++i) {
      ASSERT_TRUE(udp_send(peers[0], this->bound(0), payload(i, 32)));
      ASSERT_TRUE(this->pump(
          0, [&](const RxItem& it) { this->echo(0, it); },
          [&] { return this->io().counters().tx_datagrams.get() == i + 1; }));
      ASSERT_EQ(udp_recv(peers[0]), payload(i, 32));
    }
    const uint64_t before = this->io().counters().tx_datagrams.get();
    const auto sizes = gso_sizes();
    for (uint32_t i = 0; i < sizes.size(); ++i)
      for (uint32_t p = 0; p < 2; ++p)
        ASSERT_TRUE(udp_send(peers[p], this->bound(0), payload(p * 100 + i, sizes[i])));
    const uint64_t total = before + 2 * sizes.size();
    ASSERT_TRUE(this->pump(
        0, [&](const RxItem& it) { this->echo(0, it); },
        [&] { return this->io().counters().tx_datagrams.get() == total; }));
    for (uint32_t p = 0; p < 2; ++p)
      for (uint32_t i = 0; i < sizes.size(); ++i)
        ASSERT_EQ(udp_recv(peers[p]), payload(p * 100 + i, sizes[i]))
            << "peer " << p << " reply " << i;
    EXPECT_EQ(this->io().counters().tx_errors.get(), 0u);
    if (gso && kernel::udp_gso_available())
      EXPECT_GT(this->io().counters().tx_gso_sends.get(), 0u);
    else
      EXPECT_EQ(this->io().counters().tx_gso_sends.get(), 0u);
  }
}

TYPED_TEST_P(BackendConformance, UdpBurstIsDeliveredCompletelyInSmallPolls) {
  IoConfig cfg = this->small_config();
  cfg.rx_buffers = 8;  // the rx arena fills within a poll: the rest must wait, not vanish
  this->open(cfg, {{Transport::udp, loopback(), true}});
  Sock peer = udp_peer();
  constexpr uint32_t kCount = 200;
  for (uint32_t i = 0; i < kCount; ++i) {
    auto m = payload(i, 64);
    std::memcpy(m.data(), &i, sizeof i);
    ASSERT_TRUE(udp_send(peer, this->bound(0), m));
  }
  std::vector<int> seen(kCount, 0);
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        ASSERT_EQ(it.len, 64u);
        uint32_t id;
        std::memcpy(&id, it.data, sizeof id);
        ASSERT_LT(id, kCount);
        auto want = payload(id, 64);
        std::memcpy(want.data(), &id, sizeof id);
        EXPECT_EQ(std::memcmp(it.data, want.data(), 64), 0) << id;
        ++seen[id];
      },
      [&] { return this->io().counters().rx_datagrams.get() >= kCount; }, 16));
  for (uint32_t i = 0; i < kCount; ++i) EXPECT_EQ(seen[i], 1) << "datagram " << i;
}

TYPED_TEST_P(BackendConformance, DatagramAboveMaxIsDroppedAndCounted) {
  IoConfig cfg = this->small_config();
  cfg.rx_buffer_size = 512;
  cfg.max_datagram = 1000;
  this->open(cfg, {{Transport::udp, loopback(), true}});
  Sock peer = udp_peer();
  const auto big = payload(1, 2000), large = payload(2, 1000), small = payload(3, 100);
  ASSERT_TRUE(udp_send(peer, this->bound(0), big));
  ASSERT_TRUE(udp_send(peer, this->bound(0), large));  // exactly max: the large path
  ASSERT_TRUE(udp_send(peer, this->bound(0), small));
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(this->pump(
      0, [&](const RxItem& it) { got.emplace_back(it.data, it.data + it.len); },
      [&] { return got.size() >= 2; }));
  EXPECT_EQ(got[0], large);
  EXPECT_EQ(got[1], small);
  EXPECT_EQ(this->io().counters().rx_truncated.get(), 1u);
  EXPECT_EQ(this->io().counters().rx_datagrams.get(), 2u);
  // Sending above max_datagram is refused and counted, too.
  EXPECT_EQ(this->io().dgram_reserve(0, local_of(peer.fd), 1001), nullptr);
  EXPECT_EQ(this->io().counters().tx_no_buffer.get(), 1u);
}

TYPED_TEST_P(BackendConformance, TxPoolExhaustionIsCountedAndTheRestIsSent) {
  IoConfig cfg = this->small_config();
  cfg.tx_buffers = 4;
  this->open(cfg, {{Transport::udp, loopback(), true}});
  Sock peer = udp_peer();
  const Endpoint to = local_of(peer.fd);
  uint32_t ok = 0;
  for (uint32_t i = 0; i < 1000; ++i) {  // far more than any pool a backend should size
    uint8_t* p = this->io().dgram_reserve(0, to, 8);
    if (!p) break;
    std::memcpy(p, &i, 4);
    std::memcpy(p + 4, &i, 4);
    this->io().dgram_commit(8);
    ++ok;
  }
  ASSERT_LT(ok, 1000u) << "the pool is bounded";
  EXPECT_GE(ok, 4u);
  EXPECT_EQ(this->io().counters().tx_no_buffer.get(), 1u);
  EXPECT_EQ(this->io().dgram_reserve(7, to, 8), nullptr) << "unknown socket";
  this->io().flush();
  // Buffers come back after the send: reserving works again.
  RxItem items[4];
  for (int i = 0; i < 50 && this->io().counters().tx_datagrams.get() < ok; ++i)
    this->io().poll(items, 4, kPollNs);
  EXPECT_EQ(this->io().counters().tx_datagrams.get(), ok);
  for (uint32_t i = 0; i < ok; ++i) {
    auto d = udp_recv(peer);
    ASSERT_EQ(d.size(), 8u);
    uint32_t v;
    std::memcpy(&v, d.data(), 4);
    EXPECT_EQ(v, i) << "datagrams go out in commit order";
  }
  EXPECT_NE(this->io().dgram_reserve(0, to, 8), nullptr);
  this->io().dgram_commit(0);
  this->io().flush();
}

TYPED_TEST_P(BackendConformance, TwoWorkersShareAServerPort) {
  IoConfig cfg = this->small_config();
  cfg.workers = 2;
  this->open(cfg, {{Transport::udp, loopback(), true}});
  // SO_REUSEPORT spreads sources by hash: use sources until both workers answered.
  std::vector<Sock> peers;
  uint64_t total = 0;
  for (int i = 0; i < 64; ++i) {
    peers.push_back(udp_peer());
    const auto msg = payload(uint32_t(i), 32);
    ASSERT_TRUE(udp_send(peers.back(), this->bound(0), msg));
    ++total;
    const auto end = Clock::now() + kDeadline;
    RxItem items[8];
    while (this->io(0).counters().tx_datagrams.get() + this->io(1).counters().tx_datagrams.get() <
               total &&
           Clock::now() < end) {
      for (unsigned w = 0; w < 2; ++w) {
        const uint32_t n = this->io(w).poll(items, 8, 0);
        for (uint32_t k = 0; k < n; ++k) this->echo(w, items[k]);
        this->io(w).flush();
      }
    }
    EXPECT_EQ(udp_recv(peers.back()), msg);
    if (this->io(0).counters().rx_datagrams.get() && this->io(1).counters().rx_datagrams.get())
      break;
  }
  EXPECT_GT(this->io(0).counters().rx_datagrams.get(), 0u);
  EXPECT_GT(this->io(1).counters().rx_datagrams.get(), 0u);
}

// ---- TCP -----------------------------------------------------------------------------------

TYPED_TEST_P(BackendConformance, TcpAcceptDataAndPeerClose) {
  this->open(this->small_config(), {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  ConnId conn = kNoConn;
  std::string got;
  bool closed = false;
  CloseReason why = CloseReason::none;
  auto on = [&](const RxItem& it) {
    switch (it.kind) {
      case RxKind::stream_open:
        EXPECT_EQ(conn, kNoConn);
        EXPECT_EQ(it.sock, 0);
        EXPECT_EQ(it.peer, local_of(peer.fd));
        conn = it.conn;
        break;
      case RxKind::stream_data:
        EXPECT_EQ(it.conn, conn);
        got.append(reinterpret_cast<const char*>(it.data), it.len);
        this->echo(0, it);
        break;
      case RxKind::stream_closed:
        EXPECT_EQ(it.conn, conn);
        closed = true;
        why = it.reason;
        break;
      default:
        ADD_FAILURE() << "unexpected item";
    }
  };
  const std::string hello = "hello, corewire";
  ASSERT_TRUE(send_all(peer, {hello.begin(), hello.end()}));
  ASSERT_TRUE(this->pump(0, on, [&] { return got.size() >= hello.size(); }));
  EXPECT_EQ(got, hello);
  auto back = recv_n(peer, hello.size());
  EXPECT_EQ(std::string(back.begin(), back.end()), hello);
  peer.reset();
  ASSERT_TRUE(this->pump(0, on, [&] { return closed; }));
  EXPECT_EQ(why, CloseReason::peer);
  const IoCounters& c = this->io().counters();
  EXPECT_EQ(c.conns_accepted.get(), 1u);
  EXPECT_EQ(c.conns_closed.get(), 1u);
  EXPECT_EQ(c.conns_open.get(), 0u);
  EXPECT_EQ(c.rx_stream_bytes.get(), hello.size());
  EXPECT_EQ(c.tx_stream_bytes.get(), hello.size());
  // The handle is stale now: refused, nothing breaks.
  EXPECT_EQ(this->io().stream_reserve(conn, 10), nullptr);
  this->io().close(conn);
}

TYPED_TEST_P(BackendConformance, PeerResetClosesWithReasonPeer) {
  this->open(this->small_config(), {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  ConnId conn = kNoConn;
  CloseReason why = CloseReason::none;
  auto on = [&](const RxItem& it) {
    if (it.kind == RxKind::stream_open) conn = it.conn;
    if (it.kind == RxKind::stream_closed) why = it.reason;
  };
  ASSERT_TRUE(this->pump(0, on, [&] { return conn != kNoConn; }));
  linger lg{1, 0};  // close() sends RST
  setsockopt(peer.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  peer.reset();
  ASSERT_TRUE(this->pump(0, on, [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::peer);
  EXPECT_EQ(this->io().counters().conns_open.get(), 0u);
}

TYPED_TEST_P(BackendConformance, LargeOutputReachesASlowReaderIntact) {
  IoConfig cfg = this->small_config();
  constexpr size_t kTotal = 8u << 20;  // far beyond the kernel socket buffers
  cfg.conn_out_limit = kTotal + 1;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  int small = 64 * 1024;
  setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::atomic<bool> reader_done{false};
  size_t mismatches = 0, received = 0;
  std::thread reader([&] {
    std::vector<uint8_t> b(16 * 1024);
    while (received < kTotal) {
      const ssize_t r = ::recv(peer.fd, b.data(), b.size(), 0);
      if (r <= 0) break;
      for (ssize_t i = 0; i < r; ++i)
        mismatches += b[size_t(i)] != pattern(9, received + size_t(i));
      received += size_t(r);
      if ((received & 0xFFFFF) < size_t(r))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    reader_done = true;
  });
  ConnId conn = kNoConn;
  bool queued = false;
  const bool ok = this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_open) conn = it.conn;
        if (it.kind == RxKind::stream_closed) ADD_FAILURE() << "closed: " << int(it.reason);
        if (conn != kNoConn && !queued) {
          // Odd piece sizes: chunk boundaries never line up with the kernel's partial writes.
          EXPECT_TRUE(this->queue_stream(0, conn, 9, 0, kTotal, 65521));
          queued = true;
        }
      },
      [&] { return reader_done.load(); });
  reader.join();
  EXPECT_TRUE(ok);
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(this->io().counters().tx_stream_bytes.get(), kTotal);
}

TYPED_TEST_P(BackendConformance, PeerThatNeverReadsIsClosedAtTheOutputLimit) {
  IoConfig cfg = this->small_config();
  cfg.conn_out_limit = 256 * 1024;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  ConnId conn = kNoConn;
  CloseReason why = CloseReason::none;
  size_t queued = 0;
  bool refused = false;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_open) conn = it.conn;
        if (it.kind == RxKind::stream_closed) why = it.reason;
      },
      [&] {
        // Each loop queues 64 KiB more until the backend refuses (bounded: 256 MiB).
        if (conn != kNoConn && !refused && queued < (256u << 20)) {
          refused = !this->queue_stream(0, conn, 5, queued, 64 * 1024, 64 * 1024);
          if (!refused) queued += 64 * 1024;
        }
        return why != CloseReason::none;
      }));
  EXPECT_TRUE(refused);
  EXPECT_EQ(why, CloseReason::overflow);
  EXPECT_EQ(this->io().counters().conns_overflow.get(), 1u);
  EXPECT_EQ(this->io().counters().conns_open.get(), 0u);
  EXPECT_EQ(this->io().stream_reserve(conn, 1), nullptr);
}

TYPED_TEST_P(BackendConformance, CloseSendsQueuedOutputFirst) {
  this->open(this->small_config(), {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  constexpr size_t kTotal = 1u << 20;
  ConnId conn = kNoConn;
  CloseReason why = CloseReason::none;
  std::vector<uint8_t> got;
  std::thread reader([&] {
    got = recv_n(peer, kTotal);
    EXPECT_EQ(recv_eof(peer), 0) << "orderly EOF after the data";
  });
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_open) {
          conn = it.conn;
          EXPECT_TRUE(this->queue_stream(0, conn, 4, 0, kTotal, 4000));
          this->io().close(conn);
          EXPECT_EQ(this->io().stream_reserve(conn, 1), nullptr) << "closing: no more output";
        }
        if (it.kind == RxKind::stream_closed) why = it.reason;
      },
      [&] { return why != CloseReason::none; }));
  reader.join();
  EXPECT_EQ(why, CloseReason::local);
  EXPECT_EQ(got, payload(4, kTotal));
}

TYPED_TEST_P(BackendConformance, HalfClosedPeerStillGetsItsReply) {
  this->open(this->small_config(), {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  const std::string req = "request then FIN";
  ASSERT_TRUE(send_all(peer, {req.begin(), req.end()}));
  ::shutdown(peer.fd, SHUT_WR);
  CloseReason why = CloseReason::none;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        this->echo(0, it);
        if (it.kind == RxKind::stream_closed) why = it.reason;
      },
      [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::peer);
  auto back = recv_n(peer, req.size());
  EXPECT_EQ(std::string(back.begin(), back.end()), req);
  EXPECT_EQ(recv_eof(peer), 0);
}

TYPED_TEST_P(BackendConformance, IdleConnectionIsClosed) {
  IoConfig cfg = this->small_config();
  cfg.idle_timeout_ms = 100;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  Sock idle = tcp_peer(this->bound(0));
  ASSERT_GE(idle.fd, 0);
  CloseReason why = CloseReason::none;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_closed) why = it.reason;
      },
      [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::idle);
  EXPECT_EQ(this->io().counters().conns_idle.get(), 1u);
  EXPECT_LE(recv_eof(idle), 0) << "the peer sees the connection end";
}

TYPED_TEST_P(BackendConformance, ClientConnectSucceedsOrFailsWithConnectFailed) {
  // Socket 0 listens; socket 1 is this worker's TCP client group.
  this->open(this->small_config(),
             {{Transport::tcp, loopback(), true}, {Transport::tcp, loopback(), false}});
  const ConnId c = this->io().connect(1, this->bound(0));
  ASSERT_NE(c, kNoConn);
  ConnId accepted = kNoConn;
  bool client_open = false;
  std::string at_server, at_client;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_open && it.sock == 1) {
          EXPECT_EQ(it.conn, c);
          EXPECT_EQ(it.peer, this->bound(0));
          client_open = true;
          // Talk first from the client side.
          uint8_t* p = this->io().stream_reserve(c, 4);
          ASSERT_NE(p, nullptr);
          std::memcpy(p, "ping", 4);
          this->io().stream_commit(c, 4);
        } else if (it.kind == RxKind::stream_open && it.sock == 0) {
          accepted = it.conn;
        } else if (it.kind == RxKind::stream_data && it.conn == accepted) {
          at_server.append(reinterpret_cast<const char*>(it.data), it.len);
          this->echo(0, it);
        } else if (it.kind == RxKind::stream_data && it.conn == c) {
          at_client.append(reinterpret_cast<const char*>(it.data), it.len);
        } else {
          ADD_FAILURE() << "unexpected item kind " << int(it.kind) << " reason " << int(it.reason);
        }
      },
      [&] { return at_client.size() >= 4; }));
  EXPECT_TRUE(client_open);
  EXPECT_NE(accepted, c);
  EXPECT_EQ(at_server, "ping");
  EXPECT_EQ(at_client, "ping");
  EXPECT_EQ(this->io().counters().conns_connected.get(), 1u);
  EXPECT_EQ(this->io().counters().conns_accepted.get(), 1u);

  const Endpoint dead = dead_port();
  const ConnId f = this->io().connect(1, dead);
  ASSERT_NE(f, kNoConn) << "refusal is reported as stream_closed(connect_failed)";
  CloseReason why = CloseReason::none;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.conn == f) {
          EXPECT_EQ(it.kind, RxKind::stream_closed);
          why = it.reason;
        }
      },
      [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::connect_failed);
  EXPECT_EQ(this->io().connect(0, dead), kNoConn) << "socket 0 is not a client group";
}

TYPED_TEST_P(BackendConformance, MaxConnsRejectsAndCounts) {
  IoConfig cfg = this->small_config();
  cfg.max_conns = 2;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  std::vector<Sock> peers;
  for (int i = 0; i < 3; ++i) peers.push_back(tcp_peer(this->bound(0)));
  uint32_t opened = 0;
  ASSERT_TRUE(this->pump(
      0, [&](const RxItem& it) { opened += it.kind == RxKind::stream_open; },
      [&] { return this->io().counters().conns_rejected.get() >= 1; }));
  EXPECT_EQ(opened, 2u);
  EXPECT_EQ(this->io().counters().conns_open.get(), 2u);
  EXPECT_EQ(this->io().counters().conns_rejected.get(), 1u);
  // The rejected peer (whichever it was) sees its connection end; the others stay usable.
  int ended = 0;
  for (auto& p : peers) {
    set_timeout(p.fd, 200);
    uint8_t b;
    const ssize_t r = ::recv(p.fd, &b, 1, 0);
    ended += r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  EXPECT_EQ(ended, 1);
}

TYPED_TEST_P(BackendConformance, WakeReturnsABlockedPollFromAnotherThread) {
  this->open(this->small_config(), {{Transport::udp, loopback(), true}});
  std::atomic<bool> polling{false};
  std::thread waker([&] {
    while (!polling.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    this->io().wake();
  });
  RxItem items[4];
  polling = true;
  // Blocks for up to 30 s unless woken; the wakeups counter says which happened.
  const uint32_t n = this->io().poll(items, 4, 30'000'000'000);
  waker.join();
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(this->io().counters().wakeups.get(), 1u);
  // The wake was consumed: a later nonblocking poll does not count another.
  EXPECT_EQ(this->io().poll(items, 4, 0), 0u);
  EXPECT_EQ(this->io().counters().wakeups.get(), 1u);
}

TYPED_TEST_P(BackendConformance, RxDataStaysValidUntilTheNextPoll) {
  IoConfig cfg = this->small_config();
  cfg.rx_buffer_size = 256;  // half the datagrams take the large path
  this->open(cfg, {{Transport::udp, loopback(), true}, {Transport::tcp, loopback(), true}});
  Sock up = udp_peer();
  Sock tp = tcp_peer(this->bound(1));
  ASSERT_GE(tp.fd, 0);
  std::map<uint32_t, std::vector<uint8_t>> want;
  // More than one receive batch (32 is typical), so a poll fills several batches.
  for (uint32_t i = 0; i < 72; ++i) {
    want[i] = payload(i, i % 2 ? 100 + i : 1000 + 13 * i);
    want[i][0] = uint8_t(i);
    ASSERT_TRUE(udp_send(up, this->bound(0), want[i]));
  }
  const auto stream = payload(77, 5000);
  ASSERT_TRUE(send_all(tp, stream));
  // Every item of a poll must still hold its bytes after all of that poll's items were
  // seen (and after more input arrived), i.e. no item's buffer is reused within a poll.
  std::vector<uint8_t> got_stream;
  size_t datagrams = 0, multi = 0;
  RxItem items[64];
  const auto end = Clock::now() + kDeadline;
  while ((datagrams < want.size() || got_stream.size() < stream.size()) && Clock::now() < end) {
    const uint32_t n = this->io().poll(items, 64, kPollNs);
    multi += n > 1;
    ASSERT_TRUE(udp_send(up, this->bound(0), payload(999, 2000)));  // arrives meanwhile
    for (uint32_t k = 0; k < n; ++k) {
      const RxItem& it = items[k];
      if (it.kind == RxKind::datagram && it.len != 2000) {
        const auto& w = want.at(it.data[0]);
        ASSERT_EQ(std::vector<uint8_t>(it.data, it.data + it.len), w);
        ++datagrams;
      } else if (it.kind == RxKind::stream_data) {
        for (uint32_t b = 0; b < it.len; ++b)
          ASSERT_EQ(it.data[b], stream[got_stream.size() + b]) << "stream byte " << b;
        got_stream.insert(got_stream.end(), it.data, it.data + it.len);
      }
    }
  }
  EXPECT_EQ(datagrams, want.size());
  EXPECT_EQ(got_stream, stream);
  EXPECT_GT(multi, 0u);
}

TYPED_TEST_P(BackendConformance, ManyConnectionsAreServed) {
  constexpr int kConns = 1000;
  IoConfig cfg = this->small_config();
  cfg.max_conns = kConns + 8;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  std::vector<Sock> peers;
  peers.reserve(kConns);
  for (int i = 0; i < kConns; ++i) {
    peers.push_back(tcp_peer(this->bound(0)));
    ASSERT_GE(peers.back().fd, 0) << i;
    uint32_t v = uint32_t(i);
    ASSERT_EQ(::send(peers.back().fd, &v, 4, 0), 4);
    if (i % 64 == 63) {  // keep the accept queue short: serve as we go
      RxItem items[64];
      for (int k = 0; k < 4; ++k) {
        const uint32_t n = this->io().poll(items, 64, 0);
        for (uint32_t j = 0; j < n; ++j) this->echo(0, items[j]);
        this->io().flush();
      }
    }
  }
  ASSERT_TRUE(this->pump(
      0, [&](const RxItem& it) { this->echo(0, it); },
      [&] { return this->io().counters().tx_stream_bytes.get() == 4u * kConns; }));
  EXPECT_EQ(this->io().counters().conns_open.get(), uint64_t(kConns));
  for (int i = 0; i < kConns; ++i) {
    uint32_t v = ~0u;
    ASSERT_EQ(::recv(peers[size_t(i)].fd, &v, 4, MSG_WAITALL), 4) << i;
    EXPECT_EQ(v, uint32_t(i));
  }
}

TYPED_TEST_P(BackendConformance, TeardownClosesEveryDescriptor) {
  const int before = open_fds();
  Sock blocked_reader, open_peer;
  IoConfig cfg = this->small_config();
  cfg.workers = 2;
  this->open(cfg, {{Transport::udp, loopback(), true},
                   {Transport::tcp, loopback(), true},
                   {Transport::tcp, loopback(), false}});
  // Leave connections in every state (open; draining with output blocked; a client), and
  // unsent datagrams, then destroy the workers and the backend.
  open_peer = tcp_peer(this->bound(1));
  blocked_reader = tcp_peer(this->bound(1));
  const ConnId c = this->io(0).connect(2, this->bound(1));
  EXPECT_NE(c, kNoConn);
  uint32_t opened = 0;
  RxItem items[16];
  const auto end = Clock::now() + kDeadline;
  while (opened < 3 && Clock::now() < end) {
    for (unsigned w = 0; w < 2; ++w) {
      const uint32_t n = this->io(w).poll(items, 16, 0);
      for (uint32_t k = 0; k < n; ++k) {
        if (items[k].kind != RxKind::stream_open || items[k].sock != 1) continue;
        if (++opened == 1) {
          EXPECT_TRUE(this->queue_stream(w, items[k].conn, 1, 0, 3u << 20, 60000));
          this->io(w).close(items[k].conn);
        }
      }
      this->io(w).flush();
    }
  }
  EXPECT_EQ(opened, 3u);
  uint8_t* p = this->io(0).dgram_reserve(0, loopback(9), 10);
  ASSERT_NE(p, nullptr);
  this->io(0).dgram_commit(10);
  const int during = open_fds();
  this->workers_.clear();
  this->backend_.reset();
  EXPECT_GT(during, before + 8);
  EXPECT_EQ(open_fds(), before + 2) << "only the two peers' sockets are left";
}

// Drain: after stop_accepting() on every worker of a shared port, a connect is refused,
// while a connection accepted before keeps being served, and so does UDP.
TYPED_TEST_P(BackendConformance, StopAcceptingRefusesConnectsAndServesOpenConnections) {
  IoConfig cfg = this->small_config();
  cfg.workers = 2;
  this->open(cfg, {{Transport::tcp, loopback(), true}, {Transport::udp, loopback(), true}});
  std::vector<RxItem> items(64);
  unsigned owner = 0;
  ConnId conn = kNoConn;
  uint32_t late_opens = 0;
  // One round: poll and flush both workers; echo data; note connections opened.
  auto round = [&] {
    for (unsigned w = 0; w < 2; ++w) {
      const uint32_t n = this->io(w).poll(items.data(), 64, 0);
      for (uint32_t i = 0; i < n; ++i) {
        if (items[i].kind == RxKind::stream_open && conn == kNoConn) {
          conn = items[i].conn;
          owner = w;
        } else if (items[i].kind == RxKind::stream_open) {
          ++late_opens;
        }
        this->echo(w, items[i]);
      }
      this->io(w).flush();
    }
  };
  Sock open_peer = tcp_peer(this->bound(0));
  ASSERT_GE(open_peer.fd, 0);
  auto end = Clock::now() + kDeadline;
  while (conn == kNoConn && Clock::now() < end) round();
  ASSERT_NE(conn, kNoConn);

  for (unsigned w = 0; w < 2; ++w) this->io(w).stop_accepting();
  this->io(0).stop_accepting();  // idempotent
  // The listeners go away (io_uring: once the accept's cancellation is submitted and
  // completes); until then a connect may still land in a dying backlog, which the kernel
  // resets. Wait (bounded) for the refusal.
  bool refused = false;
  end = Clock::now() + kDeadline;
  while (!refused && Clock::now() < end) {
    round();
    Sock late = tcp_peer(this->bound(0));
    refused = late.fd < 0 && errno == ECONNREFUSED;
  }
  EXPECT_TRUE(refused) << "connect after stop_accepting is refused";
  for (int i = 0; i < 20; ++i) round();
  EXPECT_EQ(late_opens, 0u) << "no connection is opened after stop_accepting";

  // The open connection is still served...
  const auto msg = payload(3, 1000);
  ASSERT_TRUE(send_all(open_peer, msg));
  std::vector<uint8_t> back;
  std::thread reader([&] { back = recv_n(open_peer, msg.size()); });
  end = Clock::now() + kDeadline;
  while (this->io(owner).counters().tx_stream_bytes.get() < msg.size() && Clock::now() < end)
    round();
  reader.join();
  EXPECT_EQ(back, msg);
  // ... and so is UDP.
  Sock u = udp_peer();
  const auto d = payload(4, 100);
  ASSERT_TRUE(udp_send(u, this->bound(1), d));
  end = Clock::now() + kDeadline;
  while (this->io(0).counters().tx_datagrams.get() + this->io(1).counters().tx_datagrams.get() <
             1 &&
         Clock::now() < end)
    round();
  EXPECT_EQ(udp_recv(u), d);
  EXPECT_EQ(this->io(owner).counters().conns_open.get(), 1u);
}

// ---- stream flow control and the shared connection life cycle -----------------------------

// Pause stops delivery (bytes the peer sends meanwhile wait); output still goes out; resume
// hands out stream_resumed first, then every byte, in order, none lost.
TYPED_TEST_P(BackendConformance, PauseHoldsInputAndResumeDeliversAllOfIt) {
  this->open(this->small_config(), {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  ConnId conn = kNoConn;
  std::vector<uint8_t> got;
  auto on = [&](const RxItem& it) {
    if (it.kind == RxKind::stream_open) conn = it.conn;
    if (it.kind == RxKind::stream_data) got.insert(got.end(), it.data, it.data + it.len);
  };
  const auto first = payload(21, 1000);
  ASSERT_TRUE(send_all(peer, first));
  ASSERT_TRUE(this->pump(0, on, [&] { return got.size() >= first.size(); }));
  this->io().pause(conn);
  this->io().pause(conn);  // idempotent
  // While paused: the peer's next bytes (more than one read's worth) are not delivered, and
  // a reply still reaches the peer.
  constexpr size_t kMore = 300 * 1024;
  std::thread sender([&] { send_all(peer, payload(22, kMore)); });
  ASSERT_TRUE(this->queue_stream(0, conn, 23, 0, 5000, 5000));
  this->io().flush();
  const auto reply = recv_n(peer, 5000);
  EXPECT_EQ(reply.size(), 5000u);
  bool resumed_seen = false;
  size_t data_while_paused = 0;
  for (int i = 0; i < 50; ++i) {  // ~100 ms of polls
    std::vector<RxItem> items(64);
    const uint32_t n = this->io().poll(items.data(), 64, kPollNs);
    for (uint32_t j = 0; j < n; ++j) {
      data_while_paused += items[j].kind == RxKind::stream_data;
      resumed_seen |= items[j].kind == RxKind::stream_resumed;
      EXPECT_NE(items[j].kind, RxKind::stream_closed);
    }
    this->io().flush();
  }
  EXPECT_EQ(data_while_paused, 0u);
  EXPECT_FALSE(resumed_seen);
  EXPECT_EQ(this->io().counters().conns_open.get(), 1u);
  // Resume: stream_resumed precedes the held bytes; everything arrives intact.
  this->io().resume(conn);
  got.clear();
  bool data_before_resumed = false;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.kind == RxKind::stream_resumed) {
          EXPECT_EQ(it.conn, conn);
          EXPECT_FALSE(resumed_seen) << "one stream_resumed per resume";
          resumed_seen = true;
        }
        if (it.kind == RxKind::stream_data) {
          data_before_resumed |= !resumed_seen;
          got.insert(got.end(), it.data, it.data + it.len);
        }
      },
      [&] { return got.size() >= kMore; }));
  sender.join();
  EXPECT_FALSE(data_before_resumed);
  EXPECT_EQ(got, payload(22, kMore));
  this->io().resume(conn);  // not paused: nothing happens
  this->io().resume(kNoConn);
  this->io().pause(kNoConn);
}

// A peer that does not read: queued() reports the backlog; stream_writable comes once, after
// notify_writable(), when the reader caught up below conn_low_water -- not before.
TYPED_TEST_P(BackendConformance, QueuedAndWritableFollowASlowReader) {
  IoConfig cfg = this->small_config();
  constexpr size_t kTotal = 12u << 20;  // beyond the kernel's send and receive buffers
  cfg.conn_out_limit = uint32_t(kTotal) + 1;
  cfg.conn_low_water = 64 * 1024;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  Sock peer = tcp_peer(this->bound(0));
  ASSERT_GE(peer.fd, 0);
  int small = 64 * 1024;  // a fixed window: the kernel cannot absorb the whole backlog
  setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ConnId conn = kNoConn;
  uint32_t writable = 0;
  auto on = [&](const RxItem& it) {
    if (it.kind == RxKind::stream_open) conn = it.conn;
    if (it.kind == RxKind::stream_writable) {
      EXPECT_EQ(it.conn, conn);
      ++writable;
    }
    if (it.kind == RxKind::stream_closed) ADD_FAILURE() << "closed: " << int(it.reason);
  };
  ASSERT_TRUE(this->pump(0, on, [&] { return conn != kNoConn; }));
  EXPECT_EQ(this->io().queued(conn), 0u);
  ASSERT_TRUE(this->queue_stream(0, conn, 31, 0, kTotal, 65521));
  EXPECT_EQ(this->io().queued(conn), kTotal) << "committed, nothing sent yet";
  this->io().notify_writable(conn);
  int polls = 0;
  ASSERT_TRUE(this->pump(0, on, [&] { return ++polls > 50; }));  // ~100 ms, peer not reading
  const uint32_t stuck = this->io().queued(conn);
  EXPECT_GT(stuck, cfg.conn_low_water);
  EXPECT_LT(stuck, kTotal) << "the kernel took some";
  EXPECT_EQ(writable, 0u);
  this->io().notify_writable(conn);  // asking again changes nothing
  std::atomic<size_t> received{0};
  std::thread reader([&] {
    std::vector<uint8_t> b(64 * 1024);
    while (received < kTotal) {
      const ssize_t r = ::recv(peer.fd, b.data(), b.size(), 0);
      if (r <= 0) break;
      received += size_t(r);
    }
  });
  ASSERT_TRUE(this->pump(0, on, [&] { return writable > 0 && received == kTotal; }));
  reader.join();
  EXPECT_EQ(writable, 1u);
  EXPECT_EQ(this->io().queued(conn), 0u);
  // Already under the mark: owed at once (next poll).
  this->io().notify_writable(conn);
  ASSERT_TRUE(this->pump(0, on, [&] { return writable == 2; }));
  EXPECT_EQ(this->io().queued(kNoConn), 0u);
}

// Output memory per worker is bounded: a reservation past worker_out_limit fails, is
// counted, and closes its connection (error); other connections are unaffected.
TYPED_TEST_P(BackendConformance, OutputMemoryExhaustionClosesTheConnection) {
  IoConfig cfg = this->small_config();
  cfg.worker_out_limit = 64 * 1024;
  this->open(cfg, {{Transport::tcp, loopback(), true}});
  Sock a = tcp_peer(this->bound(0));
  Sock b = tcp_peer(this->bound(0));
  std::vector<ConnId> conns;
  CloseReason why = CloseReason::none;
  auto on = [&](const RxItem& it) {
    if (it.kind == RxKind::stream_open) conns.push_back(it.conn);
    if (it.kind == RxKind::stream_closed) why = it.reason;
  };
  ASSERT_TRUE(this->pump(0, on, [&] { return conns.size() == 2; }));
  // Committed but not flushed, so nothing is sent: the first reservation fits, the second
  // would pass the bound.
  ASSERT_TRUE(this->queue_stream(0, conns[0], 41, 0, 40 * 1024, 40 * 1024));
  EXPECT_EQ(this->io().stream_reserve(conns[0], 40 * 1024), nullptr);
  EXPECT_EQ(this->io().counters().tx_no_buffer.get(), 1u);
  EXPECT_EQ(this->io().stream_reserve(conns[0], 1), nullptr) << "closing: takes nothing";
  ASSERT_TRUE(this->pump(0, on, [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::error);
  EXPECT_EQ(this->io().counters().conns_overflow.get(), 0u);
  // The memory came back: the other connection can use it.
  ASSERT_TRUE(this->queue_stream(0, conns[1], 42, 0, 40 * 1024, 40 * 1024));
  this->io().flush();
  EXPECT_EQ(recv_n(b, 40 * 1024), payload(42, 40 * 1024));
}

// connect() without a descriptor to spare fails at once and counts conns_rejected, like a
// connection beyond max_conns; one the kernel refuses is stream_closed(connect_failed),
// counted as a close and nothing else.
TYPED_TEST_P(BackendConformance, ConnectFailuresAreCountedAlike) {
  this->open(this->small_config(),
             {{Transport::tcp, loopback(), true}, {Transport::tcp, loopback(), false}});
  const Endpoint dead = dead_port();
  const ConnId f = this->io().connect(1, dead);
  ASSERT_NE(f, kNoConn);
  CloseReason why = CloseReason::none;
  ASSERT_TRUE(this->pump(
      0,
      [&](const RxItem& it) {
        if (it.conn == f) why = it.reason;
      },
      [&] { return why != CloseReason::none; }));
  EXPECT_EQ(why, CloseReason::connect_failed);
  const IoCounters& k = this->io().counters();
  EXPECT_EQ(k.conns_closed.get(), 1u);
  EXPECT_EQ(k.conns_rejected.get(), 0u);
  EXPECT_EQ(k.conns_connected.get(), 0u);
  EXPECT_EQ(k.conns_open.get(), 0u);
  // No descriptor left: refused at once.
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit tight = old;
  const int lowest_free = ::dup(0);  // every descriptor from here on is refused
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  tight.rlim_cur = rlim_t(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  const ConnId g = this->io().connect(1, this->bound(0));
  setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_EQ(g, kNoConn);
  EXPECT_EQ(k.conns_rejected.get(), 1u);
  EXPECT_EQ(k.conns_open.get(), 0u);
}

REGISTER_TYPED_TEST_SUITE_P(
    BackendConformance, ManyConnectionsAreServed, TeardownClosesEveryDescriptor,
    UdpEchoRoundTripAllSizes, UdpBurstIsDeliveredCompletelyInSmallPolls,
    DatagramAboveMaxIsDroppedAndCounted, TxPoolExhaustionIsCountedAndTheRestIsSent,
    TwoWorkersShareAServerPort, TcpAcceptDataAndPeerClose, PeerResetClosesWithReasonPeer,
    LargeOutputReachesASlowReaderIntact, PeerThatNeverReadsIsClosedAtTheOutputLimit,
    CloseSendsQueuedOutputFirst, HalfClosedPeerStillGetsItsReply, IdleConnectionIsClosed,
    ClientConnectSucceedsOrFailsWithConnectFailed, MaxConnsRejectsAndCounts,
    WakeReturnsABlockedPollFromAnotherThread, RxDataStaysValidUntilTheNextPoll,
    StopAcceptingRefusesConnectsAndServesOpenConnections, GsoTrainsKeepEveryDatagramWholeAndInOrder,
    PauseHoldsInputAndResumeDeliversAllOfIt, QueuedAndWritableFollowASlowReader,
    OutputMemoryExhaustionClosesTheConnection, ConnectFailuresAreCountedAlike);

}  // namespace cw::dp::conformance
