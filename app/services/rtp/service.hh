// The rtp service (docs/rtp.md): one RTP/RTCP session per [[service]] table, RTP and RTCP on
// its one UDP port (RFC 5761). Endpoint mode sends a tone (PCMU or L16) every 20 ms and
// RTCP SR + SDES at the RFC 3550 6.2 interval, and keeps reception statistics (RFC 3550
// A.1, A.3, A.8) of the peer's stream; relay mode forwards each side's packets to the other.
//
// The session belongs to one worker (key `worker`): its timers run there and its state is
// touched there only. The port's socket exists on every worker (SO_REUSEPORT spreads flows),
// so a packet may arrive elsewhere: that worker validates it and mails the owner the few
// header fields the statistics need (no payload, no allocation). Relay forwarding needs no
// state, so every worker forwards what it receives. Only the configured peer address and
// port are accepted (no latching); anything else is dropped and counted.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/services/rtp/config.hh"
#include "app/services/rtp/protocol.hh"
#include "app/services/rtp/session.hh"
#include "dataplane/io.hh"

namespace cw::svc {

class Rtp {
 public:
  using Options = rtp::RtpOptions;
  static constexpr const auto& kOptionKeys = rtp::kRtpOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return rtp::parse_rtp_options(k); }
  // A client socket pinned to the owner, only so that the config checks `worker` exists.
  static std::vector<rt::ClientSocket> client_sockets(const Options& o) {
    return {{{dp::Transport::udp, false, {}, int(o.worker)}, "worker"}};
  }

  enum : uint32_t {
    kRtpIn,
    kRtcpIn,
    kRtpOut,
    kRtcpOut,
    kRelayed,
    kUnknownSource,
    kBadRtp,
    kBadRtcp,
    kNotCounted,
    kSsrcChanges,
    kInjectedLoss,
    kInjectedReorder,
    kTxFull,
    kExpected,
    kLost,
    kFractionLost,
    kJitter,
    kPeerFractionLost,
    kPeerLost,
    kPeerJitter,
    kRttUs,
  };
  static constexpr rt::CounterDecl kCounters[] = {
      {"rtp_in", "RTP packets received from the session's peer(s)"},
      {"rtcp_in", "RTCP compound packets received from the session's peer(s)"},
      {"rtp_out", "RTP packets sent (tone source)"},
      {"rtcp_out", "RTCP compound packets sent (SR + SDES)"},
      {"relayed", "Packets forwarded to the other side (relay mode)"},
      {"unknown_source", "Packets from an address that is not the session's peer: dropped"},
      {"bad_rtp", "Malformed RTP packets (RFC 3550 5.1, A.1 checks): dropped"},
      {"bad_rtcp", "Malformed RTCP compound packets (RFC 3550 A.2 checks): dropped"},
      {"seq_not_counted", "RTP packets in probation or a sequence jump (RFC 3550 A.1)"},
      {"ssrc_changes", "Times the peer's stream changed SSRC (statistics restarted)"},
      {"injected_loss", "Packets the fault injection did not send"},
      {"injected_reorder", "Packets the fault injection sent after their successor"},
      {"tx_full", "Packets not sent for want of a transmit buffer"},
      {"expected", "Packets expected from the peer (RFC 3550 A.3)", rt::CounterKind::gauge},
      {"lost", "Cumulative packets lost from the peer (A.3; may be negative, shown as 0)",
       rt::CounterKind::gauge},
      {"fraction_lost", "Fraction lost of the last report interval, 1/256 (A.3)",
       rt::CounterKind::gauge},
      {"jitter", "Interarrival jitter of the peer's stream, RTP timestamp units (A.8)",
       rt::CounterKind::gauge},
      {"peer_fraction_lost", "Fraction lost the peer last reported for our stream, 1/256",
       rt::CounterKind::gauge},
      {"peer_lost", "Cumulative lost the peer last reported for our stream",
       rt::CounterKind::gauge},
      {"peer_jitter", "Jitter the peer last reported for our stream", rt::CounterKind::gauge},
      {"rtt_us", "Round trip from the peer's last report block (LSR/DLSR), microseconds",
       rt::CounterKind::gauge},
  };

  Rtp(const rt::ServiceCtx& c, const Options& o)
      : o_(o), owner_(o.worker == c.worker), tone_(rtp::make_tone(o)) {
    // Sockets: the udp server socket when configured, then the client socket.
    for (const rt::SocketRef& s : c.sockets)
      if (s.server && s.transport == dp::Transport::udp) {
        sock_ = s.id;
        has_sock_ = true;
      }
    if (has_sock_ && sock_ < c.bound.size()) port_ = c.bound[sock_].port_be;
    sender_.ssrc = o.ssrc ? o.ssrc : uint32_t(0x43570000u ^ port_ << 4 ^ c.service);
    rng_.s ^= uint64_t{sender_.ssrc} << 32 | c.worker;
    if (rng_.s == 0) rng_.s = 1;  // xorshift's one fixed point
    sender_.seq = uint16_t(rng_.next());
    sender_.ts = uint32_t(rng_.next());
    sender_.held.resize(kRtpMax);
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    unix_minus_mono_ns_ =
        int64_t(real.tv_sec - mono.tv_sec) * 1'000'000'000 + (real.tv_nsec - mono.tv_nsec);
    avg_rtcp_size_ = 28 + 28 + 24 + 4 + 4 + double(o.cname.size() + 4);
  }

  // Starts the owner's timers on its first loop iteration (the factory has no Ctx).
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (started_ || !owner_ || !has_sock_ || !o_.valid) return;
    if (o_.mode != rtp::Mode::endpoint) {
      started_ = true;
      return;
    }
    // A full timer pool (counted timers_full) is retried on the next iteration.
    if (tx_timer_ == rt::kNoTimer) {
      sender_.next_ns = ctx.now_ns;
      sender_.t0_ns = ctx.now_ns;
      sender_.ts0 = sender_.ts;
      tx_timer_ = ctx.timer_at(ctx.now_ns, kTimerTx);
    }
    if (rtcp_timer_ == rt::kNoTimer)
      rtcp_timer_ = ctx.timer_after(uint64_t(next_rtcp_s(true) * 1e9), kTimerRtcp);
    started_ = tx_timer_ != rt::kNoTimer && rtcp_timer_ != rt::kNoTimer;
  }

  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t user) {
    if (user == kTimerTx) {
      send_tone(ctx);
      // The next nominal time, late by the injected jitter; far behind (a stalled loop):
      // skip the missed slots, their timestamps included, rather than burst.
      sender_.next_ns += rtp::kPacketNs;
      if (sender_.next_ns + 5 * rtp::kPacketNs < ctx.now_ns) {
        const uint64_t skip = (ctx.now_ns - sender_.next_ns) / rtp::kPacketNs;
        sender_.next_ns += skip * rtp::kPacketNs;
        sender_.ts += uint32_t(skip * samples());
      }
      uint64_t at = sender_.next_ns;
      if (o_.jitter_ms) at += uint64_t(rng_.below(o_.jitter_ms * 1000 + 1)) * 1000;
      ctx.timer_rearm(id, at);
    } else if (user == kTimerRtcp) {
      send_report(ctx, false);
      ctx.timer_rearm(id, ctx.now_ns + uint64_t(next_rtcp_s(false) * 1e9));
    }
  }

  // Leaving the session (RFC 3550 6.3.7): a last report with BYE, flushed by the runtime.
  template <class Io>
  void on_stop(rt::Ctx<Io>& ctx) {
    if (started_ && o_.mode == rtp::Mode::endpoint) send_report(ctx, true);
  }

  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    const bool from_a = from(it.peer, o_.peer);
    const bool from_b = o_.mode == rtp::Mode::relay && from(it.peer, o_.peer_b);
    if (!o_.valid || (!from_a && !from_b)) return ctx.counters[kUnknownSource].add();
    const rtp::proto::Bytes pkt(it.data, it.len);
    const rtp::proto::Kind k = rtp::proto::classify(pkt);
    if (k == rtp::proto::Kind::rtcp) {
      rtp::proto::Compound c;
      if (rtp::proto::parse_rtcp(pkt, c) != rtp::proto::Error::ok) return bad(ctx, kBadRtcp);
      ctx.counters[kRtcpIn].add();
      if (o_.mode == rtp::Mode::relay) return relay(ctx, it, from_a);
      return rtcp_in(ctx, c);
    }
    rtp::proto::RtpPacket p;
    if (k == rtp::proto::Kind::bad || rtp::proto::parse_rtp(pkt, p) != rtp::proto::Error::ok)
      return bad(ctx, kBadRtp);
    ctx.counters[kRtpIn].add();
    ctx.svc->requests.add();
    if (o_.mode == rtp::Mode::relay) return relay(ctx, it, from_a);
    // Arrival in RTP timestamp units (A.8), from the one monotonic clock every worker reads.
    const uint32_t arrival = rtp::rtp_units(ctx.now_ns, o_.clock_rate);
    rt::Mail m;
    m.kind = kMailRtp;
    m.a = uint64_t{p.timestamp} << 32 | arrival;
    m.b = uint64_t{p.ssrc} << 32 | p.seq;
    to_owner(ctx, m);
  }

  template <class Io>
  void on_mail(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    switch (m.kind) {
      case kMailRtp:
        rtp_owner(ctx, uint32_t(m.b >> 32), uint16_t(m.b), uint32_t(m.a >> 32), uint32_t(m.a));
        break;
      case kMailSr:
        remote_.last_sr = uint32_t(m.a);
        remote_.last_sr_ns = m.b;
        break;
      case kMailBlock: {
        ctx.counters[kPeerFractionLost].set(m.a >> 56);
        // 24-bit signed on the wire; a negative count (duplicates) shows as 0.
        const int32_t lost = int32_t(uint32_t(m.a >> 32) << 8) >> 8;
        ctx.counters[kPeerLost].set(lost > 0 ? uint64_t(lost) : 0);
        ctx.counters[kPeerJitter].set(uint32_t(m.a));
        if (m.b) ctx.counters[kRttUs].set(m.b * 1'000'000 / 65536);
        break;
      }
      default:
        break;  // control mail (enable/disable/drain): a session has nothing to finish
    }
  }

  // Test access (owner's view).
  const rtp::Remote& remote() const { return remote_; }
  const rtp::Sender& sender() const { return sender_; }
  uint64_t unix_minus_mono_ns() const { return uint64_t(unix_minus_mono_ns_); }

 private:
  enum : uint64_t { kTimerTx = 1, kTimerRtcp = 2 };
  enum : uint16_t { kMailRtp = 1, kMailSr, kMailBlock };
  static constexpr size_t kRtpMax = rtp::proto::kRtpHeaderSize + 48000 * 2 / 50;
  static constexpr size_t kRtcpMax = 512;

  // The peer rule (docs/rtp.md): its address and port, or with peer_match = "address" its
  // address from any port (senders such as GStreamer's udpsink use ephemeral ports).
  bool from(const dp::Endpoint& src, const dp::Endpoint& peer) const {
    return src.addr_be == peer.addr_be && (o_.match_address || src.port_be == peer.port_be);
  }
  uint32_t samples() const { return o_.clock_rate / (1000 / rtp::kPacketMs); }
  size_t payload_bytes() const { return samples() * (o_.codec == rtp::Codec::pcmu ? 1 : 2); }

  template <class Io>
  void bad(rt::Ctx<Io>& ctx, uint32_t which) {
    ctx.counters[which].add();
    ctx.svc->malformed.add();
  }

  // Runs the record here when this is the owner, else mails it (a failed post is counted by
  // the runtime in mail_dropped; the statistics then miss one packet).
  template <class Io>
  void to_owner(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    if (owner_) return on_mail(ctx, m);
    (void)ctx.post(o_.worker, m);
  }

  template <class Io>
  void relay(rt::Ctx<Io>& ctx, const dp::RxItem& it, bool from_a) {
    const dp::Endpoint to = from_a ? o_.peer_b : o_.peer;
    uint8_t* out = ctx.io.dgram_reserve(it.sock, to, it.len);
    if (!out) {
      ctx.counters[kTxFull].add();
      return ctx.svc->dropped.add();
    }
    std::memcpy(out, it.data, it.len);
    ctx.io.dgram_commit(it.len);
    ctx.counters[kRelayed].add();
    ctx.svc->responses.add();
  }

  // The owner: one RTP packet's header fields into the statistics.
  template <class Io>
  void rtp_owner(rt::Ctx<Io>& ctx, uint32_t ssrc, uint16_t seq, uint32_t ts, uint32_t arrival) {
    if (!remote_.seen || ssrc != remote_.ssrc) {
      // A new SSRC (the first, or a restart of the peer): statistics start again.
      if (remote_.seen) ctx.counters[kSsrcChanges].add();
      remote_ = rtp::Remote{};
      remote_.seen = true;
      remote_.ssrc = ssrc;
      remote_.stats.start(seq);
    }
    if (remote_.stats.update(seq) != rtp::SeqResult::valid) return ctx.counters[kNotCounted].add();
    remote_.stats.update_jitter(arrival, ts);
    ctx.counters[kJitter].set(remote_.stats.jitter());
    ctx.counters[kExpected].set(remote_.stats.expected());
    const int64_t lost = int64_t{remote_.stats.expected()} - remote_.stats.received();
    ctx.counters[kLost].set(lost > 0 ? uint64_t(lost) : 0);
  }

  // An accepted compound from the peer: its SR's time (for our LSR/DLSR) and the report
  // block about our stream (the peer's view, and the round trip).
  template <class Io>
  void rtcp_in(rt::Ctx<Io>& ctx, const rtp::proto::Compound& c) {
    for (size_t i = 0; i < c.n; ++i) {
      const rtp::proto::RtcpPacket& p = c.pkts[i];
      if (p.type != rtp::proto::kSr && p.type != rtp::proto::kRr) continue;
      const rtp::proto::Report r = rtp::proto::read_report(p);
      if (r.has_sender) {
        rt::Mail m;
        m.kind = kMailSr;
        m.a = rtp::ntp_middle(r.sender.ntp);
        m.b = ctx.now_ns;
        to_owner(ctx, m);
      }
      for (size_t b = 0; b < r.count; ++b) {
        const rtp::proto::ReportBlock rb = r.block(b);
        if (rb.ssrc != sender_.ssrc) continue;
        rt::Mail m;
        m.kind = kMailBlock;
        m.a = uint64_t{rb.fraction_lost} << 56 |
              uint64_t(uint32_t(rb.cumulative_lost) & 0xffffff) << 32 | rb.jitter;
        // RFC 3550 6.4.1: RTT = A - LSR - DLSR in 1/65536 s, when the peer had an SR of ours.
        if (rb.lsr != 0) {
          const uint32_t a = rtp::ntp_middle(ntp_now(ctx));
          const uint32_t rtt = a - rb.lsr - rb.dlsr;
          m.b = rtt < 0x80000000u ? (rtt ? rtt : 1) : 0;
        }
        to_owner(ctx, m);
      }
    }
  }

  template <class Io>
  uint64_t ntp_now(rt::Ctx<Io>& ctx) const {
    return rtp::ntp_from_unix_ns(uint64_t(int64_t(ctx.now_ns) + unix_minus_mono_ns_));
  }

  // One 20 ms packet of the tone, through the fault injection.
  template <class Io>
  void send_tone(rt::Ctx<Io>& ctx) {
    rtp::Sender& s = sender_;
    const size_t n = payload_bytes();
    const size_t bytes_per = o_.codec == rtp::Codec::pcmu ? 1 : 2;
    const uint32_t seq_ts = s.ts;
    const uint16_t seq = s.seq++;
    s.ts += samples();
    if (o_.loss_permille && rng_.below(1000) < o_.loss_permille)
      return ctx.counters[kInjectedLoss].add();
    // The tone is periodic over one second, so the offset is the timestamp modulo the rate.
    const size_t off = size_t(seq_ts % o_.clock_rate) * bytes_per;
    uint8_t pkt[kRtpMax];
    rtp::proto::write_rtp_header(
        pkt, {.marker = false, .pt = o_.pt, .seq = seq, .timestamp = seq_ts, .ssrc = s.ssrc});
    const size_t first = std::min(n, tone_.size() - off);
    std::memcpy(pkt + rtp::proto::kRtpHeaderSize, tone_.data() + off, first);
    std::memcpy(pkt + rtp::proto::kRtpHeaderSize + first, tone_.data(), n - first);
    const size_t len = rtp::proto::kRtpHeaderSize + n;
    if (o_.reorder_permille && s.held_len == 0 && rng_.below(1000) < o_.reorder_permille) {
      std::memcpy(s.held.data(), pkt, len);  // sent right after the next one
      s.held_len = len;
      return ctx.counters[kInjectedReorder].add();
    }
    transmit(ctx, pkt, len);
    if (s.held_len) {
      transmit(ctx, s.held.data(), s.held_len);
      s.held_len = 0;
    }
  }

  template <class Io>
  void transmit(rt::Ctx<Io>& ctx, const uint8_t* pkt, size_t len) {
    uint8_t* out = ctx.io.dgram_reserve(sock_, o_.peer, uint32_t(len));
    if (!out) return ctx.counters[kTxFull].add();
    std::memcpy(out, pkt, len);
    ctx.io.dgram_commit(uint32_t(len));
    ++sender_.packets;
    sender_.octets += uint32_t(len - rtp::proto::kRtpHeaderSize);
    ctx.counters[kRtpOut].add();
  }

  template <class Io>
  void send_report(rt::Ctx<Io>& ctx, bool bye) {
    // The SR's RTP timestamp is the source's clock at this instant, from the nominal start.
    const uint64_t elapsed = ctx.now_ns - sender_.t0_ns;
    const uint32_t rtp_now = sender_.ts0 + rtp::rtp_units(elapsed, o_.clock_rate);
    uint8_t buf[kRtcpMax];
    const size_t n =
        rtp::write_report(buf, sender_, remote_, ctx.now_ns, ntp_now(ctx), rtp_now, o_.cname, bye);
    if (n == 0) return;
    avg_rtcp_size_ += (double(n + 28) - avg_rtcp_size_) / 16;  // RFC 3550 6.3.3, with UDP/IP
    const int64_t lost = int64_t{remote_.stats.expected()} - remote_.stats.received();
    if (remote_.seen && remote_.stats.valid()) {
      ctx.counters[kFractionLost].set(last_fraction(buf));
      ctx.counters[kLost].set(lost > 0 ? uint64_t(lost) : 0);
    }
    const dp::Endpoint to = o_.peer_rtcp.port_be ? o_.peer_rtcp : o_.peer;
    uint8_t* out = ctx.io.dgram_reserve(sock_, to, uint32_t(n));
    if (!out) return ctx.counters[kTxFull].add();
    std::memcpy(out, buf, n);
    ctx.io.dgram_commit(uint32_t(n));
    ctx.counters[kRtcpOut].add();
  }

  // The fraction lost of the block just written (the SR's first block).
  static uint8_t last_fraction(const uint8_t* sr) {
    return (sr[0] & 0x1f) ? sr[rtp::proto::kRtcpHeaderSize + 4 + rtp::proto::kSenderInfoSize + 4]
                          : 0;
  }

  // RFC 3550 6.2: two members, both senders; RTCP gets 5% of the session bandwidth (the
  // payload rate with IP/UDP/RTP headers at 50 packets/s).
  double next_rtcp_s(bool initial) {
    const double session_bw = double(payload_bytes() + 40) * (1000.0 / rtp::kPacketMs);
    return rtp::rtcp_interval(2, 2, 0.05 * session_bw, true, avg_rtcp_size_, initial,
                              double(o_.rtcp_min_ms) / 1000, rng_.uniform());
  }

  rtp::RtpOptions o_;
  bool owner_ = false;
  bool has_sock_ = false;
  bool started_ = false;
  dp::SocketId sock_ = 0;
  uint16_t port_ = 0;
  std::vector<uint8_t> tone_;
  rtp::Sender sender_;
  rtp::Remote remote_;
  rtp::Rng rng_;
  rt::TimerId tx_timer_ = rt::kNoTimer;
  rt::TimerId rtcp_timer_ = rt::kNoTimer;
  int64_t unix_minus_mono_ns_ = 0;
  double avg_rtcp_size_ = 0;
};

}  // namespace cw::svc
