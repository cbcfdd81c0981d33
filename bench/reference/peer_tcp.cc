// cw-peer-tcp: the kernel TCP reference of the peer-session benchmark (docs/BENCHMARKS.md,
// "Peer sessions"). The same messages as a peer stream carries (app/services/peer/frame.hh:
// an 8-byte header and a body) over one plain TCP connection on loopback, with TCP_NODELAY,
// blocking sockets and one send per batch of replies, measured the way the peer service's
// probes measure:
//   cw-peer-tcp server --listen 127.0.0.1:PORT [--core N]
//       Serves one connection at a time: echo-channel requests come back as responses with
//       their body, sink-channel requests are consumed and timed (first sink frame to the
//       latest, on this side). After each connection, one JSON line:
//       {"echoed":N,"sink_frames":N,"sink_bytes":N,"sink_us":N,"bad":N}.
//   cw-peer-tcp rtt --connect 127.0.0.1:PORT --count N --bytes B [--core N]
//       N echo requests of B bytes, one outstanding at a time; every answer checked; the
//       first N/10 are warm-up (as the service's probe_rtt). One JSON line:
//       {"samples":N,"p50_ns":N,"p99_ns":N,"bad":N}.
//   cw-peer-tcp bulk --connect 127.0.0.1:PORT --total BYTES --bytes B [--core N]
//       BYTES of sink-channel frames of B bytes each (the last one shorter), then closes.
// Plain code on purpose: a reference is only trusted if it is obviously what it claims.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "app/services/peer/frame.hh"
#include "bench/hist/histogram.hh"
#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

using peer::FrameHeader;
using peer::FrameKind;

constexpr size_t kRxBytes = 256 * 1024;  // receive buffer (>= one whole frame)
constexpr size_t kBulkChunk = 16 * (16 * 1024 + peer::kFrameHeader);  // bytes per bulk send

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

bool send_all(int fd, const uint8_t* p, size_t n) {
  while (n) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool parse_addr(const std::string& s, sockaddr_in& sa) {
  auto ep = dp::parse_endpoint(s);
  if (!ep) return false;
  sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = ep->addr_be;
  sa.sin_port = ep->port_be;
  return true;
}

void nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int dial(const std::string& addr) {
  sockaddr_in sa;
  if (!parse_addr(addr, sa)) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  nodelay(fd);
  return fd;
}

struct ServeStats {
  uint64_t echoed = 0, sink_frames = 0, sink_bytes = 0, sink_t0 = 0, sink_last = 0, bad = 0;
};

// One connection until the peer closes it (or sends something that is not a frame).
void serve(int fd, ServeStats& st) {
  std::vector<uint8_t> rx(kRxBytes), tx(kRxBytes);
  size_t have = 0;
  for (;;) {
    const ssize_t r = recv(fd, rx.data() + have, rx.size() - have, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    const uint64_t t = now_ns();
    have += size_t(r);
    size_t used = 0, out = 0;
    for (;;) {
      FrameHeader h;
      const std::span<const uint8_t> in(rx.data() + used, have - used);
      const peer::FrameStatus fs = peer::parse_frame(in, h);
      if (fs == peer::FrameStatus::partial) break;
      if (fs == peer::FrameStatus::bad || h.kind != FrameKind::request) {
        ++st.bad;
        return;
      }
      if (h.channel == peer::kChannelSink) {
        if (st.sink_frames++ == 0) st.sink_t0 = t;
        st.sink_last = t;
        st.sink_bytes += h.len;
      } else {
        // Echo: the reply (header and body) into this read's send buffer.
        const FrameHeader reply{h.len, FrameKind::response, h.channel};
        if (out + peer::kFrameHeader + h.len > tx.size()) {
          if (!send_all(fd, tx.data(), out)) return;
          out = 0;
        }
        peer::write_frame_header(tx.data() + out, reply);
        std::memcpy(tx.data() + out + peer::kFrameHeader, in.data() + peer::kFrameHeader, h.len);
        out += peer::kFrameHeader + h.len;
        ++st.echoed;
      }
      used += peer::kFrameHeader + h.len;
    }
    if (out && !send_all(fd, tx.data(), out)) return;
    std::memmove(rx.data(), rx.data() + used, have - used);
    have -= used;
  }
}

int run_server(const std::string& listen_addr) {
  sockaddr_in sa;
  if (!parse_addr(listen_addr, sa)) return 2;
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(lfd, 16) != 0) {
    std::perror("cw-peer-tcp: listen");
    return 1;
  }
  std::printf("listening %s\n", listen_addr.c_str());
  std::fflush(stdout);
  for (;;) {  // until SIGTERM (its default action)
    const int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR) continue;
      std::perror("cw-peer-tcp: accept");
      return 1;
    }
    nodelay(fd);
    ServeStats st;
    serve(fd, st);
    close(fd);
    std::printf(
        "{\"echoed\":%llu,\"sink_frames\":%llu,\"sink_bytes\":%llu,\"sink_us\":%llu,"
        "\"bad\":%llu}\n",
        (unsigned long long)st.echoed, (unsigned long long)st.sink_frames,
        (unsigned long long)st.sink_bytes, (unsigned long long)((st.sink_last - st.sink_t0) / 1000),
        (unsigned long long)st.bad);
    std::fflush(stdout);
  }
}

// The request body of round trip i: its number, then bytes derived from it (as the
// service's probe fills its own).
void fill(std::vector<uint8_t>& b, uint32_t seq) {
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(seq * 131u + i);
  std::memcpy(b.data(), &seq, sizeof seq);
}

int run_rtt(const std::string& addr, uint32_t count, uint32_t bytes) {
  const int fd = dial(addr);
  if (fd < 0) {
    std::perror("cw-peer-tcp: connect");
    return 1;
  }
  std::vector<uint8_t> req(peer::kFrameHeader + bytes), body(bytes), rx(kRxBytes);
  bench::Histogram hist;
  uint64_t bad = 0;
  for (uint32_t i = 0; i < count; ++i) {
    fill(body, i);
    peer::write_frame_header(req.data(), FrameHeader{bytes, FrameKind::request, 0});
    std::memcpy(req.data() + peer::kFrameHeader, body.data(), bytes);
    const uint64_t t0 = now_ns();
    if (!send_all(fd, req.data(), req.size())) return 1;
    size_t have = 0;
    FrameHeader h;
    for (;;) {
      const ssize_t r = recv(fd, rx.data() + have, rx.size() - have, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        std::fprintf(stderr, "cw-peer-tcp: connection lost at round trip %u\n", i);
        return 1;
      }
      have += size_t(r);
      const peer::FrameStatus fs = peer::parse_frame(std::span(rx.data(), have), h);
      if (fs == peer::FrameStatus::bad) return 1;
      if (fs == peer::FrameStatus::ok) break;
    }
    const uint64_t t1 = now_ns();
    const bool ok = h.kind == FrameKind::response && h.len == bytes &&
                    have == peer::kFrameHeader + bytes &&
                    std::memcmp(rx.data() + peer::kFrameHeader, body.data(), bytes) == 0;
    bad += !ok;
    if (i >= count / 10) hist.record(t1 - t0);
  }
  close(fd);
  std::printf("{\"samples\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"bad\":%llu}\n",
              (unsigned long long)hist.count(), (unsigned long long)hist.percentile(50),
              (unsigned long long)hist.percentile(99), (unsigned long long)bad);
  return bad ? 1 : 0;
}

int run_bulk(const std::string& addr, uint64_t total, uint32_t bytes) {
  const int fd = dial(addr);
  if (fd < 0) {
    std::perror("cw-peer-tcp: connect");
    return 1;
  }
  // A chunk of whole frames, sent again and again; the tail rebuilt for the last one.
  std::vector<uint8_t> chunk;
  chunk.reserve(kBulkChunk + peer::kFrameHeader + bytes);
  auto put_frame = [&](uint32_t n) {
    const size_t at = chunk.size();
    chunk.resize(at + peer::kFrameHeader + n, 0x5a);
    peer::write_frame_header(chunk.data() + at,
                             FrameHeader{n, FrameKind::request, peer::kChannelSink});
  };
  const uint64_t per_chunk = std::max<uint64_t>(1, kBulkChunk / (peer::kFrameHeader + bytes));
  for (uint64_t i = 0; i < per_chunk; ++i) put_frame(bytes);
  uint64_t left = total;
  while (left >= per_chunk * bytes) {
    if (!send_all(fd, chunk.data(), chunk.size())) return 1;
    left -= per_chunk * bytes;
  }
  chunk.clear();
  while (left) {
    const uint32_t n = uint32_t(std::min<uint64_t>(left, bytes));
    put_frame(n);
    left -= n;
  }
  if (!chunk.empty() && !send_all(fd, chunk.data(), chunk.size())) return 1;
  shutdown(fd, SHUT_WR);
  char c;
  while (recv(fd, &c, 1, 0) > 0) {
  }
  close(fd);
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  CLI::App app{"cw-peer-tcp: kernel TCP reference of the peer-session benchmark"};
  app.require_subcommand(1);
  std::string addr;
  int core = -1;
  uint32_t count = 10000, bytes = 64;
  uint64_t total = 0;
  auto* srv = app.add_subcommand("server", "echo and sink frames, one connection at a time");
  srv->add_option("--listen", addr, "a.b.c.d:port")->required();
  auto* rtt = app.add_subcommand("rtt", "round trips, one outstanding");
  rtt->add_option("--connect", addr, "a.b.c.d:port")->required();
  rtt->add_option("--count", count)->check(CLI::Range(1u, 100'000'000u));
  rtt->add_option("--bytes", bytes)->check(CLI::Range(8u, cw::peer::kMaxFrameBody));
  auto* bulk = app.add_subcommand("bulk", "sink frames, then close");
  bulk->add_option("--connect", addr, "a.b.c.d:port")->required();
  bulk->add_option("--total", total)->required();
  bulk->add_option("--bytes", bytes)->check(CLI::Range(8u, cw::peer::kMaxFrameBody));
  for (auto* s : {srv, rtt, bulk}) s->add_option("--core", core, "pin to this core");
  CLI11_PARSE(app, argc, argv);
  if (!cw::ref::pin(core)) {
    std::perror("cw-peer-tcp: pin");
    return 1;
  }
  if (*srv) return cw::ref::run_server(addr);
  if (*rtt) return cw::ref::run_rtt(addr, count, bytes);
  return cw::ref::run_bulk(addr, total, bytes);
}
