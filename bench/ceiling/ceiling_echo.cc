// cw-ceiling-echo: the kernel's ceiling. The smallest single-threaded busy-poll echo server
// over plain sockets (UDP recvmmsg/sendmmsg batches, TCP nonblocking recv/send), so a
// measurement of corewire can be put next to "what the kernel gives with no framework".
//   cw-ceiling-echo --udp 127.0.0.1:11111 --tcp 127.0.0.1:11111 [--core N]
//                   [--mode raw|sockperf|native]
// raw: every datagram / every stream byte is sent back unchanged.
// sockperf: only messages with client|pong-request set and warm-up clear are answered, with
// the client bit cleared (app/protocol/sockperf.hh); TCP is framed by the length field.
// native: requests come back as responses (same id, service, payload); everything else is
// ignored (no error replies: this is a reference, not the server).
// Prints "udp <addr>" / "tcp <addr>" (the bound addresses) on stdout once listening.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"
#include "dataplane/io.hh"

namespace {

constexpr unsigned kBatch = 64;            // datagrams per recvmmsg/sendmmsg
constexpr uint32_t kMaxDatagram = 65536;   // bytes per UDP receive buffer
constexpr size_t kMaxConns = 256;          // TCP connections served at once
constexpr uint32_t kConnBuf = 128 * 1024;  // bytes buffered per connection (>= 1 frame)

volatile std::sig_atomic_t g_stop = 0;
enum class Mode { raw, sockperf, native };
Mode g_mode = Mode::raw;

// Framed modes: turns the message at msg (avail bytes) into its reply in place. Returns the
// message length, 0 when incomplete, -1 when it is not this protocol; *answer says whether
// the (now rewritten) message is to be sent back.
int64_t reply_in_place(uint8_t* msg, uint32_t avail, bool* answer) {
  *answer = false;
  if (g_mode == Mode::sockperf) {
    namespace sp = cw::proto::sockperf;
    const sp::Frame f = sp::parse({msg, avail});
    if (f.status != sp::Status::ok) return f.status == sp::Status::need_more ? 0 : -1;
    if ((*answer = sp::wants_reply(f.header))) sp::make_reply(msg);
    return f.frame_len;
  }
  namespace nt = cw::proto::native;
  nt::Decoded d = nt::decode({msg, avail});
  if (d.status != nt::Status::ok) return d.status == nt::Status::need_more ? 0 : -1;
  if ((*answer = d.header.kind == nt::Kind::request)) {
    d.header.kind = nt::Kind::response;
    nt::encode_header(msg, d.header);
  }
  return d.frame_len;
}

int open_socket(int type, const cw::dp::Endpoint& ep, std::string* bound) {
  const int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ep.addr_be;
  a.sin_port = ep.port_be;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (type == SOCK_STREAM && listen(fd, 1024) != 0) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  *bound = cw::dp::to_string({a.sin_addr.s_addr, a.sin_port});
  return fd;
}

// One UDP batch: receive up to kBatch datagrams, answer them with one sendmmsg.
struct Udp {
  int fd = -1;
  std::vector<uint8_t> bufs = std::vector<uint8_t>(size_t(kBatch) * kMaxDatagram);
  std::array<mmsghdr, kBatch> in{}, out{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_in, kBatch> from{};

  void run_once() {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {bufs.data() + size_t(i) * kMaxDatagram, kMaxDatagram};
      in[i].msg_hdr = {&from[i], sizeof from[i], &iov[i], 1, nullptr, 0, 0};
    }
    const int n = recvmmsg(fd, in.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    unsigned m = 0;
    for (int i = 0; i < n; ++i) {
      const uint32_t len = in[i].msg_len;
      bool answer = true;
      if (g_mode != Mode::raw &&
          reply_in_place(static_cast<uint8_t*>(iov[i].iov_base), len, &answer) <= 0)
        continue;
      if (!answer) continue;
      out[m].msg_hdr = in[i].msg_hdr;
      out[m].msg_hdr.msg_iov->iov_len = len;
      ++m;
    }
    for (unsigned sent = 0; sent < m;) {
      const int k = sendmmsg(fd, out.data() + sent, m - sent, MSG_DONTWAIT);
      if (k <= 0) break;  // socket buffer full: drop the rest, as a NIC would
      sent += unsigned(k);
    }
  }
};

// TCP: accept what is waiting, then one nonblocking recv per connection per loop.
struct Tcp {
  struct Conn {
    int fd = -1;
    uint32_t len = 0;  // bytes buffered (framed modes: a partial frame)
    std::unique_ptr<uint8_t[]> buf;
  };
  int lfd = -1;
  std::vector<Conn> conns;

  void run_once() {
    while (conns.size() < kMaxConns) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
      if (fd < 0) break;
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns.push_back({fd, 0, std::make_unique<uint8_t[]>(kConnBuf)});
    }
    for (size_t i = 0; i < conns.size();) {
      if (serve(conns[i])) {
        ++i;
      } else {
        close(conns[i].fd);
        conns[i] = std::move(conns.back());
        conns.pop_back();
      }
    }
  }
  // False when the connection is done (peer closed, error, or bad framing).
  static bool serve(Conn& c) {
    const ssize_t r = recv(c.fd, c.buf.get() + c.len, kConnBuf - c.len, MSG_DONTWAIT);
    if (r == 0) return false;
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    c.len += uint32_t(r);
    if (g_mode == Mode::raw) {
      const bool ok = send_all(c.fd, c.buf.get(), c.len);
      c.len = 0;
      return ok;
    }
    uint32_t used = 0;
    for (;;) {
      bool answer;
      uint8_t* msg = c.buf.get() + used;
      const int64_t n = reply_in_place(msg, c.len - used, &answer);
      if (n < 0) return false;
      if (n == 0) break;
      if (answer && !send_all(c.fd, msg, uint32_t(n))) return false;
      used += uint32_t(n);
    }
    std::memmove(c.buf.get(), c.buf.get() + used, c.len - used);
    c.len -= used;
    return true;
  }
  // Spins until everything is written: the ceiling has no output queue.
  static bool send_all(int fd, const uint8_t* p, uint32_t n) {
    while (n && !g_stop) {
      const ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
      if (w > 0) p += w, n -= uint32_t(w);
    }
    return true;
  }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "cw-ceiling-echo: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-ceiling-echo: minimal busy-poll kernel echo server (reference ceiling)"};
  std::string udp_at, tcp_at, mode = "raw";
  int core = -1;
  app.add_option("--udp", udp_at, "UDP address:port to echo on");
  app.add_option("--tcp", tcp_at, "TCP address:port to echo on");
  app.add_option("--core", core, "pin to this CPU");
  app.add_option("--mode", mode, "raw | sockperf | native")
      ->check(CLI::IsMember({"raw", "sockperf", "native"}));
  CLI11_PARSE(app, argc, argv);
  if (udp_at.empty() && tcp_at.empty()) {
    std::fprintf(stderr, "cw-ceiling-echo: give --udp and/or --tcp\n");
    return 2;
  }
  g_mode = mode == "sockperf" ? Mode::sockperf : mode == "native" ? Mode::native : Mode::raw;
  if (core >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) return fail("--core " + std::to_string(core));
  }
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });

  auto udp = std::make_unique<Udp>();
  Tcp tcp;
  for (auto [at, type, fd] :
       {std::tuple{&udp_at, SOCK_DGRAM, &udp->fd}, std::tuple{&tcp_at, SOCK_STREAM, &tcp.lfd}}) {
    if (at->empty()) continue;
    auto ep = cw::dp::parse_endpoint(*at);
    if (!ep) {
      std::fprintf(stderr, "cw-ceiling-echo: %s\n", ep.error().message.c_str());
      return 2;
    }
    std::string bound;
    *fd = open_socket(type, *ep, &bound);
    if (*fd < 0) return fail(*at);
    std::printf("%s %s\n", type == SOCK_DGRAM ? "udp" : "tcp", bound.c_str());
  }
  std::fflush(stdout);

  // The loop: poll every socket without blocking, forever (busy-poll by design).
  while (!g_stop) {
    if (udp->fd >= 0) udp->run_once();
    if (tcp.lfd >= 0) tcp.run_once();
  }
  for (auto& c : tcp.conns) close(c.fd);
  return 0;
}
