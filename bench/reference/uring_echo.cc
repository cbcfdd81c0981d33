// cw-uring-echo: the bare io_uring UDP echo reference: what corewire's io_uring backend
// could be with no framework at all. One thread, one ring:
//   receive: one multishot recvmsg into a provided-buffer ring (no per-datagram submit);
//   reply:   in place in the received buffer; the replies of one completion batch to one peer
//            leave as one sendmsg with UDP_SEGMENT (a GSO train); a buffer returns to the
//            ring when the send that carries the last reply in it completes.
//   --gro:   the socket takes runs of datagrams (a sender's GSO train) as one buffer
//            (UDP_GRO), split here; needs buffers of a whole run (--buf-size 65664).
//   cw-uring-echo --udp 127.0.0.1:11111 [--core N] [--busy-poll] [--mode raw|sockperf|native]
//                 [--no-gso] [--gro] [--bufs 4096] [--buf-size 2048]
// --busy-poll peeks the completion queue without sleeping; otherwise it waits in
// io_uring_enter. UDP only (the stream side has no io_uring reference yet). Prints
// "udp <addr>" once listening and, on SIGTERM/SIGINT, one JSON line of counters.
#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench/reference/common.hh"

namespace cw::ref {
namespace {

constexpr uint16_t kGroup = 0;           // the provided-buffer group id
constexpr uint32_t kSendSlots = 256;     // sendmsg descriptors in flight at most
constexpr uint32_t kMaxReplies = 1024;   // replies gathered per completion batch
constexpr uint64_t kRecvTag = ~0ull;     // user_data of the multishot recvmsg
constexpr unsigned kRingEntries = 1024;  // submission queue entries
// A buffer holding a whole UDP_GRO run: recvmsg header, name, control, 65,507 bytes.
constexpr uint32_t kGroBufSize = 65664;

// One sendmsg in flight: everything it points at, read by the kernel until it completes.
struct Send {
  msghdr msg{};
  sockaddr_in to{};
  iovec iov[kMaxSegs]{};
  uint16_t bid[kMaxSegs]{};
  alignas(cmsghdr) unsigned char ctl[kGsoCtl]{};
};

struct Stats {
  uint64_t rx = 0, tx = 0, sends = 0, dropped = 0, send_errors = 0, no_buffers = 0;
};

class Echo {
 public:
  Echo(io_uring* ring, int fd, Mode mode, bool gso, bool gro, uint32_t nbufs, uint32_t buf_size)
      : ring_(ring),
        fd_(fd),
        mode_(mode),
        gso_(gso),
        gro_(gro),
        nbufs_(nbufs),
        buf_size_(buf_size),
        refs_(nbufs) {}

  // Setup: maps and registers the buffer ring, fills it, arms the receive.
  bool start() {
    const size_t ring_bytes = nbufs_ * sizeof(io_uring_buf);
    void* mem =
        mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return false;
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = nbufs_;
    reg.bgid = kGroup;
    if (io_uring_register_buf_ring(ring_, &reg, 0) != 0) return false;
    bufs_.resize(size_t(nbufs_) * buf_size_);
    for (uint32_t b = 0; b < nbufs_; ++b) give_back(uint16_t(b));
    publish();
    for (uint32_t s = 0; s < kSendSlots; ++s) free_.push_back(kSendSlots - 1 - s);
    hdr_.msg_namelen = sizeof(sockaddr_in);
    hdr_.msg_controllen = gro_ ? CMSG_SPACE(sizeof(int)) : 0;
    return arm();
  }

  // One pass: every completion waiting, then the replies they made, as trains.
  void run_once(Stats& st) {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring_, head, cqe) {
      ++seen;
      if (cqe->user_data == kRecvTag)
        on_recv(cqe, st);
      else
        on_sent(uint32_t(cqe->user_data), cqe->res, st);
      if (n_ + kMaxSegs > kMaxReplies) break;  // room for a whole run
    }
    io_uring_cq_advance(ring_, seen);
    if (rearm_ && arm()) rearm_ = false;
    send_replies(st);
    publish();
  }

 private:
  uint8_t* buf(uint16_t bid) { return bufs_.data() + size_t(bid) * buf_size_; }
  void give_back(uint16_t bid) {
    io_uring_buf_ring_add(br_, buf(bid), buf_size_, bid, io_uring_buf_ring_mask(nbufs_), added_++);
  }
  void publish() {
    if (added_) io_uring_buf_ring_advance(br_, int(added_));
    added_ = 0;
  }
  bool arm() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_);
    if (!sqe) return false;
    io_uring_prep_recvmsg_multishot(sqe, fd_, &hdr_, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    io_uring_sqe_set_data64(sqe, kRecvTag);
    return true;
  }

  // A run's datagram size (UDP_GRO's cmsg), else len.
  uint32_t run_segment(io_uring_recvmsg_out* o, uint32_t len) {
    for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(o, &hdr_); c;
         c = io_uring_recvmsg_cmsg_nexthdr(o, &hdr_, c))
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int g;
        std::memcpy(&g, CMSG_DATA(c), sizeof g);
        return g > 0 ? uint32_t(g) : len;
      }
    return len;
  }

  // Every datagram of the buffer (one, or a run's) answered in place; the buffer returns
  // to the ring once no reply in it is waiting or in flight (refs_).
  void on_recv(io_uring_cqe* cqe, Stats& st) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) rearm_ = true;
    if (cqe->res == -ENOBUFS) ++st.no_buffers;
    if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) return;
    const auto bid = uint16_t(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    io_uring_recvmsg_out* o = io_uring_recvmsg_validate(buf(bid), cqe->res, &hdr_);
    refs_[bid] = 1;  // held while its datagrams are looked at
    if (o && !(o->flags & MSG_TRUNC)) {
      auto* p = static_cast<uint8_t*>(io_uring_recvmsg_payload(o, &hdr_));
      const uint32_t len = io_uring_recvmsg_payload_length(o, cqe->res, &hdr_);
      const uint32_t seg = gro_ ? run_segment(o, len) : len;
      const uint32_t step = seg ? seg : 1;  // an empty datagram is one datagram too
      for (uint32_t off = 0; off == 0 || off < len; off += step) {
        const uint32_t l = std::min(seg, len - off);
        ++st.rx;
        bool answer = false;
        if (n_ == kMaxReplies || reply_in_place(mode_, p + off, l, &answer) <= 0 || !answer)
          continue;
        iov_[n_] = {p + off, l};
        std::memcpy(&peers_[n_], io_uring_recvmsg_name(o), sizeof(sockaddr_in));
        // Replies to the peer of the previous one share its index (trains group on it).
        peer_of_[n_] =
            n_ && std::memcmp(&peers_[n_], &peers_[peer_of_[n_ - 1]], sizeof(sockaddr_in)) == 0
                ? peer_of_[n_ - 1]
                : n_;
        bid_[n_++] = bid;
        ++refs_[bid];
      }
    } else {
      ++st.rx;
    }
    release(bid);
  }

  void release(uint16_t bid) {
    if (--refs_[bid] == 0) give_back(bid);
  }

  void on_sent(uint32_t slot, int res, Stats& st) {
    Send& s = slots_[slot];
    if (res < 0) ++st.send_errors;
    for (size_t i = 0; i < s.msg.msg_iovlen; ++i) release(s.bid[i]);
    free_.push_back(slot);
  }

  void send_replies(Stats& st) {
    const uint32_t trains = make_trains(n_, iov_, peer_of_, peers_, out_, ctl_.data(), gso_);
    uint32_t r = 0;  // index of the first reply of train t
    for (uint32_t t = 0; t < trains; ++t) {
      const msghdr& m = out_[t].msg_hdr;
      const auto segs = uint32_t(m.msg_iovlen);
      io_uring_sqe* sqe = free_.empty() ? nullptr : io_uring_get_sqe(ring_);
      if (!sqe) {  // nothing to send with: drop, as a full NIC queue would
        for (uint32_t i = 0; i < segs; ++i) release(bid_[r + i]);
        st.dropped += segs;
        r += segs;
        continue;
      }
      const uint32_t slot = free_.back();
      free_.pop_back();
      Send& s = slots_[slot];
      s.msg = m;
      s.to = *static_cast<sockaddr_in*>(m.msg_name);
      s.msg.msg_name = &s.to;
      std::memcpy(s.iov, m.msg_iov, segs * sizeof(iovec));
      s.msg.msg_iov = s.iov;
      std::memcpy(s.bid, &bid_[r], segs * sizeof(uint16_t));
      if (segs > 1) set_gso(&s.msg, s.ctl, uint16_t(s.iov[0].iov_len));
      io_uring_prep_sendmsg(sqe, fd_, &s.msg, 0);
      io_uring_sqe_set_data64(sqe, slot);
      ++st.sends;
      st.tx += segs;
      r += segs;
    }
    n_ = 0;
  }

  io_uring* ring_;
  int fd_;
  Mode mode_;
  bool gso_, gro_, rearm_ = false;
  uint32_t nbufs_, buf_size_, added_ = 0, n_ = 0;
  std::vector<uint16_t> refs_;  // per buffer: replies in it not yet sent, + 1 while parsed
  io_uring_buf_ring* br_ = nullptr;
  std::vector<uint8_t> bufs_;
  msghdr hdr_{};  // the multishot receive's layout: a sockaddr_in name, UDP_GRO's cmsg
  Send slots_[kSendSlots];
  std::vector<uint32_t> free_;
  // This batch's replies: where each is, its peer (index of the first equal peer) and buffer.
  iovec iov_[kMaxReplies];
  sockaddr_in peers_[kMaxReplies];
  uint32_t peer_of_[kMaxReplies];
  uint16_t bid_[kMaxReplies];
  mmsghdr out_[kMaxReplies];
  std::vector<unsigned char> ctl_ = std::vector<unsigned char>(kMaxReplies * kGsoCtl);
};

int fail(const std::string& what, int err) {
  std::fprintf(stderr, "cw-uring-echo: %s: %s\n", what.c_str(), std::strerror(err));
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{"cw-uring-echo: bare io_uring UDP echo reference (multishot, buffer ring, GSO)"};
  std::string udp_at, mode = "raw";
  int core = -1;
  bool busy = false, no_gso = false, gro = false;
  uint32_t nbufs = 4096, buf_size = 2048;
  app.add_option("--udp", udp_at, "UDP address:port to echo on")->required();
  app.add_option("--core", core, "pin to this CPU");
  app.add_option("--mode", mode, "raw | sockperf | native")
      ->check(CLI::IsMember({"raw", "sockperf", "native"}));
  app.add_flag("--busy-poll", busy, "peek completions without sleeping");
  app.add_flag("--no-gso", no_gso, "one sendmsg per reply");
  app.add_flag("--gro", gro, "take runs of datagrams as one buffer (UDP_GRO)");
  app.add_option("--bufs", nbufs, "provided buffers (power of two)")
      ->check(CLI::IsMember({256u, 512u, 1024u, 2048u, 4096u, 8192u, 16384u, 32768u}));
  app.add_option("--buf-size", buf_size, "bytes per buffer (header + name + datagram)")
      ->check(CLI::Range(256u, kGroBufSize));
  CLI11_PARSE(app, argc, argv);
  if (gro && buf_size < kGroBufSize) {
    std::fprintf(stderr, "cw-uring-echo: --gro needs --buf-size %u (a whole run)\n", kGroBufSize);
    return 2;
  }
  if (!pin(core)) return fail("--core " + std::to_string(core), errno);
  on_stop_signals();
  auto addr = dp::parse_endpoint(udp_at);
  if (!addr) {
    std::fprintf(stderr, "cw-uring-echo: %s\n", addr.error().message.c_str());
    return 2;
  }
  std::string bound;
  const int fd = open_socket(SOCK_DGRAM, *addr, &bound);
  if (fd < 0) return fail(udp_at, errno);
  const int one = 1;
  if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) != 0) return fail("UDP_GRO", errno);

  io_uring ring;
  io_uring_params p{};
  // Completions are posted when the thread enters the kernel (COOP_TASKRUN); TASKRUN_FLAG
  // says when that is needed, so a busy loop with nothing to submit makes no syscall.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  int rc = io_uring_queue_init_params(kRingEntries, &ring, &p);
  if (rc == -EINVAL) {  // an older kernel: plain ring
    p = {};
    rc = io_uring_queue_init_params(kRingEntries, &ring, &p);
  }
  if (rc < 0) return fail("io_uring_queue_init", -rc);
  auto echo = std::make_unique<Echo>(&ring, fd, parse_mode(mode), !no_gso, gro, nbufs, buf_size);
  if (!echo->start()) return fail("buffer ring", errno);
  std::printf("udp %s\n", bound.c_str());
  std::fflush(stdout);

  Stats st;
  while (!g_stop) {
    if (busy) {
      if (io_uring_sq_ready(&ring) || (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN))
        io_uring_submit_and_get_events(&ring);
    } else {
      io_uring_submit_and_wait(&ring, 1);  // EINTR on SIGTERM ends the wait
    }
    echo->run_once(st);
  }
  std::printf(
      "{\"udp_rx\":%llu,\"udp_tx\":%llu,\"udp_sends\":%llu,\"udp_dropped\":%llu,"
      "\"send_errors\":%llu,\"no_buffers\":%llu}\n",
      (unsigned long long)st.rx, (unsigned long long)st.tx, (unsigned long long)st.sends,
      (unsigned long long)st.dropped, (unsigned long long)st.send_errors,
      (unsigned long long)st.no_buffers);
  io_uring_queue_exit(&ring);
  return 0;
}

}  // namespace
}  // namespace cw::ref

int main(int argc, char** argv) {
  return cw::ref::run(argc, argv);
}
