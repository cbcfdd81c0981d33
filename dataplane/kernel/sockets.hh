// Kernel-socket helpers shared by the kernel backends (epoll, io_uring). Setup functions
// allocate and return Result errors that name the endpoint; the few datapath helpers
// (accept, client socket, address conversion) never allocate and report -errno.
//
// Who calls what
//   Backend::create (main thread)   raise_nofile_limit(), open_socket_set()
//   WorkerIo (owner thread)         accept_conn(), open_tcp_client(), to_sockaddr() ...
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/io.hh"

namespace cw::dp::kernel {

// Listen backlog for TCP server sockets (the kernel caps it at net.core.somaxconn).
inline constexpr int kListenBacklog = 4096;
// SO_RCVBUF / SO_SNDBUF asked for on UDP sockets, best effort (the kernel caps it at
// net.core.rmem_max / wmem_max; nothing fails when it does).
inline constexpr int kUdpSocketBufferBytes = 8 << 20;
// Descriptors asked for at setup: per-worker connections plus sockets, rings, eventfds.
// Raised up to the hard limit; a lower result is logged by the caller, not fatal.
inline constexpr uint64_t kFdsPerWorkerOverhead = 64;

// An owned file descriptor: closed when destroyed. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// ---- addresses (no allocation) --------------------------------------------------------
inline sockaddr_in to_sockaddr(const Endpoint& ep) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = ep.addr_be;
  sa.sin_port = ep.port_be;
  return sa;
}
inline Endpoint from_sockaddr(const sockaddr_in& sa) {
  return Endpoint{sa.sin_addr.s_addr, sa.sin_port};
}

// ---- setup ----------------------------------------------------------------------------

// Raises RLIMIT_NOFILE's soft limit toward `want` (capped at the hard limit). Returns the
// soft limit in force afterwards, which may be below `want`.
uint64_t raise_nofile_limit(uint64_t want);

// What a backend needs so that IoConfig::max_conns connections per worker fit.
inline uint64_t nofile_wanted(const IoConfig& cfg, size_t sockets) {
  return uint64_t(cfg.workers) * (uint64_t(cfg.max_conns) + sockets + kFdsPerWorkerOverhead) +
         kFdsPerWorkerOverhead;
}

// A nonblocking, close-on-exec UDP socket bound to `bind` (SO_REUSEPORT when reuseport),
// with big socket buffers (best effort). Its kernel drop count is read with socket_drops().
Result<Fd> open_udp(const Endpoint& bind, bool reuseport);

// A nonblocking, close-on-exec TCP listener on `bind` with SO_REUSEADDR + SO_REUSEPORT.
Result<Fd> open_tcp_listener(const Endpoint& bind, int backlog = kListenBacklog);

// The address a socket is bound to (resolves port 0).
Result<Endpoint> local_endpoint(int fd);

// Every worker's sockets for a list of SocketSpecs, opened at setup on the main thread so
// that bind errors surface before any worker starts.
//   server udp/tcp: one socket per worker, all on the same port (SO_REUSEPORT). Port 0:
//                   worker 0's bind picks the port; workers 1.. bind that resolved port.
//   client udp:     one socket per worker bound to spec.bind (port 0 = ephemeral, so each
//                   worker gets its own port). bound() reports worker 0's.
//   client tcp:     no socket (connections are opened by connect()); fd stays -1 and
//                   bound() is spec.bind.
// Ownership: the set owns every fd until a worker take()s its row.
class SocketSet {
 public:
  SocketSet() = default;
  SocketSet(SocketSet&&) = default;
  SocketSet& operator=(SocketSet&&) = default;

  size_t sockets() const { return bound_.size(); }
  unsigned workers() const { return unsigned(fds_.size()); }
  Endpoint bound(SocketId s) const { return bound_.at(s); }
  // Worker w's descriptors, indexed by SocketId (-1 where the spec needs none). Called once
  // per worker (by open_worker); the caller owns them afterwards.
  std::vector<Fd> take(unsigned w) { return std::move(fds_.at(w)); }

 private:
  friend Result<SocketSet> open_socket_set(std::span<const SocketSpec>, unsigned);
  std::vector<std::vector<Fd>> fds_;  // [worker][socket]
  std::vector<Endpoint> bound_;       // [socket]
};

Result<SocketSet> open_socket_set(std::span<const SocketSpec> specs, unsigned workers);

// "udp 127.0.0.1:11111" (for error messages).
std::string describe(const SocketSpec& spec);

// ---- datapath (owner thread, no allocation) -------------------------------------------

// accept4() one connection from a nonblocking listener: a nonblocking, close-on-exec fd
// with TCP_NODELAY set, and the peer in *peer. Returns the fd or -errno (-EAGAIN: none).
int accept_conn(int listen_fd, Endpoint* peer);

// A nonblocking, close-on-exec TCP socket with TCP_NODELAY, bound to `local` when it names
// an address or port (port 0 = ephemeral), ready for connect(). Returns the fd or -errno.
int open_tcp_client(const Endpoint& local);

// Starts a nonblocking connect: 0 connected at once, -EINPROGRESS pending (completion is
// signalled by writability; then read the result with socket_error()), other -errno failed.
int connect_start(int fd, const Endpoint& to);

// SO_ERROR of a socket as a positive errno (0 = none).
int socket_error(int fd);

// How often a worker reads its UDP sockets' kernel drop counters (socket_drops). Sampling
// instead of SO_RXQ_OVFL: that option makes every datagram carry a cmsg once any drop has
// happened, which costs the kernel ~7% of a busy worker's CPU (__sock_recv_cmsgs).
inline constexpr uint64_t kDropSamplePeriodNs = 100'000'000;  // 100 ms

// The socket's cumulative count of datagrams the kernel dropped (receive queue full, ...):
// SO_MEMINFO's SK_MEMINFO_DROPS, a 32-bit counter that wraps. One getsockopt; false when
// the kernel does not answer (then the count is left alone).
bool socket_drops(int fd, uint32_t* drops);

}  // namespace cw::dp::kernel
