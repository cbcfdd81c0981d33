// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18+) for the kernel backends.
//
// Consecutive datagrams committed on one socket to one destination are gathered into a
// "train": one sendmsg whose iovecs are the datagrams' tx buffers and whose UDP_SEGMENT
// control message gives the segment size. The kernel walks its UDP/IP output path once for
// the whole train and cuts it into datagrams at the device (or, over loopback, at the
// receiving socket), so a reply burst costs one send instead of one per datagram; the
// receiver sees ordinary datagrams. A train's segments all have the first datagram's
// length except the last, which may be shorter (the kernel's rule), so a shorter datagram
// ends its train and a longer one starts a new train.
//
// The receive side (UDP_GRO, Linux 5.0+; io_uring backend): a socket with UDP_GRO takes
// such a run, from a GSO sender over loopback or merged by the kernel's GRO, as one buffer
// with a cmsg giving the datagram size, and the backend splits it.
//
// Order: datagrams to one destination leave in commit order (a train is submitted before
// anything later to the same destination); datagrams to different destinations may be
// reordered between trains, which UDP never promised anyway.
//
// Memory: kGsoTrains descriptors per worker, allocated once at setup; a descriptor is
// "open" (gathering, at most kGsoOpen at a time) or "in flight" (its sendmsg submitted,
// owned by the kernel until the send completes: io_uring) or free. When none is free the
// caller sends the datagram on its own, so running out only costs batching.
// Owner thread only.
#pragma once

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/io.hh"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // <linux/udp.h>; older libc headers lack it
#endif

namespace cw::dp::kernel {

// The kernel's UDP_MAX_SEGMENTS (64 on every kernel that has UDP_SEGMENT).
inline constexpr uint32_t kGsoMaxSegs = 64;
// Largest segment sent as part of a train: a segment must fit the path MTU unfragmented
// (the kernel refuses a train otherwise), and 1472 bytes fit any 1500-byte Ethernet MTU.
// Larger datagrams go out on their own.
inline constexpr uint32_t kGsoMaxSegBytes = 1472;
// Payload bytes per train: the whole train is one IP packet of at most 64 KiB before
// segmentation.
inline constexpr uint32_t kGsoMaxTrainBytes = 65000;
inline constexpr uint32_t kGsoTrains = 32;  // descriptors per worker
inline constexpr uint32_t kGsoOpen = 4;     // destinations gathered at once
inline constexpr uint32_t kNoTrain = ~uint32_t{0};

struct GsoTrain {
  // The sendmsg header and what it points at: read by the kernel until the send completes.
  msghdr msg{};
  sockaddr_in to{};
  alignas(cmsghdr) unsigned char ctl[CMSG_SPACE(sizeof(uint16_t))]{};
  iovec iov[kGsoMaxSegs]{};
  uint32_t buf[kGsoMaxSegs]{};  // tx pool buffers, given back when the send completes
  SocketId sock = 0;
  uint32_t seg = 0;     // segment size: the first datagram's length
  uint32_t n = 0;       // datagrams in the train
  uint32_t bytes = 0;   // payload bytes in the train
  bool closed = false;  // a shorter last segment joined: nothing more may follow

  bool joins(uint32_t len) const {
    return !closed && n < kGsoMaxSegs && len <= seg && bytes + len <= kGsoMaxTrainBytes;
  }
  bool full() const { return closed || n == kGsoMaxSegs || bytes + seg > kGsoMaxTrainBytes; }
  void add(uint32_t b, uint8_t* data, uint32_t len) {
    iov[n] = iovec{data, len};
    buf[n++] = b;
    bytes += len;
    if (len < seg) closed = true;
  }
  // The header for one sendmsg of the whole train (n >= 2).
  msghdr* finish() {
    msg = msghdr{};
    msg.msg_name = &to;
    msg.msg_namelen = sizeof to;
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const uint16_t g = uint16_t(seg);
    std::memcpy(CMSG_DATA(c), &g, sizeof g);
    return &msg;
  }
};

// Whether a train's send failed because the kernel refused segmentation on this path, so
// that its datagrams must be resent one by one and GSO is not worth trying again. The
// kernel refuses a segment (gso_size + headers) above the route/device MTU (EINVAL on
// older kernels, EMSGSIZE on newer ones: seen on 6.18), a socket with checksums off
// (SO_NO_CHECK: EINVAL), and a device or route that cannot segment (no checksum offload,
// IPsec: EIO). err is a positive errno. A datagram that is itself too large fails again
// when resent alone, and is counted then.
inline bool gso_refused(int err) {
  return err == EINVAL || err == EMSGSIZE || err == EIO;
}

#ifndef UDP_GRO
#define UDP_GRO 104  // <linux/udp.h>
#endif
// The largest run UDP_GRO hands over: one IPv4 packet's worth of UDP payload.
inline constexpr uint32_t kGroMaxPayload = 65535 - 20 - 8;

// Whether this kernel takes a SOL_UDP socket option (setup only: opens a socket).
inline bool udp_option_available(int opt, int value) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::setsockopt(fd, SOL_UDP, opt, &value, sizeof value) == 0;
  ::close(fd);
  return ok;
}
inline bool udp_gro_available() {
  return udp_option_available(UDP_GRO, 1);
}
inline bool udp_gso_available() {
  return udp_option_available(UDP_SEGMENT, 0);
}

// The per-worker train descriptors: the open set (trains still gathering) and a free list.
class GsoTrains {
 public:
  GsoTrains() : t_(std::make_unique<GsoTrain[]>(kGsoTrains)) {
    for (uint32_t i = 0; i < kGsoTrains; ++i) free_[i] = kGsoTrains - 1 - i;
    nfree_ = kGsoTrains;
  }

  GsoTrain& at(uint32_t i) { return t_[i]; }

  // Whether a datagram of len bytes may travel in a train at all.
  static bool eligible(uint32_t len) { return len != 0 && len <= kGsoMaxSegBytes; }

  // The open train a datagram of len bytes to (s, to) joins, started if needed; kNoTrain if
  // none could be had (all descriptors in flight): then the caller sends it alone. Trains
  // that must leave first -- the destination's previous train that this datagram cannot
  // join, or the oldest open train when the open set is full -- go to submit(index).
  template <class Submit>
  uint32_t join(SocketId s, const sockaddr_in& to, uint32_t len, Submit&& submit) {
    const uint32_t o = find(s, to);
    if (o != kGsoOpen) {
      if (t_[open_[o]].joins(len)) return open_[o];
      close_slot(o, submit);
    }
    if (nopen_ == kGsoOpen) close_slot(0, submit);
    if (!nfree_) return kNoTrain;
    const uint32_t i = free_[--nfree_];
    GsoTrain& t = t_[i];
    t.sock = s;
    t.to = to;
    t.seg = len;
    t.n = t.bytes = 0;
    t.closed = false;
    open_[nopen_++] = i;
    return i;
  }

  // Submits the open train to (s, to), if any: what follows to that destination must not
  // overtake it.
  template <class Submit>
  void close(SocketId s, const sockaddr_in& to, Submit&& submit) {
    const uint32_t o = find(s, to);
    if (o != kGsoOpen) close_slot(o, submit);
  }
  // Submits train i now if it can take nothing more.
  template <class Submit>
  void close_if_full(uint32_t i, Submit&& submit) {
    if (!t_[i].full()) return;
    for (uint32_t o = 0; o < nopen_; ++o)
      if (open_[o] == i) return close_slot(o, submit);
  }
  // Submits every open train (flush).
  template <class Submit>
  void close_all(Submit&& submit) {
    while (nopen_) close_slot(0, submit);
  }

  // A submitted train's send completed (or it was sent datagram by datagram): reusable.
  void release(uint32_t i) { free_[nfree_++] = i; }
  uint32_t open_count() const { return nopen_; }
  uint32_t free_count() const { return nfree_; }

 private:
  uint32_t find(SocketId s, const sockaddr_in& to) const {
    for (uint32_t o = 0; o < nopen_; ++o) {
      const GsoTrain& t = t_[open_[o]];
      if (t.sock == s && t.to.sin_addr.s_addr == to.sin_addr.s_addr && t.to.sin_port == to.sin_port)
        return o;
    }
    return kGsoOpen;
  }
  // Removes open slot o (keeping the rest in age order) and hands its train to submit,
  // which either puts it in flight or sends its datagrams alone and releases it.
  template <class Submit>
  void close_slot(uint32_t o, Submit& submit) {
    const uint32_t i = open_[o];
    for (uint32_t k = o + 1; k < nopen_; ++k) open_[k - 1] = open_[k];
    --nopen_;
    submit(i);
  }

  std::unique_ptr<GsoTrain[]> t_;
  uint32_t free_[kGsoTrains];
  uint32_t nfree_ = 0;
  uint32_t open_[kGsoOpen];
  uint32_t nopen_ = 0;
};

}  // namespace cw::dp::kernel
