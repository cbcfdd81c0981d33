#include "dataplane/kernel/sockets.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace cw::dp::kernel {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

Error sock_error(const char* what, const Endpoint& ep, const char* op, int e) {
  return make_error(std::string(what) + " " + to_string(ep) + ": " + op + ": " + errno_text(e));
}

void set_int_opt(int fd, int level, int opt, int v) {
  (void)setsockopt(fd, level, opt, &v, sizeof v);  // best effort by design (callers say so)
}

Result<void> set_int_opt_checked(int fd, int level, int opt, int v, const char* what,
                                 const Endpoint& ep, const char* name) {
  if (setsockopt(fd, level, opt, &v, sizeof v) != 0) return sock_error(what, ep, name, errno);
  return {};
}

}  // namespace

uint64_t raise_nofile_limit(uint64_t want) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rlimit nl = rl;
    nl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl = nl;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : uint64_t(rl.rlim_cur);
}

std::string describe(const SocketSpec& spec) {
  return std::string(spec.transport == Transport::udp ? "udp" : "tcp") +
         (spec.server ? " " : " client ") + to_string(spec.bind);
}

Result<Fd> open_udp(const Endpoint& bind, bool reuseport) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sock_error("udp", bind, "socket", errno);
  if (reuseport) {
    auto r =
        set_int_opt_checked(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "udp", bind, "SO_REUSEPORT");
    if (!r) return r.error();
  }
  // The *FORCE variants pass net.core.[rw]mem_max when privileged; otherwise the plain
  // ones get as much as the sysctl allows.
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &kUdpSocketBufferBytes,
                 sizeof kUdpSocketBufferBytes) != 0)
    set_int_opt(fd.get(), SOL_SOCKET, SO_RCVBUF, kUdpSocketBufferBytes);
  if (setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &kUdpSocketBufferBytes,
                 sizeof kUdpSocketBufferBytes) != 0)
    set_int_opt(fd.get(), SOL_SOCKET, SO_SNDBUF, kUdpSocketBufferBytes);
  const sockaddr_in sa = to_sockaddr(bind);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
    return sock_error("udp", bind, "bind", errno);
  return fd;
}

Result<Fd> open_tcp_listener(const Endpoint& bind, int backlog) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sock_error("tcp", bind, "socket", errno);
  // SO_REUSEADDR: restart while old connections sit in TIME_WAIT.
  auto r = set_int_opt_checked(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "tcp", bind, "SO_REUSEADDR");
  if (!r) return r.error();
  r = set_int_opt_checked(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "tcp", bind, "SO_REUSEPORT");
  if (!r) return r.error();
  const sockaddr_in sa = to_sockaddr(bind);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
    return sock_error("tcp", bind, "bind", errno);
  if (::listen(fd.get(), backlog) != 0) return sock_error("tcp", bind, "listen", errno);
  return fd;
}

Result<Endpoint> local_endpoint(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return make_error(std::string("getsockname: ") + errno_text(errno));
  return from_sockaddr(sa);
}

Result<SocketSet> open_socket_set(std::span<const SocketSpec> specs, unsigned workers) {
  SocketSet set;
  if (workers == 0) return make_error("sockets: at least one worker is needed");
  if (specs.size() > 0xFFFF) return make_error("sockets: too many sockets");
  set.fds_.resize(workers);
  for (auto& row : set.fds_) row.resize(specs.size());
  set.bound_.resize(specs.size());
  for (size_t s = 0; s < specs.size(); ++s) {
    const SocketSpec& spec = specs[s];
    if (spec.transport == Transport::tcp && !spec.server) {
      set.bound_[s] = spec.bind;  // a connect() group: nothing to open now
      continue;
    }
    Endpoint ep = spec.bind;
    for (unsigned w = 0; w < workers; ++w) {
      // Servers share one port: once worker 0 resolved port 0, the others join it.
      // Clients each bind spec.bind (port 0 = each its own ephemeral port).
      auto fd = spec.transport == Transport::udp ? open_udp(ep, spec.server || ep.port_be != 0)
                                                 : open_tcp_listener(ep);
      if (!fd) return fd.error();
      if (w == 0) {
        auto local = local_endpoint(fd->get());
        if (!local) return make_error(describe(spec) + ": " + local.error().message);
        set.bound_[s] = *local;
        if (spec.server) ep = *local;
      }
      set.fds_[w][s] = std::move(*fd);
    }
  }
  return set;
}

int accept_conn(int listen_fd, Endpoint* peer) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  const int fd =
      ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return -errno;
  // Request/response traffic: never wait for Nagle to coalesce small replies.
  set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  *peer = from_sockaddr(sa);
  return fd;
}

int open_tcp_client(const Endpoint& local) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (local.addr_be != 0 || local.port_be != 0) {
    if (local.port_be != 0) set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    const sockaddr_in sa = to_sockaddr(local);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
      const int e = errno;
      ::close(fd);
      return -e;
    }
  }
  return fd;
}

int connect_start(int fd, const Endpoint& to) {
  const sockaddr_in sa = to_sockaddr(to);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return 0;
  // EINTR on a nonblocking connect: it goes on in the background, as for EINPROGRESS.
  if (errno == EINTR || errno == EINPROGRESS || errno == EALREADY) return -EINPROGRESS;
  return -errno;
}

int socket_error(int fd) {
  int e = 0;
  socklen_t len = sizeof e;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) return errno;
  return e;
}

bool socket_drops(int fd, uint32_t* drops) {
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
      len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))
    return false;
  *drops = mem[SK_MEMINFO_DROPS];
  return true;
}

}  // namespace cw::dp::kernel
