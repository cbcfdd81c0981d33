// TCP engine (tcp.hh). Section numbers refer to RFC 9293 unless another RFC is named.
#include "dataplane/dpdk/net/tcp.hh"

#include <sys/random.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "dataplane/dpdk/net/wire.hh"

namespace cw::dp::net {

namespace {

// Sequence-space comparisons (modulo 2^32).
inline bool seq_lt(uint32_t a, uint32_t b) {
  return int32_t(a - b) < 0;
}
inline bool seq_leq(uint32_t a, uint32_t b) {
  return int32_t(a - b) <= 0;
}
inline bool seq_gt(uint32_t a, uint32_t b) {
  return int32_t(a - b) > 0;
}
inline bool seq_geq(uint32_t a, uint32_t b) {
  return int32_t(a - b) >= 0;
}
// a <= x < b in sequence space.
inline bool seq_in(uint32_t x, uint32_t a, uint32_t b) {
  return x - a < b - a;
}

uint32_t pow2_at_least(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

inline uint64_t rotl(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}
// SipHash-2-4 of two 64-bit words (RFC 6528 asks for a keyed PRF; SipHash is what Linux
// uses for the same purpose).
uint64_t siphash(const std::array<uint64_t, 2>& k, uint64_t m0, uint64_t m1) {
  uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL,
           v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
  auto round = [&] {
    v0 += v1;
    v1 = rotl(v1, 13) ^ v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = rotl(v1, 17) ^ v2;
    v2 = rotl(v2, 32);
  };
  for (uint64_t m : {m0, m1, uint64_t{16} << 56}) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

constexpr uint8_t kOptEnd = 0, kOptNop = 1, kOptMss = 2, kOptWs = 3, kOptSackOk = 4, kOptSack = 5,
                  kOptTs = 8;
constexpr uint8_t kMaxWscale = 14;  // RFC 7323 2.3
constexpr uint16_t kDefaultMss = 536;
constexpr uint16_t kMinMss = 64;  // a peer's smaller MSS is raised to this
constexpr uint32_t kMaxOooRanges = 16;
constexpr uint32_t kSackScoreboard = 16;            // SACKed ranges kept per connection (RFC 6675)
constexpr uint32_t kMaxSackBlocks = 4;              // in one segment: 40 option bytes
constexpr uint32_t kDupThresh = 3;                  // RFC 6675 2
constexpr int64_t kTlpMinNs = 10'000'000;           // the least PTO (as Linux)
constexpr uint8_t kMaxRewinds = 4;                  // recovery timer expiries per recovery
constexpr int64_t kClockGranularityNs = 1'000'000;  // G in RFC 6298

}  // namespace

const char* tcp_state_name(TcpState s) {
  static constexpr const char* kNames[] = {"free",      "syn_sent",  "syn_rcvd",   "established",
                                           "fin_wait1", "fin_wait2", "close_wait", "closing",
                                           "last_ack",  "time_wait", "closed"};
  return size_t(s) < std::size(kNames) ? kNames[size_t(s)] : "unknown";
}

// A parsed, checked segment.
struct TcpEngine::SegIn {
  uint32_t src = 0, dst = 0;  // network order
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t wnd = 0;  // as on the wire, unscaled
  const uint8_t* data = nullptr;
  uint32_t dlen = 0;
  bool has_mss = false, has_ws = false, sack_ok = false, has_ts = false;
  bool has_sack = false;  // SACK blocks: the first nsack of them in sack (host order)
  uint8_t nsack = 0;
  std::array<uint32_t, 2 * kMaxSackBlocks> sack{};
  uint16_t mss = 0;
  uint8_t ws = 0;
  uint32_t tsval = 0, tsecr = 0;
  bool has(uint8_t f) const { return (flags & f) != 0; }
  uint32_t seg_len() const { return dlen + has(kTcpSyn) + has(kTcpFin); }
};

struct TcpEngine::Conn {
  struct Range {
    uint32_t start, end;  // [start, end) received beyond rcv_nxt
    uint32_t stamp;       // recency, for the order of SACK blocks (RFC 2018 4)
  };
  TcpState state = TcpState::free;
  uint8_t gen = 0;
  bool app_owned = false;   // the application holds the ConnId
  bool app_closed = false;  // close() called: nothing more is read
  bool passive = false;
  bool fin_queued = false;  // shutdown(): FIN after the queued data
  bool fin_rcvd = false;
  bool ooo_fin = false;  // a FIN beyond rcv_nxt, applied when the data before it arrives
  bool ws_ok = false, ts_ok = false, sack_ok = false;
  bool in_recovery = false;
  bool rto_recovery = false;  // SACK recovery after an RTO (cwnd grows as in slow start)
  bool tlp_armed = false;     // rtx timer is the tail loss probe timer (RFC 8985 7)
  bool tlp_out = false;       // a probe is out, [tlp_seq, tlp_end): no other before an ACK
  bool rtt_timing = false;
  bool persist = false;  // rtx timer is the zero-window probe timer
  bool want_writable = false;
  bool deferred = false;   // on deferred_: output and a held ACK wait for flush()
  bool ack_held = false;   // an ACK is owed at flush() unless a segment carried it
  uint8_t ev_pending = 0;  // bit per TcpEventKind queued and not yet cleared
  uint8_t snd_wscale = 0, rcv_wscale = 0;
  uint8_t dupacks = 0;
  uint8_t unacked_segs = 0;  // in-order segments received since our last ACK
  uint8_t nooo = 0;
  uint16_t snd_mss = kDefaultMss;
  uint32_t laddr = 0, raddr = 0;
  uint16_t lport = 0, rport = 0;
  uint32_t live_pos = 0;
  // Send side. The ring holds [snd_buf_seq, snd_buf_seq + snd_queued); the FIN, once
  // queued, has sequence number snd_buf_seq + snd_queued.
  uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_max = 0;
  uint32_t snd_wnd = 0, max_snd_wnd = 0, snd_wl1 = 0, snd_wl2 = 0;
  uint32_t snd_buf_seq = 0, snd_queued = 0;
  uint32_t cwnd = 0, ssthresh = 0, recover = 0;
  // Receive side. The ring holds [rcv_read, rcv_nxt) in order plus the ranges of ooo.
  uint32_t irs = 0, rcv_nxt = 0, rcv_read = 0, rcv_adv = 0, last_ack_sent = 0;
  uint32_t ooo_fin_seq = 0, ooo_stamp = 0;
  uint32_t ts_recent = 0, ts_offset = 0;
  std::array<Range, kMaxOooRanges> ooo{};
  // The SACK scoreboard (RFC 6675): ranges [start, end) the peer SACKed, within
  // (SND.UNA, SND.MAX], disjoint, not adjacent, in ascending order.
  struct Sacked {
    uint32_t start, end;
  };
  std::array<Sacked, kSackScoreboard> sacked{};
  uint8_t nsacked = 0;
  // SACK recovery: below rxt_next every hole was sent again in this recovery (HighRxt + 1
  // of RFC 6675); rxt_last_at is when the last one was.
  uint32_t rxt_next = 0;
  int64_t rxt_last_at = 0;
  // In SACK recovery, everything unSACKed below lost_below is lost whatever is SACKed above:
  // after an RTO (up to recover), or before a tail loss probe that arrived.
  uint32_t lost_below = 0;
  uint32_t tlp_seq = 0, tlp_end = 0;
  uint8_t rewinds = 0;  // recovery timer expiries in this recovery
  // RTT (RFC 6298), ns. rto includes the backoff.
  int64_t srtt = 0, rttvar = 0, rto = 0;
  uint32_t rtt_seq = 0;
  int64_t rtt_start = 0;
  uint32_t retries = 0;
  int64_t rtx_una_at = 0;  // when SND.UNA was last sent again in recovery
  // Timers (INT64_MAX: not armed).
  int64_t rtx_at = INT64_MAX, delack_at = INT64_MAX, tw_at = INT64_MAX;
  int64_t ka_at = INT64_MAX;  // keep-alive: next check
  uint32_t ka_probes = 0;     // unanswered keep-alive probes
  uint8_t* sbuf = nullptr;
  uint8_t* rbuf = nullptr;

  uint32_t data_end() const { return snd_buf_seq + snd_queued; }
  uint32_t rcv_data_end() const { return rcv_nxt - (fin_rcvd ? 1 : 0); }
  int64_t earliest() const { return std::min({rtx_at, delack_at, tw_at, ka_at}); }
  bool synchronized() const {
    return state != TcpState::free && state != TcpState::syn_sent && state != TcpState::closed;
  }
};

// ---- setup ---------------------------------------------------------------------------

TcpEngine::TcpEngine(const TcpConfig& cfg, DropCounters* drops, TcpEmitFn emit, void* emit_ctx)
    : cfg_(cfg), drops_(drops), emit_(emit), emit_ctx_(emit_ctx) {
  cfg_.max_conns = std::clamp<uint32_t>(cfg_.max_conns, 1, 1u << 24);
  cfg_.ooo_ranges = uint8_t(std::clamp<uint32_t>(cfg_.ooo_ranges, 1, kMaxOooRanges));
  cfg_.mss = std::max<uint16_t>(cfg_.mss, kMinMss);
  snd_size_ = pow2_at_least(std::max<uint32_t>(cfg_.snd_buf, 1024));
  rcv_size_ = pow2_at_least(std::max<uint32_t>(cfg_.rcv_buf, 1024));
  rcv_wscale_ = 0;
  while (rcv_wscale_ < kMaxWscale && (rcv_size_ >> rcv_wscale_) > 65535) ++rcv_wscale_;
  bool zero = true;
  for (uint8_t b : cfg_.isn_key) zero = zero && b == 0;
  if (zero) {
    // Setup may make syscalls: a fresh secret per engine. On failure the key stays as
    // configured (ISNs still differ by the clock term).
    [[maybe_unused]] ssize_t r = getrandom(cfg_.isn_key.data(), cfg_.isn_key.size(), 0);
  }
  std::memcpy(key_.data(), cfg_.isn_key.data(), 16);
  conns_ = std::make_unique<Conn[]>(cfg_.max_conns);
  // Not zeroed: a ring is only read where it was written.
  bufs_.reset(new uint8_t[size_t(cfg_.max_conns) * (snd_size_ + rcv_size_)]);
  for (uint32_t i = 0; i < cfg_.max_conns; ++i) {
    conns_[i].sbuf = bufs_.get() + size_t(i) * (snd_size_ + rcv_size_);
    conns_[i].rbuf = conns_[i].sbuf + snd_size_;
  }
  table_.assign(pow2_at_least(cfg_.max_conns * 2), 0);
  table_mask_ = table_.size() - 1;
  free_.reserve(cfg_.max_conns);
  for (uint32_t i = cfg_.max_conns; i-- > 0;) free_.push_back(i);
  live_.reserve(cfg_.max_conns);
  deferred_.reserve(cfg_.max_conns);  // a connection is on it at most once
  // At most one pending event per kind per connection (Conn::ev_pending).
  ev_.resize(size_t(cfg_.max_conns) * 5 + 16);
}

TcpEngine::~TcpEngine() = default;

bool TcpEngine::listen(uint32_t addr_be, uint16_t port_be) {
  if (port_be == 0) return false;
  for (const Listener& l : listeners_)
    if (l.used && l.port_be == port_be && (l.addr_be == addr_be || !l.addr_be || !addr_be))
      return false;
  for (Listener& l : listeners_)
    if (!l.used) {
      l = {addr_be, port_be, true};
      return true;
    }
  return false;
}

void TcpEngine::stop_listening() {
  for (Listener& l : listeners_) l.used = false;
}

// ---- the connection table ------------------------------------------------------------

size_t TcpEngine::hash(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport) const {
  return size_t(siphash(key_, uint64_t(laddr) << 32 | raddr, uint64_t(lport) << 16 | rport));
}

TcpEngine::Conn* TcpEngine::find(uint32_t laddr, uint16_t lport, uint32_t raddr,
                                 uint16_t rport) const {
  for (size_t i = hash(laddr, lport, raddr, rport) & table_mask_;; i = (i + 1) & table_mask_) {
    const uint32_t v = table_[i];
    if (v == 0) return nullptr;
    Conn& c = conns_[v - 1];
    if (c.laddr == laddr && c.raddr == raddr && c.lport == lport && c.rport == rport) return &c;
  }
}

void TcpEngine::table_insert(uint32_t slot) {
  const Conn& c = conns_[slot];
  size_t i = hash(c.laddr, c.lport, c.raddr, c.rport) & table_mask_;
  while (table_[i] != 0) i = (i + 1) & table_mask_;
  table_[i] = slot + 1;
}

// Backward-shift deletion: the table stays free of tombstones, so a lookup never walks
// further than the cluster it hashes into (the table is at least twice max_conns).
void TcpEngine::table_erase(uint32_t slot) {
  const Conn& c = conns_[slot];
  size_t i = hash(c.laddr, c.lport, c.raddr, c.rport) & table_mask_;
  while (table_[i] != slot + 1) i = (i + 1) & table_mask_;
  for (size_t j = (i + 1) & table_mask_; table_[j] != 0; j = (j + 1) & table_mask_) {
    const Conn& o = conns_[table_[j] - 1];
    const size_t home = hash(o.laddr, o.lport, o.raddr, o.rport) & table_mask_;
    // Move o back to the hole unless its home lies cyclically in (i, j].
    if (((j - home) & table_mask_) >= ((j - i) & table_mask_)) {
      table_[i] = table_[j];
      i = j;
    }
  }
  table_[i] = 0;
}

TcpEngine::Conn* TcpEngine::alloc(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport) {
  if (free_.empty()) return nullptr;
  const uint32_t slot = free_.back();
  free_.pop_back();
  Conn& c = conns_[slot];
  const uint8_t gen = c.gen;
  uint8_t* sbuf = c.sbuf;
  uint8_t* rbuf = c.rbuf;
  c = Conn{};
  c.gen = gen;
  c.sbuf = sbuf;
  c.rbuf = rbuf;
  c.laddr = laddr;
  c.lport = lport;
  c.raddr = raddr;
  c.rport = rport;
  c.rto = cfg_.rto_initial_ns;
  c.live_pos = uint32_t(live_.size());
  live_.push_back(slot);
  table_insert(slot);
  return &c;
}

void TcpEngine::release(Conn& c) {
  const uint32_t slot = uint32_t(&c - conns_.get());
  if (c.state == TcpState::syn_rcvd && c.passive) --half_open_;
  table_erase(slot);
  const uint32_t last = live_.back();
  live_[c.live_pos] = last;
  conns_[last].live_pos = c.live_pos;
  live_.pop_back();
  c.state = TcpState::free;
  c.gen = uint8_t(c.gen + 1);
  c.app_owned = false;
  c.deferred = c.ack_held = false;  // a stale entry on deferred_ is skipped by flush()
  free_.push_back(slot);
}

TcpEngine::Conn* TcpEngine::lookup(ConnId id) const {
  const uint32_t slot = conn_slot(id);
  if (id == kNoConn || slot >= cfg_.max_conns) return nullptr;
  Conn& c = conns_[slot];
  if (c.gen != uint8_t(id >> 24) || c.state == TcpState::free || !c.app_owned) return nullptr;
  return &c;
}

ConnId TcpEngine::id_of(const Conn& c) const {
  return uint32_t(&c - conns_.get()) | uint32_t(c.gen) << 24;
}

// RFC 6528: ISN = M + F(4-tuple, secret), M a 4 us clock.
uint32_t TcpEngine::make_isn(const Conn& c, int64_t now) const {
  const uint64_t f = siphash(key_, uint64_t(c.laddr) << 32 | c.raddr,
                             (uint64_t(c.lport) << 16 | c.rport) ^ 0x5eed);
  return uint32_t(f) + uint32_t(now / 4000);
}

// ---- output --------------------------------------------------------------------------

uint32_t TcpEngine::rcv_window(const Conn& c) const {
  return c.rcv_read + rcv_size_ - c.rcv_nxt;
}

uint32_t TcpEngine::effective_mss(const Conn& c) const {
  return uint32_t(std::min(c.snd_mss, cfg_.mss)) - (c.ts_ok ? 12 : 0);
}

namespace {
// One's-complement sum of a payload piece that starts at byte offset `at` of the segment
// (an odd offset swaps its bytes, RFC 1071).
uint64_t piece_sum(const uint8_t* p, uint32_t n, uint32_t at) {
  if (n == 0) return 0;
  const uint16_t s = csum_fold_raw(csum_add(p, n));
  return (at & 1) ? __builtin_bswap16(s) : s;
}
}  // namespace

void TcpEngine::send_segment(Conn& c, uint32_t seq, uint32_t len, uint8_t flags, int64_t now) {
  uint8_t* h = hdr_;
  uint8_t* o = h + kTcpHdrLen;
  const bool syn = flags & kTcpSyn;
  // Options. On a SYN we offer what the config allows; on a SYN-ACK only what the peer's
  // SYN offered (c.*_ok, set from it); later, what was negotiated.
  const bool offer = c.state == TcpState::syn_sent;
  const bool ts = (flags & kTcpRst) == 0 && (offer ? cfg_.timestamps : c.ts_ok);
  const uint32_t tsval = uint32_t(now / 1'000'000) + c.ts_offset;
  auto put_ts = [&](uint32_t ecr) {
    o[0] = kOptTs;
    o[1] = 10;
    store_be32(o + 2, htonl(tsval));
    store_be32(o + 6, htonl(ecr));
    o += 10;
  };
  if (syn) {
    const bool sack = offer ? cfg_.sack : c.sack_ok;
    const bool ws = offer ? cfg_.window_scaling : c.ws_ok;
    o[0] = kOptMss;
    o[1] = 4;
    store16(o + 2, cfg_.mss);
    o += 4;
    if (sack && ts) {
      o[0] = kOptSackOk;
      o[1] = 2;
      o += 2;
    } else {
      o[0] = o[1] = kOptNop;
      if (sack) o[2] = kOptSackOk, o[3] = 2;
      o += sack ? 4 : (ts ? 2 : 0);
    }
    if (ts) put_ts(offer ? 0 : c.ts_recent);
    if (ws) {
      o[0] = kOptNop;
      o[1] = kOptWs;
      o[2] = 3;
      o[3] = rcv_wscale_;
      o += 4;
    }
  } else {
    if (ts) {
      o[0] = o[1] = kOptNop;
      o += 2;
      put_ts(c.ts_recent);
    }
    if (c.sack_ok && c.nooo && (flags & kTcpAck) && !(flags & kTcpRst)) {
      // Most recent range first (RFC 2018 4); 40 option bytes leave room for 3 blocks
      // beside a timestamp, 4 without.
      const uint32_t max_blocks = ts ? 3 : 4;
      std::array<uint8_t, kMaxOooRanges> order;
      for (uint8_t i = 0; i < c.nooo; ++i) order[i] = i;
      std::sort(order.begin(), order.begin() + c.nooo,
                [&](uint8_t a, uint8_t b) { return c.ooo[a].stamp > c.ooo[b].stamp; });
      const uint32_t n = std::min<uint32_t>(c.nooo, max_blocks);
      o[0] = o[1] = kOptNop;
      o[2] = kOptSack;
      o[3] = uint8_t(2 + 8 * n);
      o += 4;
      for (uint32_t i = 0; i < n; ++i, o += 8) {
        store_be32(o, htonl(c.ooo[order[i]].start));
        store_be32(o + 4, htonl(c.ooo[order[i]].end));
      }
    }
  }
  const uint32_t hlen = uint32_t(o - h);
  uint32_t wnd = rcv_window(c);
  if (syn || !c.ws_ok)
    wnd = std::min<uint32_t>(wnd, 65535);
  else
    wnd = std::min<uint32_t>(wnd >> c.rcv_wscale, 65535);
  store_be16(h, c.lport);
  store_be16(h + 2, c.rport);
  store_be32(h + 4, htonl(seq));
  store_be32(h + 8, htonl((flags & kTcpAck) ? c.rcv_nxt : 0));
  h[12] = uint8_t((hlen / 4) << 4);
  h[13] = flags;
  store16(h + 14, uint16_t(wnd));
  store16(h + 16, 0);
  store16(h + 18, 0);
  TcpSegmentOut s;
  s.src_be = c.laddr;
  s.dst_be = c.raddr;
  s.hdr = h;
  s.hdr_len = hlen;
  if (len) {
    const uint32_t off = (seq - c.iss - 1) & (snd_size_ - 1);
    s.p1 = c.sbuf + off;
    s.n1 = std::min(len, snd_size_ - off);
    s.p2 = c.sbuf;
    s.n2 = len - s.n1;
  }
  uint64_t sum = pseudo_header_sum(s.src_be, s.dst_be, kProtoTcp, s.len()) + csum_add(h, hlen) +
                 piece_sum(s.p1, s.n1, 0) + piece_sum(s.p2, s.n2, s.n1);
  store16(h + 16, csum_fold(sum));
  if (flags & kTcpAck) {
    c.last_ack_sent = c.rcv_nxt;
    c.rcv_adv = c.rcv_nxt + (syn || !c.ws_ok ? wnd : wnd << c.rcv_wscale);
    c.delack_at = INT64_MAX;
    c.unacked_segs = 0;
    c.ack_held = false;
  }
  ++stats_.segs_out;
  emit_(emit_ctx_, s);
}

void TcpEngine::send_ack(Conn& c, int64_t now) {
  // SND.MAX, not SND.NXT: after a timeout rewinds SND.NXT (go back N) a sequence number
  // below the peer's RCV.NXT would make the ACK unacceptable to it (3.10.7.4).
  send_segment(c, c.snd_max, 0, kTcpAck, now);
}

// RFC 5961 3.2/4.2/5.2, at most challenge_ack_limit per second for the whole engine (RFC
// 5961 7): a flood of forged RSTs or SYNs then costs a bounded number of ACKs.
void TcpEngine::send_challenge_ack(Conn& c, int64_t now) {
  if (now - challenge_window_start_ >= 1'000'000'000) {
    challenge_window_start_ = now;
    challenge_sent_ = 0;
  }
  if (challenge_sent_ >= cfg_.challenge_ack_limit) {
    ++stats_.challenge_acks_suppressed;
    return;
  }
  ++challenge_sent_;
  ++stats_.challenge_acks;
  send_ack(c, now);
}

// An RST for a segment that has no connection (3.10.7.1) or is unacceptable to one.
void TcpEngine::send_rst_for(const SegIn& s) {
  if (s.has(kTcpRst)) return;
  uint8_t* h = hdr_;
  const bool ack = s.has(kTcpAck);
  store_be16(h, s.dport);
  store_be16(h + 2, s.sport);
  store_be32(h + 4, htonl(ack ? s.ack : 0));
  store_be32(h + 8, htonl(ack ? 0 : s.seq + s.seg_len()));
  h[12] = 5 << 4;
  h[13] = ack ? kTcpRst : kTcpRst | kTcpAck;
  store16(h + 14, 0);
  store16(h + 16, 0);
  store16(h + 18, 0);
  store16(h + 16, csum_fold(pseudo_header_sum(s.dst, s.src, kProtoTcp, kTcpHdrLen) +
                            csum_add(h, kTcpHdrLen)));
  TcpSegmentOut o;
  o.src_be = s.dst;
  o.dst_be = s.src;
  o.hdr = h;
  o.hdr_len = kTcpHdrLen;
  ++stats_.rst_sent;
  ++stats_.segs_out;
  emit_(emit_ctx_, o);
}

void TcpEngine::arm_rto(Conn& c, int64_t now) {
  c.rtx_at = now + c.rto;
  c.persist = c.tlp_armed = false;
}

// The RTO, or before it a tail loss probe (RFC 8985 7.2): with SACK, outside recovery, SRTT
// known, no probe out and all in flight within the peer's window, after PTO = max(2 SRTT,
// 10 ms), plus the peer's delayed ACK (taken as ours) when one segment is out, if that
// comes before the RTO.
void TcpEngine::arm_timer(Conn& c, int64_t now) {
  arm_rto(c, now);
  // Not into a window that shrank below what is out (the zero-window probe's byte).
  if (!cfg_.tail_loss_probe || !c.sack_ok || c.in_recovery || !c.srtt || c.tlp_out ||
      c.snd_una == c.snd_max || c.snd_wnd < c.snd_max - c.snd_una)
    return;
  int64_t pto = std::max(2 * c.srtt, kTlpMinNs);
  if (c.snd_max - c.snd_una <= effective_mss(c)) pto += cfg_.delack_ns;
  if (pto >= c.rto) return;
  c.rtx_at = now + pto;
  c.tlp_armed = true;
}

// The probe (RFC 8985 7.3): one new segment if the windows allow one more, else the last
// one sent again; its ACK shows a tail loss that no duplicate ACK would have (process_ack).
// Then the RTO as usual.
void TcpEngine::tail_loss_probe(Conn& c, int64_t now) {
  // What is unSACKed below SACKed data was sent before data that arrived, a PTO or more
  // ago: lost (RACK's rule, RFC 8985 6.2), which is what the probe would show. So recovery
  // starts now: too little followed the loss for IsLost (two segments, say).
  const bool sacked = c.nsacked && seq_geq(c.snd_una, c.recover);
  if (!c.in_recovery && sacked) {
    enter_recovery(c, now);
    c.lost_below = c.sacked[c.nsacked - 1].start;
    output(c, now);
    return arm_rto(c, now);
  }
  if (c.in_recovery) {  // the recovery timer (arm_recovery_timer)
    const int64_t wait = std::max(c.srtt + c.srtt / 4, kClockGranularityNs);
    if (now - c.rxt_last_at > wait) {
      // Every retransmission is older than an RTT and SND.UNA still not ACKed: the holes
      // below the highest SACK are lost again (RACK's rule); nothing SACKed: SND.UNA's
      // segment goes again, as a probe would.
      ++c.rewinds;
      ++stats_.lost_retransmits;
      if (c.nsacked) {
        const uint32_t top = c.sacked[c.nsacked - 1].start;
        if (seq_gt(top, c.lost_below)) c.lost_below = top;
        c.rxt_next = c.snd_una;
        output(c, now);
      } else {
        retransmit_una(c, now);
        c.rtx_una_at = c.rxt_last_at = now;
      }
    }
    return arm_rto(c, now);
  }
  ++stats_.tlp_probes;
  c.tlp_out = true;
  const uint32_t mss = effective_mss(c), end = c.data_end();
  const uint32_t sent = c.snd_nxt - c.snd_una;
  if (c.snd_nxt == c.snd_max && seq_lt(c.snd_nxt, end) &&
      c.snd_wnd >= sent + std::min(mss, end - c.snd_nxt)) {
    c.tlp_seq = c.snd_max;
    const uint32_t cwnd = c.cwnd;
    c.cwnd = std::max(cwnd, sent + mss);
    output(c, now);
    c.cwnd = cwnd;
  } else {
    const uint32_t top = c.fin_queued && seq_gt(c.snd_max, end) ? end : c.snd_max;
    const uint32_t len = std::min(top - c.snd_una, mss);
    c.tlp_seq = top - len;
    send_again(c, c.tlp_seq, len, now);
  }
  c.tlp_end = c.snd_max;
  arm_rto(c, now);
}

// In SACK recovery, before the RTO: a retransmission lost when nothing sent after it is left
// to bring the SACKs that sack_lost_retransmits() reads. max(2 SRTT, 10 ms) after the last
// retransmission (tail_loss_probe() then finds every one older than 1.25 SRTT), the holes
// below the highest SACK count as lost and NextSeg starts again from SND.UNA, or SND.UNA's
// segment goes again when nothing is SACKed; at most kMaxRewinds times per recovery, then
// the RTO decides (and counts towards the abort).
void TcpEngine::arm_recovery_timer(Conn& c, int64_t now) {
  if (!cfg_.tail_loss_probe || !c.srtt || c.rewinds >= kMaxRewinds || c.rtx_at == INT64_MAX ||
      c.persist)
    return;
  const int64_t at = std::max(c.rxt_last_at + std::max(2 * c.srtt, kTlpMinNs), now + 1);
  if (at < c.rtx_at) {
    c.rtx_at = at;
    c.tlp_armed = true;
  }
}

// Sends what the send and congestion windows allow from snd_nxt: new data, data again after
// a timeout without SACK (snd_nxt < snd_max), and the FIN once every byte before it is sent. In
// SACK recovery (RFC 6675 5 step C) the congestion window is measured against pipe, not SND.NXT -
// SND.UNA, and NextSeg's order holds: lost holes first, then new data, then (nothing new to send)
// holes not yet known lost.
void TcpEngine::output(Conn& c, int64_t now) {
  switch (c.state) {
    case TcpState::established:
    case TcpState::close_wait:
    case TcpState::fin_wait1:
    case TcpState::closing:
    case TcpState::last_ack:
      break;
    default:
      return;
  }
  const uint32_t mss = effective_mss(c);
  const bool sack_recovery = c.in_recovery && c.sack_ok;
  uint32_t pipe = sack_recovery ? sack_pipe(c) : 0;
  auto cwnd_room = [&] { return c.cwnd > pipe && c.cwnd - pipe >= mss; };
  if (sack_recovery) {  // NextSeg rule 1: lost holes above HighRxt
    uint32_t seq, len;
    while (cwnd_room() && sack_next(c, true, &seq, &len) && send_again(c, seq, len, now)) {
      c.rxt_next = seq + len;
      pipe += len;
      ++stats_.sack_retransmits;
    }
  }
  bool rwnd_limited = false;
  for (;;) {
    const uint32_t end = c.data_end();
    const uint32_t flight = sack_recovery ? pipe : c.snd_nxt - c.snd_una;
    const uint32_t sent = c.snd_nxt - c.snd_una;
    const uint32_t rwnd = c.snd_wnd > sent ? c.snd_wnd - sent : 0;
    const uint32_t usable = std::min(c.cwnd > flight ? c.cwnd - flight : 0, rwnd);
    const uint32_t avail = seq_lt(c.snd_nxt, end) ? end - c.snd_nxt : 0;
    rwnd_limited = avail > 0 && rwnd < std::min(avail, mss);
    const uint32_t len = std::min({avail, usable, mss});
    const bool fin = c.fin_queued && c.snd_nxt + len == end && seq_leq(c.snd_nxt, end) &&
                     (len > 0 || avail == 0);
    if (len == 0 && !fin) break;
    // Sender-side silly window avoidance (3.8.6.2.1), Nagle off: a short segment only when
    // it carries everything queued or half the largest window the peer offered.
    if (len < mss && len < avail && len < c.max_snd_wnd / 2) break;
    if (seq_lt(c.snd_nxt, c.snd_max)) {
      ++stats_.retransmits;
      c.rtt_timing = false;  // Karn
    } else if (!c.rtt_timing && len > 0) {
      c.rtt_timing = true;
      c.rtt_seq = c.snd_nxt + len;
      c.rtt_start = now;
    }
    send_segment(c, c.snd_nxt, len,
                 uint8_t(kTcpAck | (fin ? kTcpFin : 0) | (len && len == avail ? kTcpPsh : 0)), now);
    c.snd_nxt += len + (fin ? 1 : 0);
    if (seq_gt(c.snd_nxt, c.snd_max)) c.snd_max = c.snd_nxt;
    pipe += len + (fin ? 1 : 0);
    if (c.rtx_at == INT64_MAX || c.persist || c.tlp_armed) arm_timer(c, now);
    if (fin) break;
  }
  // NextSeg rule 3: nothing new may go, so unSACKed data below the highest SACK, before the
  // scoreboard calls it lost (saves an RTO when too little follows a loss).
  if (sack_recovery && (rwnd_limited || !seq_lt(c.snd_nxt, c.data_end()))) {
    uint32_t seq, len;
    while (cwnd_room() && sack_next(c, false, &seq, &len) && send_again(c, seq, len, now)) {
      c.rxt_next = seq + len;
      pipe += len;
      ++stats_.sack_retransmits;
    }
  }
  // Zero window with data waiting and nothing in flight: the probe timer (3.8.6.1).
  if (c.snd_una == c.snd_max && c.snd_wnd == 0 && seq_lt(c.snd_nxt, c.data_end()) &&
      c.rtx_at == INT64_MAX) {
    c.rtx_at = now + c.rto;
    c.persist = true;
    c.tlp_armed = false;
  }
  if (sack_recovery) arm_recovery_timer(c, now);
  set_deadline(c);
}

// The first unacknowledged segment again (fast retransmit, RTO, partial ACK), up to the
// first SACKed range; returns the sequence number after it.
uint32_t TcpEngine::retransmit_una(Conn& c, int64_t now) {
  const uint32_t end = c.data_end();
  // Within the offered window; a zero window gets a one-byte probe.
  uint32_t len = seq_lt(c.snd_una, end)
                     ? std::min({end - c.snd_una, effective_mss(c), std::max(c.snd_wnd, 1u)})
                     : 0;
  if (c.nsacked) len = std::min(len, c.sacked[0].start - c.snd_una);
  const bool fin =
      c.fin_queued && c.snd_una + len == end && seq_gt(c.snd_max, end);  // FIN was sent
  if (len == 0 && !fin) return c.snd_una;
  ++stats_.retransmits;
  c.rtt_timing = false;  // Karn
  send_segment(c, c.snd_una, len, uint8_t(kTcpAck | (fin ? kTcpFin : 0)), now);
  const uint32_t next = c.snd_una + len + (fin ? 1 : 0);
  if (seq_lt(c.snd_nxt, next)) c.snd_nxt = next;
  if (seq_lt(c.snd_max, next)) c.snd_max = next;  // more than the one-byte probe it repeats
  return next;
}

// [seq, seq + len) again, within what was sent (SACK recovery); the FIN with the last byte
// if it was sent. False if there was nothing to send.
bool TcpEngine::send_again(Conn& c, uint32_t seq, uint32_t len, int64_t now) {
  const uint32_t end = c.data_end();
  const uint32_t n = seq_lt(seq, end) ? std::min(len, end - seq) : 0;
  const bool fin =
      c.fin_queued && seq + n == end && seq_gt(c.snd_max, end) && seq_lt(seq, c.snd_max);
  if (n == 0 && !fin) return false;
  ++stats_.retransmits;
  c.rtt_timing = false;  // Karn
  send_segment(c, seq, n, uint8_t(kTcpAck | (fin ? kTcpFin : 0)), now);
  if (seq == c.snd_una) c.rtx_una_at = now;
  c.rxt_last_at = now;
  return true;
}

// Fast retransmit (RFC 5681 3.2 steps 2-3 with RFC 6582; RFC 6675 5 step 4): ssthresh is
// half the flight, SND.UNA's segment goes again; NewReno inflates cwnd by the three
// duplicates, SACK recovery sets cwnd = ssthresh and lets pipe decide what follows.
void TcpEngine::enter_recovery(Conn& c, int64_t now) {
  const uint32_t mss = effective_mss(c);
  const uint32_t flight = c.snd_max - c.snd_una;
  c.ssthresh = std::max(flight / 2, 2 * mss);
  c.recover = c.snd_max;
  c.in_recovery = true;
  c.rto_recovery = c.tlp_out = false;
  c.lost_below = c.snd_una;
  c.rewinds = 0;
  ++stats_.fast_retransmits;
  c.rxt_next = retransmit_una(c, now);
  c.rtx_una_at = c.rxt_last_at = now;
  c.cwnd = c.sack_ok ? c.ssthresh : c.ssthresh + kDupThresh * mss;
}

void TcpEngine::set_deadline(Conn& c) {
  next_deadline_ = std::min(next_deadline_, c.earliest());
}

void TcpEngine::emit_event(Conn& c, TcpEventKind k) {
  const uint8_t bit = uint8_t(1u << unsigned(k));
  if (c.ev_pending & bit) return;
  if (ev_len_ == ev_.size()) {
    ++stats_.events_lost;
    return;
  }
  c.ev_pending |= bit;
  ev_[ev_len_++] = {k, id_of(c)};
}

std::span<const TcpEvent> TcpEngine::events() const {
  return {ev_.data(), ev_len_};
}

void TcpEngine::clear_events() {
  for (size_t i = 0; i < ev_len_; ++i) {
    Conn& c = conns_[conn_slot(ev_[i].conn)];
    if (c.gen == uint8_t(ev_[i].conn >> 24)) c.ev_pending = 0;
  }
  ev_len_ = 0;
}

// ---- input ---------------------------------------------------------------------------

void TcpEngine::input(uint32_t src_be, uint32_t dst_be, const uint8_t* p, uint32_t len, int64_t now,
                      bool csum_ok) {
  ++stats_.segs_in;
  if (len < kTcpHdrLen) return drop(DropReason::tcp_too_short);
  const uint32_t hlen = uint32_t(p[12] >> 4) * 4;
  if (hlen < kTcpHdrLen || hlen > len) return drop(DropReason::tcp_bad_offset);
  if (!csum_ok &&
      csum_fold(pseudo_header_sum(src_be, dst_be, kProtoTcp, len) + csum_add(p, len)) != 0)
    return drop(DropReason::tcp_bad_checksum);
  SegIn s;
  s.src = src_be;
  s.dst = dst_be;
  s.sport = load_be16(p);
  s.dport = load_be16(p + 2);
  s.seq = load32(p + 4);
  s.ack = load32(p + 8);
  s.flags = p[13] & 0x3F;
  s.wnd = load16(p + 14);
  s.data = p + hlen;
  s.dlen = len - hlen;
  // Options (3.2): kinds 0 and 1 are one byte, the rest kind-length-value; a known kind
  // with a wrong length is ignored, as Linux does; a length that breaks the list drops it.
  for (uint32_t i = kTcpHdrLen; i < hlen;) {
    const uint8_t kind = p[i];
    if (kind == kOptEnd) break;
    if (kind == kOptNop) {
      ++i;
      continue;
    }
    if (i + 1 >= hlen || p[i + 1] < 2 || i + p[i + 1] > hlen)
      return drop(DropReason::tcp_bad_options);
    const uint8_t olen = p[i + 1];
    const uint8_t* v = p + i + 2;
    if (kind == kOptMss && olen == 4) {
      s.has_mss = true;
      s.mss = load16(v);
    } else if (kind == kOptWs && olen == 3) {
      s.has_ws = true;
      s.ws = std::min(v[0], kMaxWscale);
    } else if (kind == kOptSackOk && olen == 2) {
      s.sack_ok = true;
    } else if (kind == kOptSack && olen >= 10 && (olen - 2) % 8 == 0) {
      s.has_sack = true;
      s.nsack = uint8_t(std::min<uint32_t>((olen - 2) / 8, kMaxSackBlocks));
      for (uint32_t k = 0; k < 2u * s.nsack; ++k) s.sack[k] = load32(v + 4 * k);
    } else if (kind == kOptTs && olen == 10) {
      s.has_ts = true;
      s.tsval = load32(v);
      s.tsecr = load32(v + 4);
    }
    i += olen;
  }
  const bool syn = s.has(kTcpSyn);
  if ((syn && s.has(kTcpFin)) || (syn && s.has(kTcpRst)) ||
      !(s.flags & (kTcpSyn | kTcpAck | kTcpRst)) || s.sport == 0 || s.dport == 0)
    return drop(DropReason::tcp_bad_flags);

  Conn* c = find(dst_be, s.dport, src_be, s.sport);
  // A SYN for a connection in TIME_WAIT starts a new one if it is above the old sequence
  // space (RFC 9293 3.10.7.4 note, RFC 6191).
  if (c && c->state == TcpState::time_wait && syn && !s.has(kTcpAck) && seq_gt(s.seq, c->rcv_nxt) &&
      !c->app_owned) {
    release(*c);
    c = nullptr;
  }
  if (c && c->state != TcpState::closed) {
    if (c->state == TcpState::syn_sent)
      on_syn_sent(*c, s, now);
    else
      on_segment(*c, s, now);
    return;
  }
  // A closed connection whose slot the application still holds: the segment (typically
  // the peer's RST answering data we sent before its RST arrived) belongs to it, not to a
  // listener, and gets CLOSED's answer.
  if (c) {
    send_rst_for(s);
    return drop(DropReason::tcp_conn_closed);
  }
  for (const Listener& l : listeners_)
    if (l.used && l.port_be == s.dport && (l.addr_be == 0 || l.addr_be == dst_be))
      return on_listen(s, now);
  // 3.10.7.1: CLOSED. An RST is dropped; anything else is answered with one.
  send_rst_for(s);
  drop(DropReason::tcp_no_listener);
}

void TcpEngine::apply_options(Conn& c, const SegIn& s) {
  c.snd_mss = s.has_mss ? std::max(s.mss, kMinMss) : kDefaultMss;
  c.ws_ok = cfg_.window_scaling && s.has_ws;
  c.snd_wscale = c.ws_ok ? s.ws : 0;
  c.rcv_wscale = c.ws_ok ? rcv_wscale_ : 0;
  c.ts_ok = cfg_.timestamps && s.has_ts;
  if (c.ts_ok) c.ts_recent = s.tsval;
  c.sack_ok = cfg_.sack && s.sack_ok;
  c.irs = s.seq;
  c.rcv_nxt = s.seq + 1;
  c.rcv_read = c.rcv_nxt;
  c.snd_wnd = s.wnd;  // never scaled in a SYN (RFC 7323 2.2)
  c.max_snd_wnd = c.snd_wnd;
  c.snd_wl1 = s.seq;
}

// 3.10.7.2: LISTEN.
void TcpEngine::on_listen(const SegIn& s, int64_t now) {
  if (s.has(kTcpRst)) return drop(DropReason::tcp_listen_bad);
  if (s.has(kTcpAck)) {
    if (!s.has(kTcpSyn) && cookie_ack(s, now)) return;
    send_rst_for(s);
    return drop(DropReason::tcp_listen_bad);
  }
  if (!s.has(kTcpSyn)) return drop(DropReason::tcp_listen_bad);
  const uint32_t backlog = cfg_.syn_backlog ? cfg_.syn_backlog : (cfg_.max_conns + 1) / 2;
  if (free_.empty() || half_open_ >= backlog) {
    if (!cfg_.syn_cookies) return drop(DropReason::tcp_table_full);
    return send_cookie(s, now);
  }
  Conn* cp = alloc(s.dst, s.dport, s.src, s.sport);
  Conn& c = *cp;
  c.passive = true;
  c.state = TcpState::syn_rcvd;
  ++half_open_;
  apply_options(c, s);
  // Data on the SYN is not kept (the peer sends it again once we ACK only the SYN).
  send_syn(c, kTcpSyn | kTcpAck, now);
}

// Our ISN (RFC 6528), then our SYN or SYN-ACK, timed for the first RTT sample.
void TcpEngine::send_syn(Conn& c, uint8_t flags, int64_t now) {
  c.iss = make_isn(c, now);
  c.ts_offset = uint32_t(c.iss * 2654435761u);
  c.snd_una = c.iss;
  c.snd_buf_seq = c.iss + 1;
  c.recover = c.iss;
  send_segment(c, c.iss, 0, flags, now);
  c.snd_nxt = c.snd_max = c.iss + 1;
  c.rtt_timing = true;
  c.rtt_seq = c.snd_nxt;
  c.rtt_start = now;
  arm_rto(c, now);
  set_deadline(c);
}

// ---- SYN cookies ----------------------------------------------------------------------
// With the half-open connections at syn_backlog (or the table full), a SYN is answered
// statelessly: our ISN is the cookie (RFC 4987 3.6)
//   bits 31..27  t mod 32, t = now / 64 s
//   bits 26..24  index of the peer's MSS in kCookieMss (rounded down)
//   bits 23..0   SipHash of the 4-tuple, the peer's ISN and t
// and the returning ACK (ACK number = cookie + 1) recreates the connection if the hash
// matches for the current or previous t. Such a connection has no window scaling,
// timestamps or SACK: the SYN-ACK offers only MSS, as nothing else can be remembered.

namespace {
constexpr uint16_t kCookieMss[8] = {536, 1200, 1360, 1440, 1452, 1460, 4312, 8960};
constexpr int64_t kCookiePeriodNs = 64'000'000'000;
}  // namespace

uint32_t TcpEngine::cookie_hash(const SegIn& s, uint32_t peer_isn, uint32_t t) const {
  const uint64_t m0 = (uint64_t(s.dst) << 32 | s.src) ^ (uint64_t(t) * 0x9E3779B97F4A7C15ull);
  const uint64_t m1 = uint64_t(s.dport) << 48 | uint64_t(s.sport) << 32 | peer_isn;
  return uint32_t(siphash(key_, m0, m1)) & 0xFFFFFF;
}

void TcpEngine::send_cookie(const SegIn& s, int64_t now) {
  const uint32_t t = uint32_t(now / kCookiePeriodNs);
  const uint16_t peer_mss = s.has_mss ? s.mss : kDefaultMss;
  uint32_t idx = 0;
  while (idx + 1 < std::size(kCookieMss) && kCookieMss[idx + 1] <= peer_mss) ++idx;
  Conn tmp;  // only what send_segment reads for a SYN-ACK without options beyond MSS
  tmp.state = TcpState::syn_rcvd;
  tmp.laddr = s.dst;
  tmp.lport = s.dport;
  tmp.raddr = s.src;
  tmp.rport = s.sport;
  tmp.irs = s.seq;
  tmp.rcv_nxt = tmp.rcv_read = s.seq + 1;
  tmp.iss = (t & 31) << 27 | idx << 24 | cookie_hash(s, s.seq, t);
  send_segment(tmp, tmp.iss, 0, kTcpSyn | kTcpAck, now);
  last_cookie_ns_ = now;
  ++stats_.syn_cookies_sent;
}

// An ACK to a listener: the third segment of a cookie handshake? Then the connection is
// made, established at once, and the segment processed on it. False if not a valid cookie.
bool TcpEngine::cookie_ack(const SegIn& s, int64_t now) {
  if (!cfg_.syn_cookies || now - last_cookie_ns_ > 2 * kCookiePeriodNs) return false;
  const uint32_t cookie = s.ack - 1, peer_isn = s.seq - 1;
  const uint32_t t_now = uint32_t(now / kCookiePeriodNs);
  bool ok = false;
  for (uint32_t t : {t_now, t_now - 1})
    ok = ok || ((t & 31) == cookie >> 27 && cookie_hash(s, peer_isn, t) == (cookie & 0xFFFFFF));
  if (!ok) return false;
  Conn* cp = alloc(s.dst, s.dport, s.src, s.sport);
  if (!cp) {
    drop(DropReason::tcp_table_full);
    return true;
  }
  Conn& c = *cp;
  c.passive = true;
  c.snd_mss = kCookieMss[(cookie >> 24) & 7];
  c.irs = peer_isn;
  c.rcv_nxt = c.rcv_read = s.seq;
  c.iss = cookie;
  c.snd_una = c.snd_nxt = c.snd_max = s.ack;
  c.snd_buf_seq = s.ack;
  c.recover = cookie;
  c.snd_wnd = c.max_snd_wnd = s.wnd;
  c.snd_wl1 = s.seq;
  c.snd_wl2 = s.ack;
  ++stats_.syn_cookies_accepted;
  establish(c, now);
  on_segment(c, s, now);  // its data or FIN, if any
  return true;
}

ConnId TcpEngine::connect(uint32_t local_be, uint16_t lport_be, uint32_t remote_be,
                          uint16_t rport_be, int64_t now) {
  if (lport_be == 0 || rport_be == 0 || find(local_be, lport_be, remote_be, rport_be)) {
    return kNoConn;
  }
  Conn* cp = alloc(local_be, lport_be, remote_be, rport_be);
  if (!cp) {
    drop(DropReason::tcp_table_full);
    return kNoConn;
  }
  Conn& c = *cp;
  c.state = TcpState::syn_sent;
  c.app_owned = true;
  send_syn(c, kTcpSyn, now);
  return id_of(c);
}

void TcpEngine::rtt_sample(Conn& c, int64_t r) {
  r = std::max<int64_t>(r, 0);
  if (c.srtt == 0) {  // RFC 6298 2.2
    c.srtt = std::max<int64_t>(r, 1);
    c.rttvar = r / 2;
  } else {  // 2.3, alpha 1/8, beta 1/4
    const int64_t d = c.srtt > r ? c.srtt - r : r - c.srtt;
    c.rttvar = (3 * c.rttvar + d) / 4;
    c.srtt = std::max<int64_t>((7 * c.srtt + r) / 8, 1);
  }
  c.rto = std::clamp(c.srtt + std::max(kClockGranularityNs, 4 * c.rttvar), cfg_.rto_min_ns,
                     cfg_.rto_max_ns);
}

void TcpEngine::establish(Conn& c, int64_t now) {
  if (c.state == TcpState::syn_rcvd && c.passive) --half_open_;
  c.state = TcpState::established;
  const uint32_t mss = effective_mss(c);
  c.cwnd = std::max<uint32_t>(cfg_.initial_cwnd_segs, 1) * mss;
  c.ssthresh = 0x7FFFFFFF;
  if (c.passive) {
    ++stats_.conns_accepted;
    c.app_owned = true;
    emit_event(c, TcpEventKind::accepted);
  } else {
    ++stats_.conns_connected;
    // An active open the application closed in SYN-RECEIVED (simultaneous open) is not
    // handed back to it: the engine sends the FIN and frees it.
    if (!c.app_closed) emit_event(c, TcpEventKind::connected);
  }
  if (c.fin_queued) c.state = TcpState::fin_wait1;
  if (cfg_.keepalive_idle_ns > 0) c.ka_at = now + cfg_.keepalive_idle_ns;
}

// 3.10.7.3: SYN-SENT.
void TcpEngine::on_syn_sent(Conn& c, const SegIn& s, int64_t now) {
  if (s.has(kTcpAck) && (seq_leq(s.ack, c.iss) || seq_gt(s.ack, c.snd_max))) {
    send_rst_for(s);
    return drop(DropReason::tcp_bad_ack);
  }
  if (s.has(kTcpRst)) {
    if (!s.has(kTcpAck)) return drop(DropReason::tcp_rst_out_of_window);
    return reset_conn(c, true);  // refused
  }
  if (!s.has(kTcpSyn)) return drop(DropReason::tcp_bad_flags);
  apply_options(c, s);
  if (!s.has(kTcpAck)) {  // simultaneous open: SYN-RECEIVED, our SYN again with the ACK
    c.state = TcpState::syn_rcvd;
    send_segment(c, c.iss, 0, kTcpSyn | kTcpAck, now);
    set_deadline(c);
    return;
  }
  c.snd_una = s.ack;
  c.snd_wl2 = s.ack;
  if (c.rtt_timing) rtt_sample(c, now - c.rtt_start);
  c.rtt_timing = false;
  c.retries = 0;
  c.rtx_at = INT64_MAX;
  establish(c, now);
  send_ack(c, now);
  output(c, now);
  set_deadline(c);
}

// 3.10.7.4: the other states.
void TcpEngine::on_segment(Conn& c, const SegIn& s, int64_t now) {
  const bool rst = s.has(kTcpRst), syn = s.has(kTcpSyn);
  // A retransmitted SYN in SYN-RECEIVED: our SYN-ACK again.
  if (c.state == TcpState::syn_rcvd && syn && !rst && s.seq == c.irs && !s.has(kTcpAck)) {
    ++stats_.retransmits;
    send_segment(c, c.iss, 0, kTcpSyn | kTcpAck, now);
    return;
  }
  // PAWS (RFC 7323 5.3): a timestamp older than TS.Recent is an old duplicate.
  if (c.ts_ok && s.has_ts && !rst && seq_lt(s.tsval, c.ts_recent)) {
    send_ack(c, now);
    return drop(DropReason::tcp_paws);
  }
  // Sequence acceptability (3.10.7.4, first check).
  const uint32_t wnd = rcv_window(c), slen = s.seg_len();
  bool ok;
  if (slen == 0)
    ok = wnd == 0 ? s.seq == c.rcv_nxt : seq_in(s.seq, c.rcv_nxt, c.rcv_nxt + wnd);
  else
    ok = wnd != 0 && (seq_in(s.seq, c.rcv_nxt, c.rcv_nxt + wnd) ||
                      seq_in(s.seq + slen - 1, c.rcv_nxt, c.rcv_nxt + wnd));
  if (!ok) {
    if (rst) return drop(DropReason::tcp_rst_out_of_window);
    send_ack(c, now);
    if (c.state == TcpState::time_wait && s.has(kTcpFin)) c.tw_at = now + cfg_.time_wait_ns;
    set_deadline(c);
    return drop(DropReason::tcp_out_of_window);
  }
  // RST (RFC 5961 3.2): exactly at RCV.NXT resets; elsewhere in the window, challenge.
  if (rst) {
    if (s.seq != c.rcv_nxt) {
      send_challenge_ack(c, now);
      return drop(DropReason::tcp_rst_challenged);
    }
    if (c.state == TcpState::syn_rcvd && c.passive) return release(c);  // back to LISTEN
    return reset_conn(c, true);
  }
  // SYN on a synchronized connection (RFC 5961 4.2).
  if (syn) {
    send_challenge_ack(c, now);
    return drop(DropReason::tcp_syn_challenged);
  }
  if (!s.has(kTcpAck)) return drop(DropReason::tcp_no_ack);
  // TS.Recent (RFC 7323 4.3): from a segment covering the last ACK we sent.
  if (c.ts_ok && s.has_ts && seq_leq(s.seq, c.last_ack_sent) &&
      seq_leq(c.last_ack_sent, s.seq + slen))
    c.ts_recent = s.tsval;
  if (!process_ack(c, s, now)) return;
  // The peer is alive: the keep-alive timer starts again.
  if (cfg_.keepalive_idle_ns > 0) {
    c.ka_probes = 0;
    c.ka_at = now + cfg_.keepalive_idle_ns;
  }
  if (s.dlen) {
    switch (c.state) {
      case TcpState::established:
      case TcpState::fin_wait1:
      case TcpState::fin_wait2:
        if (c.app_closed) {  // nobody will read it: RFC 9293 3.6, RFC 2525 2.17
          send_segment(c, c.snd_max, 0, kTcpRst | kTcpAck, now);
          ++stats_.rst_sent;
          drop(DropReason::tcp_data_after_close);
          return release(c);
        }
        process_data(c, s, now);
        break;
      default:  // after the peer's FIN: nothing is beyond it
        send_ack(c, now);
        drop(DropReason::tcp_data_after_close);
        return;
    }
  }
  if (s.has(kTcpFin)) {
    const uint32_t fin_seq = s.seq + s.dlen;
    if (fin_seq == c.rcv_nxt && !c.fin_rcvd) {
      process_fin(c, now);
    } else if (seq_gt(fin_seq, c.rcv_nxt) && !c.fin_rcvd) {
      c.ooo_fin = true;  // applied once the data before it is in
      c.ooo_fin_seq = fin_seq;
      send_ack(c, now);
    } else if (c.fin_rcvd) {  // retransmitted FIN: our ACK was lost
      send_ack(c, now);
      if (c.state == TcpState::time_wait) c.tw_at = now + cfg_.time_wait_ns;
    }
  }
  if (c.state == TcpState::free) return;
  output(c, now);
  set_deadline(c);
}

// ACK processing (3.10.7.4, fifth check; RFC 5961 5.2; RFC 6582). False when the segment
// is dropped or the connection is gone.
bool TcpEngine::process_ack(Conn& c, const SegIn& s, int64_t now) {
  if (c.state == TcpState::syn_rcvd) {
    if (!(seq_lt(c.snd_una, s.ack) && seq_leq(s.ack, c.snd_max))) {
      send_rst_for(s);
      drop(DropReason::tcp_bad_ack);
      return false;
    }
    if (c.rtt_timing) rtt_sample(c, now - c.rtt_start);
    c.rtt_timing = false;
    c.retries = 0;
    c.rtx_at = INT64_MAX;
    c.snd_una = s.ack;
    c.snd_wnd = uint32_t(s.wnd) << c.snd_wscale;
    c.max_snd_wnd = std::max(c.max_snd_wnd, c.snd_wnd);
    c.snd_wl1 = s.seq;
    c.snd_wl2 = s.ack;
    establish(c, now);
    return true;
  }
  if (seq_gt(s.ack, c.snd_max)) {
    send_ack(c, now);
    drop(DropReason::tcp_ack_unsent);
    return false;
  }
  if (seq_lt(s.ack, c.snd_una - std::max(c.max_snd_wnd, 1u))) {
    send_challenge_ack(c, now);
    drop(DropReason::tcp_ack_too_old);
    return false;
  }
  const uint32_t new_wnd = uint32_t(s.wnd) << c.snd_wscale;
  const uint32_t acked = seq_gt(s.ack, c.snd_una) ? s.ack - c.snd_una : 0;
  const uint32_t mss = effective_mss(c);
  // RFC 5681 2 wants the window unchanged; an ACK with SACK blocks counts without that
  // (RFC 6675 2: it reports data beyond the hole), as a reading receiver's window moves.
  bool dup = acked == 0 && s.dlen == 0 && !s.has(kTcpFin) &&
             (new_wnd == c.snd_wnd || (s.has_sack && c.sack_ok)) && new_wnd != 0 &&
             c.snd_una != c.snd_max && s.ack == c.snd_una;
  // Window update (3.10.7.4): from a newer segment, or the same one acking more.
  if (seq_lt(c.snd_wl1, s.seq) || (c.snd_wl1 == s.seq && seq_leq(c.snd_wl2, s.ack))) {
    c.snd_wnd = new_wnd;
    c.max_snd_wnd = std::max(c.max_snd_wnd, new_wnd);
    c.snd_wl1 = s.seq;
    c.snd_wl2 = s.ack;
  }
  if (c.snd_wnd == 0) c.retries = 0;     // the peer answers our probes: it is alive
  const bool sack_recovery = c.sack_ok;  // RFC 6675 with a SACK peer, else RFC 6582
  const uint32_t flight_before = c.snd_max - c.snd_una;
  if (acked) {
    c.retries = 0;
    if (c.rtt_timing && seq_geq(s.ack, c.rtt_seq)) {
      rtt_sample(c, now - c.rtt_start);
      c.rtt_timing = false;
    } else if (c.srtt) {
      // Undo the backoff once data flows again (RFC 6298 5.7 leaves this open; the next
      // sample would do the same).
      c.rto = std::clamp(c.srtt + std::max(kClockGranularityNs, 4 * c.rttvar), cfg_.rto_min_ns,
                         cfg_.rto_max_ns);
    }
    // Free the acknowledged bytes (the FIN's sequence number is not in the ring).
    const uint32_t end = c.data_end();
    if (seq_gt(s.ack, c.snd_buf_seq)) {
      const uint32_t n = (seq_lt(s.ack, end) ? s.ack : end) - c.snd_buf_seq;
      c.snd_buf_seq += n;
      c.snd_queued -= n;
      if (n && c.want_writable) {
        c.want_writable = false;
        emit_event(c, TcpEventKind::writable);
      }
    }
    c.snd_una = s.ack;
    if (seq_lt(c.snd_nxt, c.snd_una)) c.snd_nxt = c.snd_una;
    if (seq_lt(c.rxt_next, c.snd_una)) c.rxt_next = c.snd_una;
    sack_trim(c);
    c.dupacks = 0;
  }
  // The scoreboard takes the blocks above the (new) SND.UNA; `news`: some were new. With
  // SACK, only such an ACK counts as a duplicate (RFC 6675 2): a D-SACK, a repeated or a
  // forged block does not move the sender.
  const bool news = c.sack_ok && s.nsack && sack_update(c, s);
  if (c.sack_ok && !news) dup = false;
  if (acked) {
    // Fast recovery holds cwnd (at ssthresh, or NewReno's inflation); after an RTO it grows
    // as in slow start, recovery or not.
    const bool fast_recovery = c.in_recovery && !c.rto_recovery;
    if (c.in_recovery && seq_geq(s.ack, c.recover)) {  // full ACK (RFC 6582 3.2, RFC 6675 5)
      const uint32_t flight = c.snd_max - c.snd_una;
      if (fast_recovery) c.cwnd = std::min(c.ssthresh, std::max(flight, mss) + mss);
      c.in_recovery = c.rto_recovery = false;
    } else if (fast_recovery && !sack_recovery) {  // partial ACK: the next hole, deflate
      retransmit_una(c, now);
      c.rtx_una_at = now;
      c.cwnd = (c.cwnd > acked ? c.cwnd - acked : 0) + (acked >= mss ? mss : 0);
      c.cwnd = std::max(c.cwnd, mss);
    }  // a partial ACK in SACK recovery: the scoreboard says what to send (output())
    if (!fast_recovery && c.cwnd < c.ssthresh) {
      c.cwnd += std::min(acked, mss);  // slow start (RFC 5681 3.1)
    } else if (!fast_recovery && flight_before >= c.cwnd / 2) {
      c.cwnd += std::max<uint32_t>(1, uint32_t(uint64_t(mss) * mss / c.cwnd));
    }
    if (c.snd_una == c.snd_max)
      c.rtx_at = INT64_MAX;
    else
      arm_timer(c, now);  // RFC 6298 5.3
  } else if (dup) {
    ++c.dupacks;
    if (c.in_recovery && !sack_recovery) {
      c.cwnd += mss;  // RFC 6582 3.2 step 4: inflate
      // Duplicate ACKs that still name SND.UNA more than an RTT after it was sent again
      // come from segments sent after it: that retransmission was lost (the inference of
      // RACK, RFC 8985, from time). Send it again rather than wait for the RTO.
      if (c.srtt && now - c.rtx_una_at > std::max(c.srtt + c.srtt / 4, kClockGranularityNs)) {
        ++stats_.lost_retransmits;
        retransmit_una(c, now);
        c.rtx_una_at = now;
      }
    } else if (c.in_recovery) {
      // SACK recovery: output() sends what pipe allows (RFC 6675 5 step C).
    } else if (c.dupacks == kDupThresh && seq_gt(s.ack, c.recover)) {
      enter_recovery(c, now);
    } else if (c.dupacks < kDupThresh && c.snd_nxt == c.snd_max) {
      // RFC 3042 limited transmit: each of the first two duplicate ACKs may send one new
      // segment beyond cwnd, so that a small window still brings the third one (and a fast
      // retransmit rather than a timeout).
      const uint32_t cwnd = c.cwnd;
      c.cwnd += c.dupacks * mss;
      output(c, now);
      c.cwnd = cwnd;
    }
  }
  if (c.tlp_out && seq_geq(c.snd_una, c.tlp_end)) c.tlp_out = false;
  if (sack_recovery && c.snd_una != c.snd_max) {
    // RFC 6675 5: recovery also starts once the scoreboard says SND.UNA is lost (fewer
    // than three duplicate ACKs can SACK that much, e.g. with ACKs lost or stretched);
    // and once a tail loss probe is SACKed above a hole: what is unSACKed below it was
    // sent at least a PTO before it, so it is lost (RFC 8985 7.4, RACK's rule).
    bool probe_sacked = false;
    for (uint8_t i = 0; c.tlp_out && news && i < c.nsacked; ++i)
      probe_sacked = probe_sacked ||
                     (seq_lt(c.sacked[i].start, c.tlp_end) && seq_gt(c.sacked[i].end, c.tlp_seq));
    if (!c.in_recovery && seq_gt(s.ack, c.recover) &&
        (probe_sacked || sack_is_lost(c, c.snd_una))) {
      const uint32_t probe = c.tlp_seq;
      enter_recovery(c, now);
      if (probe_sacked) c.lost_below = probe;
    } else if (c.in_recovery && news) {
      sack_lost_retransmits(c, now);
    }
  }
  // Our FIN acknowledged?
  const bool fin_acked = c.fin_queued && c.snd_una == c.data_end() + 1;
  if (fin_acked) {
    switch (c.state) {
      case TcpState::fin_wait1:
        c.state = TcpState::fin_wait2;
        if (c.app_closed) c.tw_at = now + cfg_.fin_wait2_ns;
        break;
      case TcpState::closing:
        enter_time_wait(c, now);
        break;
      case TcpState::last_ack:
        if (c.app_owned) {
          c.state = TcpState::closed;
          c.rtx_at = c.delack_at = c.tw_at = c.ka_at = INT64_MAX;
        } else {
          release(c);
        }
        return false;
      default:
        break;
    }
  }
  return true;
}

// In-window data (3.10.7.4, seventh check): into the receive ring at its sequence offset.
// In order, it extends rcv_nxt (and swallows the out-of-order ranges it reaches); beyond
// rcv_nxt, it becomes or extends a range, reported in SACK blocks.
void TcpEngine::process_data(Conn& c, const SegIn& s, int64_t now) {
  uint32_t seq = s.seq;
  const uint8_t* d = s.data;
  uint32_t n = s.dlen;
  if (seq_lt(seq, c.rcv_nxt)) {
    const uint32_t skip = std::min(c.rcv_nxt - seq, n);
    seq += skip;
    d += skip;
    n -= skip;
  }
  const uint32_t right = c.rcv_read + rcv_size_;
  if (seq_gt(seq + n, right)) n = seq_lt(seq, right) ? right - seq : 0;
  if (n == 0) {  // all old: our ACK was lost
    send_ack(c, now);
    return;
  }
  const uint32_t end = seq + n;
  const bool in_order = seq == c.rcv_nxt;
  if (!in_order) {
    // The ranges it touches merge with it; a new range needs a free slot.
    bool touches = false;
    for (uint8_t i = 0; i < c.nooo; ++i)
      touches = touches || (seq_leq(seq, c.ooo[i].end) && seq_leq(c.ooo[i].start, end));
    if (!touches && c.nooo >= cfg_.ooo_ranges) {
      send_ack(c, now);
      return drop(DropReason::tcp_ooo_full);
    }
  }
  const uint32_t mask = rcv_size_ - 1;
  const uint32_t off = (seq - c.irs - 1) & mask;
  const uint32_t n1 = std::min(n, rcv_size_ - off);
  std::memcpy(c.rbuf + off, d, n1);
  std::memcpy(c.rbuf, d + n1, n - n1);
  if (in_order) {
    const bool had_ooo = c.nooo != 0;
    c.rcv_nxt = end;
    // Swallow the ranges now reached.
    for (bool again = true; again;) {
      again = false;
      for (uint8_t i = 0; i < c.nooo; ++i) {
        if (seq_leq(c.ooo[i].start, c.rcv_nxt)) {
          if (seq_gt(c.ooo[i].end, c.rcv_nxt)) c.rcv_nxt = c.ooo[i].end;
          c.ooo[i] = c.ooo[--c.nooo];
          again = true;
          break;
        }
      }
    }
    emit_event(c, TcpEventKind::readable);
    if (c.ooo_fin && c.ooo_fin_seq == c.rcv_nxt) {
      c.ooo_fin = false;
      process_fin(c, now);
      return;
    }
    // Delayed ACK (RFC 9293 3.8.6.3, RFC 5681 4.2): every second segment, at once when a
    // hole was filled, else within delack_ns.
    if (had_ooo || ++c.unacked_segs >= 2) {
      if (cfg_.batch_output && !had_ooo) {
        c.ack_held = true;  // a reply written in this burst may carry it (flush())
        defer(c);
      } else {
        send_ack(c, now);
      }
    } else if (c.delack_at == INT64_MAX) {
      c.delack_at = now + cfg_.delack_ns;
    }
    return;
  }
  // Out of order: merge every range overlapping or adjacent to [seq, end) into one.
  ++stats_.ooo_segments;
  uint32_t lo = seq, hi = end;
  for (uint8_t i = 0; i < c.nooo;) {
    if (seq_leq(lo, c.ooo[i].end) && seq_leq(c.ooo[i].start, hi)) {
      if (seq_lt(c.ooo[i].start, lo)) lo = c.ooo[i].start;
      if (seq_gt(c.ooo[i].end, hi)) hi = c.ooo[i].end;
      c.ooo[i] = c.ooo[--c.nooo];
    } else {
      ++i;
    }
  }
  c.ooo[c.nooo++] = {lo, hi, ++c.ooo_stamp};
  send_ack(c, now);  // a duplicate ACK with SACK blocks, at once (RFC 5681 4.2)
}

void TcpEngine::process_fin(Conn& c, int64_t now) {
  c.rcv_nxt += 1;
  c.fin_rcvd = true;
  emit_event(c, TcpEventKind::readable);
  send_ack(c, now);
  switch (c.state) {
    case TcpState::syn_rcvd:
    case TcpState::established:
      c.state = TcpState::close_wait;
      break;
    case TcpState::fin_wait1:
      if (c.snd_una == c.data_end() + 1)
        enter_time_wait(c, now);
      else
        c.state = TcpState::closing;  // simultaneous close
      break;
    case TcpState::fin_wait2:
      enter_time_wait(c, now);
      break;
    default:
      break;
  }
}

void TcpEngine::enter_time_wait(Conn& c, int64_t now) {
  c.state = TcpState::time_wait;
  c.rtx_at = c.delack_at = c.ka_at = INT64_MAX;
  c.tw_at = now + cfg_.time_wait_ns;
  set_deadline(c);
}

void TcpEngine::reset_conn(Conn& c, bool count_reset) {
  if (count_reset) ++stats_.conns_reset;
  if (!c.app_owned) return release(c);
  c.state = TcpState::closed;
  c.rtx_at = c.delack_at = c.tw_at = c.ka_at = INT64_MAX;
  emit_event(c, TcpEventKind::closed);
}

// ---- the SACK scoreboard (RFC 6675) ---------------------------------------------------
// At most kSackScoreboard ranges per connection, sorted, so every routine here is a bounded
// walk over them: no allocation, no per-segment state.

// The peer's SACK blocks into the scoreboard; true if they SACKed something new. A block is
// bogus (ignored, counted) when it is empty or inverted, covers unsent data or SND.UNA
// itself (which the peer would have ACKed), or starts more than a window below SND.UNA (as
// Linux's tcp_is_sackblock_valid); one wholly below SND.UNA is a D-SACK (RFC 2883) or
// stale, and marks nothing.
bool TcpEngine::sack_update(Conn& c, const SegIn& s) {
  bool news = false;
  for (uint8_t k = 0; k < s.nsack; ++k) {
    const uint32_t l = s.sack[2 * k], r = s.sack[2 * k + 1];
    if (!seq_lt(l, r) || seq_gt(r, c.snd_max) || (seq_leq(l, c.snd_una) && seq_gt(r, c.snd_una)) ||
        seq_lt(l, c.snd_una - std::max(c.max_snd_wnd, 1u))) {
      ++stats_.sack_blocks_bogus;
      continue;
    }
    if (seq_leq(r, c.snd_una)) continue;
    auto& v = c.sacked;
    uint8_t n = c.nsacked;
    uint8_t i = 0;
    while (i < n && seq_lt(v[i].end, l)) ++i;  // wholly below, not adjacent
    uint8_t j = i;
    while (j < n && seq_leq(v[j].start, r)) ++j;  // [i, j) overlap or touch [l, r)
    if (i == j) {
      if (n == kSackScoreboard) {  // forget the highest range: it matters least to IsLost
        ++stats_.sack_scoreboard_full;
        if (i == n) continue;
        --n;
      }
      for (uint8_t m = n; m > i; --m) v[m] = v[m - 1];
      v[i] = {l, r};
      c.nsacked = uint8_t(n + 1);
      news = true;
      continue;
    }
    news = news || seq_lt(l, v[i].start) || seq_gt(r, v[j - 1].end) || j - i > 1;
    v[i] = {seq_lt(l, v[i].start) ? l : v[i].start, seq_gt(r, v[j - 1].end) ? r : v[j - 1].end};
    const uint8_t gone = uint8_t(j - i - 1);
    for (uint8_t m = uint8_t(i + 1); m + gone < n; ++m) v[m] = v[m + gone];
    c.nsacked = uint8_t(n - gone);
  }
  return news;
}

// After SND.UNA moved: ranges it reached are gone (one it reached only in part would be
// data the peer both SACKed and did not ACK: forgotten, at worst sent again).
void TcpEngine::sack_trim(Conn& c) {
  uint8_t k = 0;
  while (k < c.nsacked && seq_leq(c.sacked[k].start, c.snd_una)) ++k;
  if (k == 0) return;
  for (uint8_t m = k; m < c.nsacked; ++m) c.sacked[m - k] = c.sacked[m];
  c.nsacked = uint8_t(c.nsacked - k);
}

// IsLost (RFC 6675 4): DupThresh SACKed ranges above seq, or more than (DupThresh - 1) *
// SMSS SACKed bytes; in recovery, anything below lost_below too.
bool TcpEngine::sack_is_lost(const Conn& c, uint32_t seq) const {
  if (c.in_recovery && seq_lt(seq, c.lost_below)) return true;
  uint32_t bytes = 0, ranges = 0;
  for (uint8_t i = c.nsacked; i-- > 0 && seq_gt(c.sacked[i].start, seq);) {
    bytes += c.sacked[i].end - c.sacked[i].start;
    ++ranges;
  }
  return ranges >= kDupThresh || bytes > (kDupThresh - 1) * effective_mss(c);
}

// SetPipe (RFC 6675 4): the bytes in flight. Each hole (unSACKed stretch) counts once unless
// IsLost says it left the network, and once more where it was sent again (below rxt_next).
// Lost-ness is the same across a hole (nothing SACKed inside it), so the walk goes by hole,
// from the top, adding up what is SACKed above.
uint32_t TcpEngine::sack_pipe(const Conn& c) const {
  const uint32_t lost_bytes = (kDupThresh - 1) * effective_mss(c);
  uint32_t pipe = 0, above = 0, ranges = 0, hi = c.snd_max;
  for (int i = c.nsacked; i >= 0; --i) {
    const uint32_t lo = i > 0 ? c.sacked[i - 1].end : c.snd_una;
    if (seq_lt(lo, hi)) {
      // The part below lost_below is lost whatever is SACKed above.
      const uint32_t from =
          seq_lt(lo, c.lost_below) ? (seq_lt(hi, c.lost_below) ? hi : c.lost_below) : lo;
      if (!(ranges >= kDupThresh || above > lost_bytes)) pipe += hi - from;
      if (seq_lt(lo, c.rxt_next)) pipe += (seq_lt(hi, c.rxt_next) ? hi : c.rxt_next) - lo;
    }
    if (i > 0) {
      above += c.sacked[i - 1].end - c.sacked[i - 1].start;
      ++ranges;
      hi = c.sacked[i - 1].start;
    }
  }
  return pipe;
}

// NextSeg (RFC 6675 4) rules 1 (lost_only) and 3: the lowest unSACKed piece at or above
// rxt_next and below the highest SACKed byte (or lost_below), up to an MSS and not into
// SACKed data.
bool TcpEngine::sack_next(const Conn& c, bool lost_only, uint32_t* seq, uint32_t* len) const {
  const uint32_t lost_bytes = (kDupThresh - 1) * effective_mss(c);
  uint32_t above = 0, ranges = c.nsacked;
  for (uint8_t i = 0; i < c.nsacked; ++i) above += c.sacked[i].end - c.sacked[i].start;
  const uint32_t from = seq_lt(c.rxt_next, c.snd_una) ? c.snd_una : c.rxt_next;
  uint32_t lo = c.snd_una;
  for (uint8_t i = 0; i <= c.nsacked; ++i) {
    const bool below = seq_lt(lo, c.lost_below);
    uint32_t hi;  // the hole is [lo, hi)
    if (i < c.nsacked)
      hi = c.sacked[i].start;
    else if (below)
      hi = c.lost_below;
    else
      return false;
    if (seq_lt(from, hi)) {
      const uint32_t at = seq_lt(lo, from) ? from : lo;
      const bool at_below = seq_lt(at, c.lost_below);
      // Higher holes have less SACKed above: none of them is lost either.
      if (lost_only && !at_below && !(ranges >= kDupThresh || above > lost_bytes)) return false;
      if (at_below && seq_lt(c.lost_below, hi)) hi = c.lost_below;
      *seq = at;
      *len = std::min(hi - at, effective_mss(c));
      return true;
    }
    if (i < c.nsacked) {
      above -= c.sacked[i].end - c.sacked[i].start;
      --ranges;
      lo = c.sacked[i].end;
    }
  }
  return false;
}

// In SACK recovery, on an ACK that SACKed new data: a retransmission still not delivered
// more than max(1.25 SRTT, 1 ms) after it was sent, while later data keeps arriving, was
// lost too (the inference of RACK, RFC 8985, from time), and waiting for the RTO would
// stall the connection. If every retransmission of this recovery is that old, they are all
// considered lost and NextSeg starts again from SND.UNA (rxt_next back to it, which also
// takes them out of pipe); else only SND.UNA's segment goes again.
void TcpEngine::sack_lost_retransmits(Conn& c, int64_t now) {
  if (!c.srtt || !seq_gt(c.rxt_next, c.snd_una) || !sack_is_lost(c, c.snd_una)) return;
  const int64_t wait = std::max(c.srtt + c.srtt / 4, kClockGranularityNs);
  if (now - c.rxt_last_at > wait) {
    ++stats_.lost_retransmits;
    c.rxt_next = c.snd_una;
  } else if (now - c.rtx_una_at > wait) {
    ++stats_.lost_retransmits;
    retransmit_una(c, now);
    c.rtx_una_at = c.rxt_last_at = now;
  }
}

// ---- timers --------------------------------------------------------------------------

void TcpEngine::advance(int64_t now) {
  if (now < next_deadline_) return;
  int64_t next = INT64_MAX;
  // Backwards: release() moves the last live slot into the freed position, which this loop
  // has already visited.
  for (size_t i = live_.size(); i-- > 0;) {
    Conn& c = conns_[live_[i]];
    if (c.earliest() <= now) on_timer(c, now);
    if (i < live_.size()) next = std::min(next, conns_[live_[i]].earliest());
  }
  next_deadline_ = next;
}

void TcpEngine::on_timer(Conn& c, int64_t now) {
  if (c.tw_at <= now) {
    c.tw_at = INT64_MAX;
    if (c.state == TcpState::time_wait || c.state == TcpState::fin_wait2) {
      if (!c.app_owned) return release(c);
      c.state = TcpState::closed;  // the application still holds it: close() frees it
      c.rtx_at = c.delack_at = c.ka_at = INT64_MAX;
      return;
    }
  }
  if (c.delack_at <= now) send_ack(c, now);
  if (c.ka_at <= now) keepalive(c, now);
  if (c.state == TcpState::free || c.rtx_at > now) return;
  c.rtx_at = INT64_MAX;
  if (c.tlp_armed) {
    c.tlp_armed = false;
    return tail_loss_probe(c, now);
  }
  if (c.persist) {  // zero-window probe: one byte beyond the window (3.8.6.1)
    ++stats_.window_probes;
    c.persist = false;
    if (seq_lt(c.snd_nxt, c.data_end())) {
      send_segment(c, c.snd_nxt, 1, kTcpAck, now);
      c.snd_nxt += 1;
      if (seq_gt(c.snd_nxt, c.snd_max)) c.snd_max = c.snd_nxt;
    }
    c.rto = std::min(c.rto * 2, cfg_.rto_max_ns);
    arm_rto(c, now);
    return;
  }
  ++stats_.rto_expiries;
  ++c.retries;
  const bool handshake = c.state == TcpState::syn_sent || c.state == TcpState::syn_rcvd;
  if (c.retries > (handshake ? cfg_.syn_retries : cfg_.max_retries)) {
    ++stats_.conns_timed_out;
    if (!handshake) send_segment(c, c.snd_max, 0, kTcpRst | kTcpAck, now);
    return reset_conn(c, false);
  }
  // RFC 6298 5.5-5.7 and RFC 5681 (3.1, eq. 4): back off, one segment, slow start again.
  c.rto = std::min(c.rto * 2, cfg_.rto_max_ns);
  c.rtt_timing = false;
  if (handshake) {
    ++stats_.retransmits;
    send_segment(c, c.iss, 0, c.state == TcpState::syn_sent ? kTcpSyn : uint8_t(kTcpSyn | kTcpAck),
                 now);
    arm_rto(c, now);
    return;
  }
  const uint32_t mss = effective_mss(c);
  if (c.snd_wnd != 0) {  // a lost zero-window probe says nothing about congestion
    c.ssthresh = std::max((c.snd_max - c.snd_una) / 2, 2 * mss);
    c.cwnd = mss;
  }
  c.in_recovery = c.rto_recovery = c.tlp_out = false;
  c.dupacks = 0;
  c.recover = c.snd_max;
  // The receiver may have dropped what it SACKed (RFC 2018 8, RFC 6675 5.1): forget it.
  c.nsacked = 0;
  c.rxt_next = c.snd_una;
  if (c.sack_ok && c.snd_wnd != 0) {
    // With SACK, everything sent before the timeout and not SACKed from now on is lost:
    // recovery by the scoreboard up to recover (no new recovery starts before it is
    // ACKed, RFC 6675 5.1), as cwnd grows from one segment; what the peer SACKs meanwhile
    // is skipped and a lost retransmission found as in fast recovery, where going back N
    // would need another timeout for each.
    c.in_recovery = c.rto_recovery = true;
    c.lost_below = c.recover;
    c.rewinds = 0;
    c.rxt_next = retransmit_una(c, now);
    c.rtx_una_at = c.rxt_last_at = now;
  } else {
    c.snd_nxt = c.snd_una;  // go back N: the rest follows as ACKs open the window
    retransmit_una(c, now);
  }
  arm_rto(c, now);
}

// Keep-alive (RFC 1122 4.2.3.6, RFC 9293 3.8.4): after keepalive_idle_ns without a segment
// from the peer, and nothing of ours in flight (the RTO covers that), an ACK one below
// SND.UNA, which the peer must answer; keepalive_probes unanswered ones, keepalive_interval_ns
// apart, end the connection.
void TcpEngine::keepalive(Conn& c, int64_t now) {
  c.ka_at = INT64_MAX;
  if (c.state != TcpState::established && c.state != TcpState::close_wait) return;
  if (c.snd_una != c.snd_max) {
    c.ka_at = now + cfg_.keepalive_idle_ns;
    return;
  }
  if (c.ka_probes >= cfg_.keepalive_probes) {
    ++stats_.conns_timed_out;
    send_segment(c, c.snd_max, 0, kTcpRst | kTcpAck, now);
    return reset_conn(c, false);
  }
  ++c.ka_probes;
  ++stats_.keepalive_probes;
  send_segment(c, c.snd_una - 1, 0, kTcpAck, now);
  c.ka_at = now + cfg_.keepalive_interval_ns;
}

// ---- the application side ------------------------------------------------------------

bool TcpEngine::valid(ConnId id) const {
  return lookup(id) != nullptr;
}

TcpState TcpEngine::state(ConnId id) const {
  const Conn* c = lookup(id);
  return c ? c->state : TcpState::free;
}

uint32_t TcpEngine::send_space(ConnId id) const {
  const Conn* c = lookup(id);
  if (!c || c->fin_queued ||
      (c->state != TcpState::established && c->state != TcpState::close_wait))
    return 0;
  return snd_size_ - c->snd_queued;
}

uint32_t TcpEngine::send_queued(ConnId id) const {
  const Conn* c = lookup(id);
  return c ? c->snd_queued : 0;
}

bool TcpEngine::endpoints(ConnId id, uint32_t* laddr, uint16_t* lport, uint32_t* raddr,
                          uint16_t* rport) const {
  const Conn* c = lookup(id);
  if (!c) return false;
  *laddr = c->laddr;
  *lport = c->lport;
  *raddr = c->raddr;
  *rport = c->rport;
  return true;
}

uint32_t TcpEngine::send(ConnId id, const uint8_t* p, uint32_t n, int64_t now) {
  Conn* c = lookup(id);
  const uint32_t space = send_space(id);
  const uint32_t k = std::min(n, space);
  if (k < n && c) c->want_writable = true;
  if (k == 0) return 0;
  const uint32_t off = (c->data_end() - c->iss - 1) & (snd_size_ - 1);
  const uint32_t k1 = std::min(k, snd_size_ - off);
  std::memcpy(c->sbuf + off, p, k1);
  std::memcpy(c->sbuf, p + k1, k - k1);
  c->snd_queued += k;
  if (cfg_.batch_output)
    defer(*c);
  else
    output(*c, now);
  return k;
}

void TcpEngine::defer(Conn& c) {
  if (c.deferred) return;
  c.deferred = true;
  deferred_.push_back(uint32_t(&c - conns_.get()));
}

void TcpEngine::flush(int64_t now) {
  // output() and send_ack() do not defer, so the list does not grow while it is walked.
  for (uint32_t slot : deferred_) {
    Conn& c = conns_[slot];
    if (!c.deferred) continue;  // released since
    c.deferred = false;
    output(c, now);
    // A segment with ACK set since it was held carried it (send_segment clears ack_held); a
    // connection reset or closed since owes nothing.
    const bool synced = c.state != TcpState::closed && c.state != TcpState::syn_sent &&
                        c.state != TcpState::syn_rcvd;
    if (c.ack_held && synced) send_ack(c, now);
    c.ack_held = false;
  }
  deferred_.clear();
}

uint32_t TcpEngine::readable_bytes(ConnId id) const {
  const Conn* c = lookup(id);
  return c && c->state != TcpState::syn_sent ? c->rcv_data_end() - c->rcv_read : 0;
}

std::span<const uint8_t> TcpEngine::readable(ConnId id) const {
  const uint32_t n = readable_bytes(id);
  if (n == 0) return {};
  const Conn* c = lookup(id);
  const uint32_t off = (c->rcv_read - c->irs - 1) & (rcv_size_ - 1);
  return {c->rbuf + off, std::min(n, rcv_size_ - off)};
}

void TcpEngine::consume(ConnId id, uint32_t n, int64_t now) {
  Conn* c = lookup(id);
  n = std::min(n, readable_bytes(id));
  if (n == 0) return;
  c->rcv_read += n;
  c->ev_pending &= uint8_t(~(1u << unsigned(TcpEventKind::readable)));
  // Receiver-side silly window avoidance (3.8.6.2.2): a window update once the window
  // grew by min(rcv_buf / 2, 2 MSS) beyond what was advertised.
  const uint32_t grown = c->rcv_read + rcv_size_ - c->rcv_adv;
  if (c->synchronized() && !c->fin_rcvd && int32_t(grown) > 0 &&
      grown >= std::min<uint32_t>(rcv_size_ / 2, 2u * cfg_.mss)) {
    if (cfg_.batch_output) {
      c->ack_held = true;  // a reply written in this burst may carry the update
      defer(*c);
    } else {
      send_ack(*c, now);
    }
  }
}

uint32_t TcpEngine::recv(ConnId id, uint8_t* out, uint32_t max, int64_t now) {
  uint32_t done = 0;
  while (done < max) {
    const auto r = readable(id);
    if (r.empty()) break;
    const uint32_t k = std::min<uint32_t>(uint32_t(r.size()), max - done);
    std::memcpy(out + done, r.data(), k);
    consume(id, k, now);
    done += k;
  }
  return done;
}

bool TcpEngine::eof(ConnId id) const {
  const Conn* c = lookup(id);
  if (!c) return true;
  return (c->fin_rcvd && c->rcv_read == c->rcv_data_end()) || c->state == TcpState::closed;
}

void TcpEngine::shutdown(ConnId id, int64_t now) {
  Conn* c = lookup(id);
  if (!c || c->fin_queued) return;
  c->fin_queued = true;
  if (c->state == TcpState::established)
    c->state = TcpState::fin_wait1;
  else if (c->state == TcpState::close_wait)
    c->state = TcpState::last_ack;
  output(*c, now);
}

void TcpEngine::close(ConnId id, int64_t now) {
  Conn* c = lookup(id);
  if (!c) return;
  if (c->state == TcpState::closed || c->state == TcpState::syn_sent) return release(*c);
  if (readable_bytes(id) > 0) return abort(id, now);  // unread data: RST (RFC 2525 2.17)
  c->app_closed = true;
  shutdown(id, now);
  c->app_owned = false;
  if (c->state == TcpState::fin_wait2) c->tw_at = now + cfg_.fin_wait2_ns;
  set_deadline(*c);
}

void TcpEngine::abort(ConnId id, int64_t now) {
  Conn* c = lookup(id);
  if (!c) return;
  if (c->synchronized() && c->state != TcpState::time_wait) {
    ++stats_.rst_sent;
    send_segment(*c, c->snd_max, 0, kTcpRst | kTcpAck, now);
  }
  release(*c);
}

TcpEngine::Info TcpEngine::info(ConnId id) const {
  const Conn* c = lookup(id);
  if (!c) return Info{TcpState::free, 0, 0xFF, 0xFF, false, false, 0, 0, 0, 0, 0, 0, false, 0, 0};
  uint32_t sacked_bytes = 0;
  for (uint8_t i = 0; i < c->nsacked; ++i) sacked_bytes += c->sacked[i].end - c->sacked[i].start;
  return Info{c->state,
              uint16_t(effective_mss(*c)),
              c->ws_ok ? c->snd_wscale : uint8_t(0xFF),
              c->ws_ok ? c->rcv_wscale : uint8_t(0xFF),
              c->ts_ok,
              c->sack_ok,
              c->srtt,
              c->rttvar,
              c->rto,
              c->cwnd,
              c->ssthresh,
              c->snd_wnd,
              c->in_recovery,
              c->nsacked,
              sacked_bytes};
}

}  // namespace cw::dp::net
