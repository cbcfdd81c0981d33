// UDP GSO refusal on the kernel backends (epoll, io_uring): a train the kernel refuses is
// resent datagram by datagram, and GSO then stays off for that worker
// (dataplane/kernel/udp_gso.hh, kernel::gso_refused).
//
// Two ways to make the kernel refuse a UDP_SEGMENT send, one test each:
//   * SegmentAboveTheMtu: a segment (gso_size + IP/UDP headers) above the device MTU. The
//     test runs in a network namespace of its own (unshare(CLONE_NEWNET) on the test
//     thread, anonymous: it dies with its last socket, nothing to clean up by name) whose
//     `lo` is up with a kMtu-byte MTU. Linux answers EINVAL (before 6.x) or EMSGSIZE.
//     Needs CAP_SYS_ADMIN + CAP_NET_ADMIN: skipped otherwise.
//   * NoChecksumSocket: the server socket has SO_NO_CHECK (UDP checksums off), with which
//     the kernel refuses every GSO send with EINVAL. Runs unprivileged, in the test's own
//     namespace.
//
// Each test first shows GSO working (a burst leaves as one GSO send), then makes the
// kernel refuse and sends bursts of >= 2 datagrams to two peers in one flush: every datagram
// must arrive whole and in order and tx_gso_sends must not move; then, with the cause
// gone (small segments, checksums back on), later flushes still deliver everything and
// tx_gso_sends still does not move (GSO stayed off). No assertion is about timing; every
// wait is bounded (conformance.hh kDeadline, the peers' receive timeout).
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cw_build_config.hh"
#include "dataplane/epoll/epoll_io.hh"
#include "tests/dataplane/conformance.hh"
#if CW_HAVE_IO_URING
#include "dataplane/uring/uring_io.hh"
#endif

namespace cw::dp::conformance {
namespace {

// The namespace's loopback MTU, and datagram sizes around it: kFits + headers fits it (a
// GSO segment of that size is taken), kAbove + headers does not (a train of them is
// refused) but is still small enough to travel in a train (kGsoMaxSegBytes), and as a
// plain datagram the kernel fragments it.
constexpr int kMtu = 1000;
constexpr uint32_t kHeaders = 20 + 8;  // IPv4 + UDP
constexpr uint32_t kFits = 400;
constexpr uint32_t kAbove = 1200;
static_assert(kFits + kHeaders <= uint32_t(kMtu));
static_assert(kAbove + kHeaders > uint32_t(kMtu) && kAbove <= kernel::kGsoMaxSegBytes);
constexpr uint32_t kBurst = 8;         // datagrams to the first peer per burst
constexpr uint32_t kOtherBurst = 4;    // to the second peer, interleaved
constexpr uint32_t kLaterFlushes = 3;  // bursts after the refusal

// One flush worth of datagrams: sizes[i] bytes of payload(seeds[i]) to peer dest[i].
struct Burst {
  std::vector<uint32_t> dest, sizes, seeds;
  void add(uint32_t d, uint32_t size, uint32_t seed) {
    dest.push_back(d);
    sizes.push_back(size);
    seeds.push_back(seed);
  }
};

// n datagrams of `size` to peer 0 and m to peer 1, interleaved (two trains in one flush).
Burst two_peer_burst(uint32_t n, uint32_t m, uint32_t size, uint32_t seed) {
  Burst b;
  for (uint32_t i = 0; i < n || i < m; ++i) {
    if (i < n) b.add(0, size, seed + i);
    if (i < m) b.add(1, size, seed + 1000 + i);
  }
  return b;
}

// This thread's network namespace swapped for a new one with `lo` up at kMtu, and back.
class PrivateNetns {
 public:
  // Empty when entered; else why not (the caller skips).
  std::string enter() {
    orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig_ < 0) return std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    if (::unshare(CLONE_NEWNET) != 0) {
      const std::string err = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
      ::close(std::exchange(orig_, -1));  // still in the original namespace
      return err;
    }
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq r{};
    std::strncpy(r.ifr_name, "lo", IFNAMSIZ - 1);
    std::string err;
    if (fd < 0) {
      err = std::string("socket: ") + std::strerror(errno);
    } else if (r.ifr_mtu = kMtu; ::ioctl(fd, SIOCSIFMTU, &r) != 0) {
      err = std::string("SIOCSIFMTU lo: ") + std::strerror(errno);
    } else if (::ioctl(fd, SIOCGIFFLAGS, &r) != 0) {
      err = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
    } else if (r.ifr_flags |= IFF_UP; ::ioctl(fd, SIOCSIFFLAGS, &r) != 0) {
      err = std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
    } else if (::ioctl(fd, SIOCGIFMTU, &r) != 0 || r.ifr_mtu != kMtu) {
      err = "lo did not take the MTU";
    }
    if (fd >= 0) ::close(fd);
    if (!err.empty()) leave();
    return err;
  }
  // Back to the original namespace (the new one goes once its last socket is closed).
  void leave() {
    if (orig_ < 0) return;
    const int r = ::setns(orig_, CLONE_NEWNET);
    const int e = errno;
    struct stat want;  // filled by fstat/stat before use (&& order)
    struct stat now;
    const bool same = ::fstat(orig_, &want) == 0 && ::stat("/proc/thread-self/ns/net", &now) == 0 &&
                      want.st_ino == now.st_ino && want.st_dev == now.st_dev;
    ::close(orig_);
    orig_ = -1;
    ASSERT_EQ(r, 0) << "setns back: " << std::strerror(e);
    ASSERT_TRUE(same) << "still in the private namespace";
  }
  ~PrivateNetns() { leave(); }

 private:
  int orig_ = -1;
};

template <class B>
class GsoRefusal : public BackendConformance<B> {
 protected:
  void SetUp() override {
    if constexpr (requires { B::probe(); }) {
      auto ok = B::probe();
      if (!ok) GTEST_SKIP() << "io_uring unavailable: " << ok.error().message;
    }
    if (!kernel::udp_gso_available()) GTEST_SKIP() << "the kernel has no UDP_SEGMENT";
  }
  // Sockets, rings and workers go before the namespace they were made in is left.
  void TearDown() override {
    this->workers_.clear();
    this->backend_.reset();
    peers_[0].reset();
    peers_[1].reset();
    netns_.leave();
  }

  void open_server() {
    IoConfig cfg = this->small_config();
    cfg.udp_gso = true;
    this->open(cfg, {{Transport::udp, loopback(), true}});
    peers_[0] = udp_peer();
    peers_[1] = udp_peer();
    to_[0] = local_of(peers_[0].fd);
    to_[1] = local_of(peers_[1].fd);
  }

  // Commits the burst, flushes once, and polls (flushing after each poll, as the worker
  // loop does) until every datagram's send completed; then each peer must receive its
  // datagrams whole and in commit order.
  void send_and_check(const Burst& b) {
    const IoCounters& c = this->io().counters();
    const uint64_t want = c.tx_datagrams.get() + c.tx_errors.get() + b.sizes.size();
    for (size_t i = 0; i < b.sizes.size(); ++i) {
      uint8_t* p = this->io().dgram_reserve(0, to_[b.dest[i]], b.sizes[i]);
      ASSERT_NE(p, nullptr) << "datagram " << i;
      const auto d = payload(b.seeds[i], b.sizes[i]);
      std::memcpy(p, d.data(), d.size());
      this->io().dgram_commit(b.sizes[i]);
    }
    this->io().flush();
    ASSERT_TRUE(this->pump(
        0, [](const RxItem&) {}, [&] { return c.tx_datagrams.get() + c.tx_errors.get() >= want; }))
        << "sends did not complete: tx_datagrams " << c.tx_datagrams.get();
    for (uint32_t p = 0; p < 2; ++p)
      for (size_t i = 0; i < b.sizes.size(); ++i)
        if (b.dest[i] == p) {
          ASSERT_EQ(udp_recv(peers_[p]), payload(b.seeds[i], b.sizes[i]))
              << "peer " << p << ", datagram " << i << " of the burst (" << b.sizes[i] << " bytes)";
        }
  }

  // GSO works on this path: one burst of kFits-byte datagrams leaves as one GSO send.
  void gso_works_first() {
    send_and_check(two_peer_burst(kBurst, 0, kFits, 1));
    ASSERT_EQ(this->io().counters().tx_gso_sends.get(), 1u)
        << "GSO was not used before the refusal: the refusal path would not be exercised";
  }

  // The kernel refuses: two trains (one per peer) in one flush; both resent.
  void refused_burst_is_resent(uint32_t size) {
    const IoCounters& c = this->io().counters();
    const uint64_t gso = c.tx_gso_sends.get(), sent = c.tx_datagrams.get();
    send_and_check(two_peer_burst(kBurst, kOtherBurst, size, 100));
    EXPECT_EQ(c.tx_gso_sends.get(), gso) << "a refused train was counted as a GSO send";
    EXPECT_EQ(c.tx_datagrams.get(), sent + kBurst + kOtherBurst);
    EXPECT_EQ(c.tx_errors.get(), 0u);
  }

  // Later flushes, including bursts GSO would now take again: all delivered, none as GSO.
  void gso_stays_off(const std::vector<uint32_t>& sizes) {
    const IoCounters& c = this->io().counters();
    const uint64_t gso = c.tx_gso_sends.get();
    uint32_t seed = 200;
    for (uint32_t f = 0; f < kLaterFlushes; ++f)
      for (uint32_t size : sizes) {
        SCOPED_TRACE("later flush " + std::to_string(f) + ", " + std::to_string(size) + " bytes");
        send_and_check(two_peer_burst(kBurst, kOtherBurst, size, seed));
        seed += 2000;
      }
    EXPECT_EQ(c.tx_gso_sends.get(), gso) << "GSO came back on after a refusal";
    EXPECT_EQ(c.tx_errors.get(), 0u);
  }

  // The server's UDP sockets (found by their bound address among this process's
  // descriptors: the backends do not hand out their descriptors), with SO_NO_CHECK set to v.
  void set_no_check(int v) {
    const Endpoint srv = this->bound(0);
    uint32_t found = 0;
    for (int fd = 0; fd < 4096; ++fd) {
      int type = 0;
      socklen_t l = sizeof type;
      if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_DGRAM) continue;
      if (!(local_of(fd) == srv)) continue;
      ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &v, sizeof v), 0) << std::strerror(errno);
      ++found;
    }
    ASSERT_EQ(found, 1u) << "the server's UDP socket (one worker)";
  }

  PrivateNetns netns_;
  Sock peers_[2];
  Endpoint to_[2];
};

#if CW_HAVE_IO_URING
using KernelBackends = ::testing::Types<EpollBackend, UringBackend>;
#else
using KernelBackends = ::testing::Types<EpollBackend>;
#endif
TYPED_TEST_SUITE(GsoRefusal, KernelBackends);

TYPED_TEST(GsoRefusal, SegmentAboveTheMtu) {
  if (const std::string why = this->netns_.enter(); !why.empty())
    GTEST_SKIP() << "no private network namespace with a small MTU (needs root): " << why;
  this->open_server();
  this->gso_works_first();
  if (this->HasFatalFailure()) return;
  this->refused_burst_is_resent(kAbove);
  if (this->HasFatalFailure()) return;
  // kFits trains would be taken again: they must not be (and kAbove ones must not fail).
  this->gso_stays_off({kFits, kAbove});
}

TYPED_TEST(GsoRefusal, NoChecksumSocket) {
  this->open_server();
  this->gso_works_first();
  if (this->HasFatalFailure()) return;
  this->set_no_check(1);
  if (this->HasFatalFailure()) return;
  this->refused_burst_is_resent(kFits);
  if (this->HasFatalFailure()) return;
  // Checksums back on: the kernel would take trains again; the worker must not send any.
  this->set_no_check(0);
  if (this->HasFatalFailure()) return;
  this->gso_stays_off({kFits});
}

}  // namespace
}  // namespace cw::dp::conformance
