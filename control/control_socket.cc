#include "control/control_socket.hh"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace cw::ctl {

namespace {

constexpr int kSendTimeoutMs = 1000;  // a reply that cannot be written by then is dropped

std::string sys_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return make_error("control socket '" + path + "': path empty or longer than " +
                      std::to_string(sizeof a.sun_path - 1) + " bytes");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

Result<int> connect_unix(const std::string& path) {
  auto a = unix_addr(path);
  if (!a) return a.error();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(sys_error("control socket"));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a.value()), sizeof(sockaddr_un)) != 0) {
    auto e = make_error(sys_error("control socket " + path));
    ::close(fd);
    return e;
  }
  return fd;
}

std::string error_line(const std::string& msg) {
  return Json{{"ok", false}, {"error", msg}}.dump() + "\n";
}

// Writes all of s; false if the peer is gone or stopped reading (SO_SNDTIMEO on server-side
// sockets bounds how long a client that never reads can hold the control thread).
bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

bool peer_allowed(int fd) {
  ucred cr{};
  socklen_t len = sizeof cr;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return false;
  return cr.uid == 0 || cr.uid == ::geteuid();
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::listen(const std::string& path) {
  auto a = unix_addr(path);
  if (!a) return a.error();
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error("control socket " + path + ": exists and is not a socket");
    auto live = connect_unix(path);
    if (live) {
      ::close(live.value());
      return make_error("control socket " + path + ": another dataplane is serving it");
    }
    ::unlink(path.c_str());  // stale, left by a dataplane that died
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(sys_error("control socket"));
  // Mode 0600 from the start: fchmod on an unbound AF_UNIX socket sets the mode the socket
  // file is created with, so there is no window with wider permissions; chmod again after
  // bind in case the umask or the file system ignored it.
  ::fchmod(fd, 0600);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a.value()), sizeof(sockaddr_un)) != 0 ||
      ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 16) != 0) {
    auto e = make_error(sys_error("control socket " + path));
    ::close(fd);
    return e;
  }
  std::unique_ptr<ControlServer> s(new ControlServer());
  s->listen_fd_ = fd;
  s->path_ = path;
  s->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd_ < 0) return make_error(sys_error("control socket: eventfd"));
  return s;
}

ControlServer::~ControlServer() {
  stop();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ControlServer::start(std::function<void()> tick, int tick_ms) {
  thread_ = std::thread([this, tick = std::move(tick), tick_ms] { run(tick, tick_ms); });
}

void ControlServer::stop() {
  stop_.store(true);
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::string ControlServer::handle_line(const std::string& line) {
  Json req = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded()) return error_line("request is not valid JSON");
  if (!req.is_object()) return error_line("request must be a JSON object");
  auto c = req.find("cmd");
  if (c == req.end() || !c->is_string()) return error_line("request needs a string \"cmd\"");
  auto it = cmds_.find(c->get<std::string>());
  if (it == cmds_.end()) return error_line("unknown command '" + c->get<std::string>() + "'");
  try {
    Json reply = it->second(req);
    if (!reply.is_object()) reply = Json{{"result", reply}};
    if (!reply.contains("ok")) reply["ok"] = true;
    return reply.dump() + "\n";
  } catch (const std::exception& e) {
    return error_line(e.what());
  }
}

void ControlServer::run(const std::function<void()>& tick, int tick_ms) {
  struct Client {
    int fd;
    std::string buf;
  };
  std::vector<Client> clients;
  auto next_tick = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      if (tick) tick();
      next_tick = now + std::chrono::milliseconds(tick_ms);
    }
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_tick - std::chrono::steady_clock::now());
    const int n = ::poll(fds.data(), fds.size(), int(std::max<int64_t>(0, wait.count())) + 1);
    if (n <= 0) continue;
    if (fds[0].revents) break;
    // Clients first (their indices match fds[2..]); closed ones are marked with fd -1.
    for (size_t i = 0; i < clients.size(); ++i) {
      if (!fds[i + 2].revents) continue;
      Client& c = clients[i];
      char tmp[1024];
      const ssize_t r = ::recv(c.fd, tmp, sizeof tmp, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.buf.append(tmp, size_t(r));
      size_t nl;
      while (c.fd >= 0 && (nl = c.buf.find('\n')) != std::string::npos) {
        std::string line = c.buf.substr(0, nl);
        c.buf.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > kMaxRequestBytes) {
          write_all(c.fd, error_line("request longer than " + std::to_string(kMaxRequestBytes) +
                                     " bytes"));
          ::close(c.fd);
          c.fd = -1;
          break;
        }
        if (!write_all(c.fd, handle_line(line))) {
          ::close(c.fd);
          c.fd = -1;
        }
      }
      // Without a newline the line cannot be framed any more: answer and hang up.
      if (c.fd >= 0 && c.buf.size() > kMaxRequestBytes) {
        write_all(c.fd,
                  error_line("request longer than " + std::to_string(kMaxRequestBytes) + " bytes"));
        ::close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
    if (fds[1].revents & POLLIN) {
      const int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd >= 0) {
        const timeval tv{kSendTimeoutMs / 1000, (kSendTimeoutMs % 1000) * 1000};
        ::setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (!peer_allowed(cfd)) {
          refused_.fetch_add(1);
          write_all(cfd, error_line("permission denied: peer uid is not the server's or root"));
          ::close(cfd);
        } else if (clients.size() >= size_t(kMaxControlClients)) {
          write_all(cfd, error_line("too many control clients"));
          ::close(cfd);
        } else {
          // Replies are written blocking (they are small); reads use MSG_DONTWAIT.
          clients.push_back({cfd, {}});
        }
      }
    }
  }
  for (auto& c : clients) ::close(c.fd);
}

Result<std::string> control_request_raw(const std::string& path, const std::string& line,
                                        int timeout_ms) {
  auto fd = connect_unix(path);
  if (!fd) return fd.error();
  const int s = fd.value();
  write_all(s, line);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (out.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::close(s);
      return make_error("control socket " + path + ": no reply within " +
                        std::to_string(timeout_ms) + " ms");
    }
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(s, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(s);
  if (out.empty())
    return make_error("control socket " + path + ": connection closed without a reply");
  const size_t nl = out.find('\n');
  return nl == std::string::npos ? out : out.substr(0, nl);
}

Result<Json> control_request(const std::string& path, const Json& request, int timeout_ms) {
  auto r = control_request_raw(path, request.dump() + "\n", timeout_ms);
  if (!r) return r.error();
  Json j = Json::parse(r.value(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error("control socket " + path + ": reply is not a JSON object");
  return j;
}

}  // namespace cw::ctl
