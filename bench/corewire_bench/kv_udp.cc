#include "bench/corewire_bench/kv_udp.hh"

#include <algorithm>
#include <cstring>

#include "app/services/kv/protocol.hh"

namespace cw::bench::kv {

namespace kp = cw::kv::proto;

UdpReassembly::UdpReassembly(uint32_t slots, uint32_t cap)
    : cap_(std::max<uint32_t>(cap, kp::kUdpMaxPayload)),
      max_dgrams_(std::min<uint32_t>(cap_ / kp::kUdpMaxPayload + 1, UINT16_MAX)),
      slots_(std::max<uint32_t>(slots, 1)) {
  for (Slot& s : slots_) {
    s.bits.assign((max_dgrams_ + 63) / 64, 0);
    s.buf.resize(cap_);
  }
}

UdpReassembly::Slot& UdpReassembly::slot_for(uint64_t seq, bool& evicted) {
  evicted = false;
  Slot* free = nullptr;
  Slot* oldest = &slots_[0];
  for (Slot& s : slots_) {
    if (s.used && s.seq == seq) return s;
    if (!s.used && !free) free = &s;
    if (s.used && (!oldest->used || s.seq < oldest->seq)) oldest = &s;
  }
  Slot* s = free;
  if (!s) {
    s = oldest;
    evicted = true;
  }
  s->used = true;
  s->seq = seq;
  s->have = 0;
  s->msg_total = s->msg_got = 0;
  s->msg_last = 0;
  s->st = {};
  return *s;
}

UdpReassembly::Add UdpReassembly::add(Slot& s, const UdpReply& d) {
  if (!d.ok || d.total > max_dgrams_) return Add::bad;
  const bool last = d.seq == d.total - 1;
  // Every datagram but a message's last is full (memcached and corewire cut at 1392 B).
  if (d.payload.size() > kp::kUdpMaxPayload || (!last && d.payload.size() != kp::kUdpMaxPayload))
    return Add::bad;
  if (s.msg_total == 0) {
    s.msg_total = d.total;
    s.msg_got = 0;
    std::fill(s.bits.begin(), s.bits.end(), 0);
  } else if (d.total != s.msg_total) {
    return Add::bad;
  }
  uint64_t& word = s.bits[d.seq / 64];
  const uint64_t bit = uint64_t{1} << (d.seq % 64);
  if (word & bit) return Add::partial;  // a duplicate
  const size_t at = size_t(s.have) + size_t(d.seq) * kp::kUdpMaxPayload;
  if (at + d.payload.size() > cap_) return Add::bad;
  if (!d.payload.empty()) std::memcpy(s.buf.data() + at, d.payload.data(), d.payload.size());
  word |= bit;
  if (last) s.msg_last = uint32_t(d.payload.size());
  if (++s.msg_got < s.msg_total) return Add::partial;
  s.have += uint32_t(s.msg_total - 1) * kp::kUdpMaxPayload + s.msg_last;
  s.msg_total = 0;
  return Add::message;
}

void UdpReassembly::consume(Slot& s, uint32_t n) {
  n = std::min(n, s.have);
  std::memmove(s.buf.data(), s.buf.data() + n, s.have - n);
  s.have -= n;
}

}  // namespace cw::bench::kv
