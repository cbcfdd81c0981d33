// cw-kernel-echo: the kernel-socket reference. A single-threaded echo server over plain
// sockets that gets every trick corewire's kernel backends get, so a comparison with it
// measures corewire's framework, not a handicap of the reference:
//   UDP: recvmmsg batches; replies to one peer leave as UDP_SEGMENT (GSO) trains, one
//        sendmmsg per batch; --gro lets the kernel hand over coalesced trains (UDP_GRO).
//   TCP: epoll; every read's replies leave in one send() per connection (no per-message
//        send), the rest queued until the socket is writable again.
//   --busy-poll spins (epoll_wait with timeout 0, UDP polled directly); without it the
//   loop sleeps in epoll_wait, so its CPU per message compares with interrupt-mode servers.
//   cw-kernel-echo --udp 127.0.0.1:11111 --tcp 127.0.0.1:11111 [--core N] [--busy-poll]
//                  [--mode raw|sockperf|native] [--no-gso] [--gro]
// Prints "udp <addr>" / "tcp <addr>" once listening and, on SIGTERM/SIGINT, one JSON line of
// counters ({"udp_rx":...}).
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

constexpr unsigned kBatch = 64;           // datagrams (or GRO trains) per recvmmsg
constexpr uint32_t kBufBytes = 65536;     // bytes per UDP receive buffer (a GRO train fits)
constexpr unsigned kUdpRounds = 8;        // recvmmsg calls per readiness event at most
constexpr uint32_t kMaxConns = 65536;     // TCP connections served at once
constexpr uint32_t kConnBuf = 64 * 1024;  // bytes buffered per connection (>= 1 frame)
constexpr uint32_t kUdpTag = ~0u, kListenTag = ~0u - 1;  // epoll tags besides conn slots

struct Stats {
  uint64_t udp_rx = 0, udp_tx = 0, udp_sends = 0, udp_dropped = 0;
  uint64_t tcp_rx_bytes = 0, tcp_tx_bytes = 0, tcp_sends = 0, tcp_accepted = 0;
};

struct Udp {
  int fd = -1;
  Mode mode = Mode::raw;
  bool gso = true;
  std::vector<uint8_t> bufs = std::vector<uint8_t>(size_t(kBatch) * kBufBytes);
  std::array<mmsghdr, kBatch> in{};
  std::array<iovec, kBatch> iov_in{};
  std::array<sockaddr_in, kBatch> from{};
  alignas(cmsghdr) unsigned char ctl_in[kBatch][CMSG_SPACE(sizeof(int))];
  // Replies: one per datagram (a GRO train holds up to kMaxSegs).
  static constexpr uint32_t kMaxReplies = kBatch * kMaxSegs;
  std::vector<iovec> iov_out = std::vector<iovec>(kMaxReplies);
  std::vector<uint32_t> peer_of = std::vector<uint32_t>(kMaxReplies);
  std::vector<mmsghdr> out = std::vector<mmsghdr>(kMaxReplies);
  std::vector<unsigned char> ctl_out = std::vector<unsigned char>(kMaxReplies * kGsoCtl);

  // One batch: receive, turn every datagram into its reply in place, send the replies as
  // trains. Returns the messages received (0: nothing waiting).
  unsigned run_once(Stats& st) {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov_in[i] = {bufs.data() + size_t(i) * kBufBytes, kBufBytes};
      in[i].msg_hdr = {&from[i], sizeof from[i], &iov_in[i], 1, ctl_in[i], sizeof ctl_in[i], 0};
    }
    const int n = recvmmsg(fd, in.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return 0;
    uint32_t m = 0, got = 0;
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<uint8_t*>(iov_in[i].iov_base);
      const uint32_t len = in[i].msg_len;
      uint32_t seg = len;  // a GRO train's segment size, else the datagram
      for (cmsghdr* c = CMSG_FIRSTHDR(&in[i].msg_hdr); c; c = CMSG_NXTHDR(&in[i].msg_hdr, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int g;
          std::memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0) seg = uint32_t(g);
        }
      for (uint32_t off = 0; off < len && seg; off += seg) {
        const uint32_t l = std::min(seg, len - off);
        ++got;
        bool answer;
        if (reply_in_place(mode, p + off, l, &answer) <= 0 || !answer) continue;
        iov_out[m] = {p + off, l};
        peer_of[m++] = uint32_t(i);
      }
    }
    st.udp_rx += got;
    const uint32_t trains = make_trains(m, iov_out.data(), peer_of.data(), from.data(), out.data(),
                                        ctl_out.data(), gso);
    const uint32_t done = send_trains(fd, out.data(), trains, &st.udp_sends);
    st.udp_tx += done;
    st.udp_dropped += m - done;
    return got;
  }
};

struct Conn {
  int fd = -1;
  uint32_t len = 0;                     // request bytes buffered (framed: a partial frame)
  uint32_t pend_off = 0, pend_len = 0;  // replies not yet written (socket was full)
  std::unique_ptr<uint8_t[]> buf, pend;
};

class Tcp {
 public:
  int lfd = -1;
  Mode mode = Mode::raw;

  explicit Tcp(int ep) : ep_(ep), conns_(kMaxConns) {
    for (uint32_t i = 0; i < kMaxConns; ++i) free_.push_back(kMaxConns - 1 - i);
  }
  ~Tcp() {
    for (auto& c : conns_)
      if (c.fd >= 0) close(c.fd);
  }

  void accept_all(Stats& st) {
    while (!free_.empty()) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd < 0) return;
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const uint32_t slot = free_.back();
      free_.pop_back();
      Conn& c = conns_[slot];
      c.fd = fd;
      c.len = c.pend_off = c.pend_len = 0;
      // Uninitialized (no 128 KiB memset per accept); kept for the slot's next connection.
      if (!c.buf) c.buf.reset(new uint8_t[kConnBuf]);
      if (!c.pend) c.pend.reset(new uint8_t[kConnBuf]);
      epoll_event e{EPOLLIN, {.u32 = slot}};
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e);
      ++st.tcp_accepted;
    }
  }

  void on_event(uint32_t slot, uint32_t events, Stats& st) {
    Conn& c = conns_[slot];
    if (c.fd < 0) return;
    const bool ok = (events & EPOLLOUT) ? flush(c, slot, st) : serve(c, slot, st);
    if (!ok) {
      close(c.fd);  // also leaves the epoll set
      c.fd = -1;
      free_.push_back(slot);
    }
  }

 private:
  // One read; its replies go out in one send. False when the connection is done.
  bool serve(Conn& c, uint32_t slot, Stats& st) {
    const ssize_t r = recv(c.fd, c.buf.get() + c.len, kConnBuf - c.len, MSG_DONTWAIT);
    if (r == 0) return false;
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    st.tcp_rx_bytes += uint64_t(r);
    c.len += uint32_t(r);
    uint8_t* b = c.buf.get();
    uint32_t used = 0, w = 0;  // replies are compacted to [0, w); [used, len) is unparsed
    for (;;) {
      bool answer;
      const int64_t n = reply_in_place(mode, b + used, c.len - used, &answer);
      if (n < 0) return false;
      if (n == 0) break;
      if (answer) {
        if (w != used) std::memmove(b + w, b + used, size_t(n));
        w += uint32_t(n);
      }
      used += uint32_t(n);
    }
    uint32_t wrote = 0;
    if (w) {
      const ssize_t k = send(c.fd, b, w, MSG_DONTWAIT | MSG_NOSIGNAL);
      ++st.tcp_sends;
      if (k < 0 && errno != EAGAIN && errno != EINTR) return false;
      wrote = k > 0 ? uint32_t(k) : 0;
      st.tcp_tx_bytes += wrote;
    }
    if (wrote < w) {  // the socket is full: keep the rest and read no more until it drains
      std::memcpy(c.pend.get(), b + wrote, w - wrote);
      c.pend_off = 0;
      c.pend_len = w - wrote;
      watch(c, slot, EPOLLOUT);
    }
    std::memmove(b, b + used, c.len - used);
    c.len -= used;
    return true;
  }

  bool flush(Conn& c, uint32_t slot, Stats& st) {
    const ssize_t k =
        send(c.fd, c.pend.get() + c.pend_off, c.pend_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    ++st.tcp_sends;
    if (k < 0) return errno == EAGAIN || errno == EINTR;
    st.tcp_tx_bytes += uint64_t(k);
    c.pend_off += uint32_t(k);
    c.pend_len -= uint32_t(k);
    if (!c.pend_len) watch(c, slot, EPOLLIN);
    return true;
  }

  void watch(Conn& c, uint32_t slot, uint32_t events) {
    epoll_event e{events, {.u32 = slot}};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &e);
  }

  int ep_;
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_;
};

int fail(const std::string& what) {
  std::fprintf(stderr, "cw-kernel-echo: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{"cw-kernel-echo: kernel-socket echo reference (GSO trains, batched TCP replies)"};
  std::string udp_at, tcp_at, mode = "raw";
  int core = -1;
  bool busy = false, no_gso = false, gro = false;
  app.add_option("--udp", udp_at, "UDP address:port to echo on");
  app.add_option("--tcp", tcp_at, "TCP address:port to echo on");
  app.add_option("--core", core, "pin to this CPU");
  app.add_option("--mode", mode, "raw | sockperf | native")
      ->check(CLI::IsMember({"raw", "sockperf", "native"}));
  app.add_flag("--busy-poll", busy, "spin instead of sleeping in epoll_wait");
  app.add_flag("--no-gso", no_gso, "UDP: one datagram per sendmmsg entry (no trains)");
  app.add_flag("--gro", gro, "UDP: accept coalesced trains (UDP_GRO)");
  CLI11_PARSE(app, argc, argv);
  if (udp_at.empty() && tcp_at.empty()) {
    std::fprintf(stderr, "cw-kernel-echo: give --udp and/or --tcp\n");
    return 2;
  }
  if (!pin(core)) return fail("--core " + std::to_string(core));
  on_stop_signals();

  const int ep = epoll_create1(0);
  if (ep < 0) return fail("epoll_create1");
  auto udp = std::make_unique<Udp>();
  udp->mode = parse_mode(mode);
  udp->gso = !no_gso;
  Tcp tcp(ep);
  tcp.mode = udp->mode;
  for (auto [at, type, fd] :
       {std::tuple{&udp_at, SOCK_DGRAM, &udp->fd}, std::tuple{&tcp_at, SOCK_STREAM, &tcp.lfd}}) {
    if (at->empty()) continue;
    auto addr = dp::parse_endpoint(*at);
    if (!addr) {
      std::fprintf(stderr, "cw-kernel-echo: %s\n", addr.error().message.c_str());
      return 2;
    }
    std::string bound;
    *fd = open_socket(type, *addr, &bound);
    if (*fd < 0) return fail(*at);
    std::printf("%s %s\n", type == SOCK_DGRAM ? "udp" : "tcp", bound.c_str());
  }
  if (gro && udp->fd >= 0) {
    const int one = 1;
    if (setsockopt(udp->fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0) return fail("UDP_GRO");
  }
  std::fflush(stdout);
  if (tcp.lfd >= 0) {
    epoll_event e{EPOLLIN, {.u32 = kListenTag}};
    epoll_ctl(ep, EPOLL_CTL_ADD, tcp.lfd, &e);
  }
  // Busy-poll reads the UDP socket every loop; otherwise epoll wakes us for it.
  const bool udp_in_epoll = udp->fd >= 0 && !busy;
  if (udp_in_epoll) {
    epoll_event e{EPOLLIN, {.u32 = kUdpTag}};
    epoll_ctl(ep, EPOLL_CTL_ADD, udp->fd, &e);
  }

  Stats st;
  std::array<epoll_event, 256> ev;
  while (!g_stop) {
    if (udp->fd >= 0 && busy) udp->run_once(st);
    if (!udp_in_epoll && tcp.lfd < 0) continue;
    const int n = epoll_wait(ep, ev.data(), int(ev.size()), busy ? 0 : -1);
    for (int i = 0; i < n; ++i) {
      const uint32_t tag = ev[size_t(i)].data.u32;
      if (tag == kUdpTag) {
        for (unsigned r = 0; r < kUdpRounds && udp->run_once(st) == kBatch; ++r) {
        }
      } else if (tag == kListenTag) {
        tcp.accept_all(st);
      } else {
        tcp.on_event(tag, ev[size_t(i)].events, st);
      }
    }
  }
  std::printf(
      "{\"udp_rx\":%llu,\"udp_tx\":%llu,\"udp_sends\":%llu,\"udp_dropped\":%llu,"
      "\"tcp_rx_bytes\":%llu,\"tcp_tx_bytes\":%llu,\"tcp_sends\":%llu,\"tcp_accepted\":%llu}\n",
      (unsigned long long)st.udp_rx, (unsigned long long)st.udp_tx,
      (unsigned long long)st.udp_sends, (unsigned long long)st.udp_dropped,
      (unsigned long long)st.tcp_rx_bytes, (unsigned long long)st.tcp_tx_bytes,
      (unsigned long long)st.tcp_sends, (unsigned long long)st.tcp_accepted);
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  return cw::ref::run(argc, argv);
}
