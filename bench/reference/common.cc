#include "bench/reference/common.hh"

#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"

namespace cw::ref {

void on_stop_signals() {
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
}

bool pin(int core) {
  if (core < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

void size_udp_buffers(int fd) {
  for (auto [force, plain] : {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, {SO_SNDBUFFORCE, SO_SNDBUF}})
    if (setsockopt(fd, SOL_SOCKET, force, &kUdpBufferBytes, sizeof kUdpBufferBytes) != 0)
      setsockopt(fd, SOL_SOCKET, plain, &kUdpBufferBytes, sizeof kUdpBufferBytes);
}

int open_socket(int type, const dp::Endpoint& ep, std::string* bound) {
  const int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (type == SOCK_DGRAM) size_udp_buffers(fd);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ep.addr_be;
  a.sin_port = ep.port_be;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (type == SOCK_STREAM && listen(fd, 4096) != 0) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  *bound = dp::to_string({a.sin_addr.s_addr, a.sin_port});
  return fd;
}

Mode parse_mode(const std::string& s) {
  return s == "sockperf" ? Mode::sockperf : s == "native" ? Mode::native : Mode::raw;
}

int64_t reply_in_place(Mode mode, uint8_t* msg, uint32_t avail, bool* answer) {
  *answer = true;
  if (mode == Mode::raw) return avail;
  *answer = false;
  if (mode == Mode::sockperf) {
    namespace sp = proto::sockperf;
    const sp::Frame f = sp::parse({msg, avail});
    if (f.status != sp::Status::ok) return f.status == sp::Status::need_more ? 0 : -1;
    if ((*answer = sp::wants_reply(f.header))) sp::make_reply(msg);
    return f.frame_len;
  }
  namespace nt = proto::native;
  nt::Decoded d = nt::decode({msg, avail});
  if (d.status != nt::Status::ok) return d.status == nt::Status::need_more ? 0 : -1;
  if ((*answer = d.header.kind == nt::Kind::request)) {
    d.header.kind = nt::Kind::response;
    nt::encode_header(msg, d.header);
  }
  return d.frame_len;
}

void set_gso(msghdr* m, unsigned char* ctl, uint16_t seg) {
  m->msg_control = ctl;
  m->msg_controllen = kGsoCtl;
  cmsghdr* c = CMSG_FIRSTHDR(m);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
}

uint32_t make_trains(uint32_t n, iovec* iov, const uint32_t* peer_of, sockaddr_in* peers,
                     mmsghdr* msgs, unsigned char* ctl, bool gso) {
  uint32_t trains = 0;
  for (uint32_t i = 0; i < n;) {
    const uint32_t seg = uint32_t(iov[i].iov_len);
    uint32_t j = i + 1, bytes = seg;
    if (gso && seg <= kMaxSegBytes) {
      // Extend while the next reply goes to the same peer with a length the train allows.
      while (j < n && j - i < kMaxSegs && peer_of[j] == peer_of[i] && iov[j].iov_len <= seg &&
             bytes + iov[j].iov_len <= kMaxTrainBytes) {
        bytes += uint32_t(iov[j].iov_len);
        if (iov[j++].iov_len < seg) break;  // a shorter segment ends the train
      }
    }
    msghdr& m = msgs[trains].msg_hdr;
    m = msghdr{};
    m.msg_name = &peers[peer_of[i]];
    m.msg_namelen = sizeof(sockaddr_in);
    m.msg_iov = &iov[i];
    m.msg_iovlen = j - i;
    if (j - i > 1) set_gso(&m, ctl + size_t(trains) * kGsoCtl, uint16_t(seg));
    ++trains;
    i = j;
  }
  return trains;
}

uint32_t send_trains(int fd, mmsghdr* trains, uint32_t n, uint64_t* calls) {
  uint32_t sent = 0, done = 0;
  while (sent < n) {
    const int k = sendmmsg(fd, trains + sent, n - sent, MSG_DONTWAIT);
    ++*calls;
    if (k <= 0) break;
    for (int t = 0; t < k; ++t) done += uint32_t(trains[sent + unsigned(t)].msg_hdr.msg_iovlen);
    sent += unsigned(k);
  }
  return done;
}

bool read_session_pairs(const std::string& path,
                        std::vector<std::pair<dp::Endpoint, dp::Endpoint>>* out, std::string* err) {
  std::ifstream f(path);
  if (!f) {
    *err = path + ": cannot open";
    return false;
  }
  for (std::string line; std::getline(f, line);) {
    std::istringstream ls(line);
    std::string a, b;
    if (!(ls >> a >> b)) continue;
    auto ea = dp::parse_endpoint(a), eb = dp::parse_endpoint(b);
    if (!ea || !eb) {
      *err = path + ": bad line '" + line + "'";
      return false;
    }
    out->emplace_back(*ea, *eb);
  }
  return true;
}

}  // namespace cw::ref
