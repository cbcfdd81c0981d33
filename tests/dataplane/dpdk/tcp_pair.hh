// Two TCP engines wired back to back in-process: every emitted segment is copied into a
// queue and delivered to the other engine after a one-way delay, with injectable random
// loss, duplication and reordering (seeded: runs repeat exactly) and a fake clock. A test
// hook may drop chosen segments; every segment sent is also logged for inspection.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <vector>

#include "dataplane/dpdk/net/tcp.hh"
#include "dataplane/dpdk/net/wire.hh"

namespace cw::dp::net::test {

inline constexpr int64_t kMs = 1'000'000;
inline constexpr int64_t kSec = 1'000'000'000;

// A segment as it went on the wire, with its header fields decoded.
struct Seg {
  uint32_t src = 0, dst = 0;
  std::vector<uint8_t> bytes;  // TCP header + payload
  int64_t sent_at = 0;
  uint32_t seq() const { return load32(bytes.data() + 4); }
  uint32_t ack() const { return load32(bytes.data() + 8); }
  uint8_t flags() const { return bytes[13]; }
  uint16_t wnd() const { return load16(bytes.data() + 14); }
  uint32_t hlen() const { return uint32_t(bytes[12] >> 4) * 4; }
  uint32_t dlen() const { return uint32_t(bytes.size()) - hlen(); }
  uint16_t sport() const { return load_be16(bytes.data()); }
  uint16_t dport() const { return load_be16(bytes.data() + 2); }
  // The option of `kind` (its value bytes), or empty.
  std::vector<uint8_t> option(uint8_t kind) const {
    for (uint32_t i = 20; i < hlen();) {
      if (bytes[i] == 0) break;
      if (bytes[i] == 1) {
        ++i;
        continue;
      }
      if (bytes[i] == kind) return {bytes.begin() + i + 2, bytes.begin() + i + bytes[i + 1]};
      i += bytes[i + 1];
    }
    return {};
  }
  // SACK blocks in order.
  std::vector<std::pair<uint32_t, uint32_t>> sacks() const {
    std::vector<std::pair<uint32_t, uint32_t>> r;
    const auto v = option(5);
    for (size_t i = 0; i + 8 <= v.size(); i += 8) r.push_back({load32(&v[i]), load32(&v[i + 4])});
    return r;
  }
};

struct Faults {
  double loss = 0, dup = 0, reorder = 0;  // probabilities per segment
  int64_t delay = 1 * kMs;                // one way
  int64_t reorder_extra = 3 * kMs;        // extra delay of a reordered segment
};

class TcpPair {
 public:
  static constexpr uint32_t kAddrA = 0x0A000001, kAddrB = 0x0A000002;  // host order

  TcpPair(const TcpConfig& ca, const TcpConfig& cb, uint64_t seed = 1)
      : rng_(seed),
        a(ca, &drops_a, &TcpPair::emit_a, this),
        b(cb, &drops_b, &TcpPair::emit_b, this) {}

  uint32_t addr_a() const { return htonl(kAddrA); }
  uint32_t addr_b() const { return htonl(kAddrB); }

  // Deliver what is due, run both engines' timers, then move the clock to the next event
  // (a delivery, a timer, or `tick` later, so the test's pump runs often enough).
  void step(int64_t tick = 1 * kMs) {
    while (!wire_.empty() && wire_.begin()->first <= now) {
      Seg s = std::move(wire_.begin()->second);
      wire_.erase(wire_.begin());
      TcpEngine& to = s.dst == addr_a() ? a : b;
      to.input(s.src, s.dst, s.bytes.data(), uint32_t(s.bytes.size()), now);
    }
    a.advance(now);
    b.advance(now);
    int64_t next = now + tick;
    if (!wire_.empty()) next = std::min(next, wire_.begin()->first);
    next = std::min({next, a.next_deadline(), b.next_deadline()});
    now = std::max(next, now + 1);
  }
  // Steps until done() (checked before each step) or `limit` of simulated time.
  bool run(const std::function<bool()>& done, int64_t limit, int64_t tick = 1 * kMs) {
    const int64_t end = now + limit;
    while (now < end) {
      if (done()) return true;
      step(tick);
    }
    return done();
  }
  bool idle() const { return wire_.empty(); }

  int64_t now = 0;
  Faults faults;
  // Return false to drop a segment (after logging it).
  std::function<bool(const Seg&)> filter;
  std::vector<Seg> log;  // every segment emitted, in order
  bool keep_log = true;
  DropCounters drops_a, drops_b;

 private:
  static void emit_a(void* ctx, const TcpSegmentOut& o) { static_cast<TcpPair*>(ctx)->emit(o); }
  static void emit_b(void* ctx, const TcpSegmentOut& o) { static_cast<TcpPair*>(ctx)->emit(o); }
  void emit(const TcpSegmentOut& o) {
    Seg s;
    s.src = o.src_be;
    s.dst = o.dst_be;
    s.sent_at = now;
    s.bytes.assign(o.hdr, o.hdr + o.hdr_len);
    s.bytes.insert(s.bytes.end(), o.p1, o.p1 + o.n1);
    s.bytes.insert(s.bytes.end(), o.p2, o.p2 + o.n2);
    if (keep_log) log.push_back(s);
    if (filter && !filter(s)) return;
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng_) < faults.loss) return;
    int64_t at = now + faults.delay;
    if (u(rng_) < faults.reorder) at += faults.reorder_extra;
    if (u(rng_) < faults.dup) wire_.emplace(at + 1, s);
    wire_.emplace(at, std::move(s));
  }

  std::mt19937_64 rng_;
  std::multimap<int64_t, Seg> wire_;  // by delivery time; equal times keep send order

 public:
  TcpEngine a, b;
};

}  // namespace cw::dp::net::test
