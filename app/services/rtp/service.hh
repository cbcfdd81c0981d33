// The rtp service (docs/rtp.md): one [[service]] table is one UDP port (RTP and RTCP share
// it, RFC 5761) with its configured session (key `peer`) and up to `max_sessions` sessions
// opened and closed at run time (`corewirectl rtp open|close|list`, rt::ServiceCommand).
// Endpoint mode sends a tone (PCMU or L16) every 20 ms and RTCP SR + SDES at the RFC 3550
// 6.2 interval per session, and keeps reception statistics (RFC 3550 A.1, A.3, A.8) and a
// jitter buffer (jitter_buffer.hh) of each peer's stream; relay mode forwards each side's
// packets to the other (the configured pair, and pairs opened at run time).
//
// Every session belongs to the table's worker (key `worker`): its timers run on that
// worker's wheel and its state is touched there only. The port's socket exists on every
// worker (SO_REUSEPORT spreads flows), so a packet may arrive elsewhere: that worker
// validates it and mails the owner the few header fields the statistics need, with the
// session key (the peer's address and port; the owner also matches the SSRC), no payload,
// no allocation. Relay forwarding needs only the route, so every worker forwards what it
// receives: each keeps a copy of the forwarding table (relay_table.hh), which the owner
// updates by broadcast mail when a relay session opens or closes.
// Only the configured peers and the peers of open sessions are accepted (no latching);
// anything else is dropped and counted.
#pragma once

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include "app/runtime/control_contract.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/services/rtp/command.hh"
#include "app/services/rtp/config.hh"
#include "app/services/rtp/protocol.hh"
#include "app/services/rtp/relay_table.hh"
#include "app/services/rtp/session.hh"
#include "dataplane/io.hh"

namespace cw::svc {

class Rtp {
 public:
  using Options = rtp::RtpOptions;
  static constexpr const auto& kOptionKeys = rtp::kRtpOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return rtp::parse_rtp_options(k); }
  // The sessions live on `worker` (the config checks that it exists). No client socket:
  // everything goes out of the table's port, so the DPDK backend, which refuses client UDP
  // sockets with more than one worker, takes any number of workers.
  static rt::WorkerKey owner_worker(const Options& o) { return {int(o.worker), "worker"}; }

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
    kJbLate,
    kJbDuplicates,
    kJbReordered,
    kJbConcealed,
    kPlayoutDelay,
    kSessions,
  };
  static constexpr rt::CounterDecl kCounters[] = {
      {"rtp_in", "RTP packets received from the sessions' peers"},
      {"rtcp_in", "RTCP compound packets received from the sessions' peers"},
      {"rtp_out", "RTP packets sent (tone source)"},
      {"rtcp_out", "RTCP compound packets sent (SR + SDES)"},
      {"relayed", "Packets forwarded to the other side (relay mode)"},
      {"unknown_source", "Packets from an address that is not a session's peer: dropped"},
      {"bad_rtp", "Malformed RTP packets (RFC 3550 5.1, A.1 checks): dropped"},
      {"bad_rtcp", "Malformed RTCP compound packets (RFC 3550 A.2 checks): dropped"},
      {"seq_not_counted", "RTP packets in probation or a sequence jump (RFC 3550 A.1)"},
      {"ssrc_changes", "Times a peer's stream changed SSRC (statistics restarted)"},
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
      {"jb_late", "RTP packets that arrived after their playout time (jitter buffer)"},
      {"jb_duplicates", "RTP packets the jitter buffer already had: dropped"},
      {"jb_reordered", "RTP packets behind a higher sequence number already received"},
      {"jb_concealed", "Playout slots with no packet to play (lost or late)"},
      {"playout_delay", "Jitter buffer playout delay, RTP timestamp units", rt::CounterKind::gauge},
      {"sessions", "Sessions open (the configured one included)", rt::CounterKind::gauge},
  };

  Rtp(const rt::ServiceCtx& c, const Options& o)
      : o_(o), owner_(o.worker == c.worker), tone_(rtp::make_tone(o)) {
    // Its one socket: the udp server socket (the config requires `udp`).
    for (const rt::SocketRef& s : c.sockets)
      if (s.server && s.transport == dp::Transport::udp) {
        sock_ = s.id;
        has_sock_ = true;
      }
    if (has_sock_ && sock_ < c.bound.size()) port_ = c.bound[sock_].port_be;
    config_ssrc_ = o.ssrc ? o.ssrc : uint32_t(0x43570000u ^ port_ << 4 ^ c.service);
    rng_.s ^= uint64_t{config_ssrc_} << 32 | c.worker;
    if (rng_.s == 0) rng_.s = 1;  // xorshift's one fixed point
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    unix_minus_mono_ns_ =
        int64_t(real.tv_sec - mono.tv_sec) * 1'000'000'000 + (real.tv_nsec - mono.tv_nsec);
    // A relay's run-time sessions: both sides of each in every worker's forwarding table.
    if (relay_sessions()) relay_ = rtp::RelayTable(2 * size_t(o.max_sessions));
    if (!owner_) return;
    // The owner's session table: slot 0 the configured session, then max_sessions slots for
    // run-time sessions, all allocated now (nothing is allocated per packet; open and close
    // touch only the two maps, on the control path).
    sessions_.resize(1 + (takes_sessions() ? size_t(o.max_sessions) : 0));
    if (relay_sessions()) relays_.resize(1 + size_t(o.max_sessions));
    for (rtp::Session& s : sessions_) s.jb = rtp::JitterBuffer(rtp::playout_for(o.clock_rate));
    free_.reserve(o.max_sessions);
    for (uint32_t i = o.max_sessions; i >= 1; --i) free_.push_back(i);
    if (takes_sessions()) {
      by_peer_.reserve(o.max_sessions);
      by_ours_.reserve(o.max_sessions);
    }
    rtp::Session& cs = sessions_[0];
    cs.configured = true;
    cs.peer = o.peer;
    cs.peer_rtcp = o.peer_rtcp;
    cs.pt = o.pt;
    cs.loss_permille = o.loss_permille;
    cs.jitter_ms = o.jitter_ms;
    cs.reorder_permille = o.reorder_permille;
    cs.sender.held.resize(kRtpMax);  // reorder injection holds one packet
    init_sender(cs, config_ssrc_);
  }

  // Starts the configured session's timers on the owner's first loop iteration (the factory
  // has no Ctx).
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (started_ || !owner_ || !has_sock_ || !o_.valid) return;
    if (o_.mode != rtp::Mode::endpoint) {
      started_ = true;
      ctx.counters[kSessions].set(open_sessions());
      return;
    }
    // A full timer pool (counted timers_full) is retried on the next iteration.
    rtp::Session& s = sessions_[0];
    if (start_timers(ctx, s, 0)) {
      s.open = true;
      started_ = true;
      ctx.counters[kSessions].set(open_sessions());
    }
  }

  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t user) {
    const uint64_t slot = user >> 2;
    if (slot >= sessions_.size() || !sessions_[slot].open) return;  // closed: cancelled
    rtp::Session& s = sessions_[slot];
    if ((user & 3) == kTimerTx) {
      // The playout clock runs with the sender tick: what is due leaves the jitter buffer.
      const rtp::JitterCounts before = s.jb.counts();
      s.jb.release(rtp::rtp_units(ctx.now_ns, o_.clock_rate));
      jb_counted(ctx, before, s);
      send_tone(ctx, s);
      // The next nominal time, late by the injected jitter; far behind (a stalled loop):
      // skip the missed slots, their timestamps included, rather than burst.
      s.sender.next_ns += rtp::kPacketNs;
      if (s.sender.next_ns + 5 * rtp::kPacketNs < ctx.now_ns) {
        const uint64_t skip = (ctx.now_ns - s.sender.next_ns) / rtp::kPacketNs;
        s.sender.next_ns += skip * rtp::kPacketNs;
        s.sender.ts += uint32_t(skip * samples());
      }
      uint64_t at = s.sender.next_ns;
      if (s.jitter_ms) at += uint64_t(rng_.below(s.jitter_ms * 1000 + 1)) * 1000;
      ctx.timer_rearm(id, at);
    } else if ((user & 3) == kTimerRtcp) {
      send_report(ctx, s, false);
      ctx.timer_rearm(id, ctx.now_ns + uint64_t(next_rtcp_s(s, false) * 1e9));
    }
  }

  // Leaving the sessions (RFC 3550 6.3.7): a last report with BYE each, flushed by the
  // runtime.
  template <class Io>
  void on_stop(rt::Ctx<Io>& ctx) {
    if (o_.mode != rtp::Mode::endpoint) return;
    for (rtp::Session& s : sessions_)
      if (s.open) send_report(ctx, s, true);
  }

  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    const bool from_a = o_.valid && from(it.peer, o_.peer);
    const bool from_b = o_.valid && o_.mode == rtp::Mode::relay && from(it.peer, o_.peer_b);
    const bool configured = from_a || from_b;
    // A relay's run-time sessions are in every worker's table; an endpoint's are known to
    // the owner only: another peer's packets go there to be matched (or counted
    // unknown_source), once well-formed.
    const rtp::RelayTable::Entry* route = nullptr;
    if (!configured) {
      if (o_.mode == rtp::Mode::relay) {
        route = relay_.find(rtp::endpoint_key(it.peer));
        if (!route) return ctx.counters[kUnknownSource].add();
      } else if (!takes_sessions()) {
        return ctx.counters[kUnknownSource].add();
      }
    }
    const dp::Endpoint relay_to = route    ? rtp::endpoint_of_key(route->dest)
                                  : from_a ? o_.peer_b
                                           : o_.peer;
    const rtp::proto::Bytes pkt(it.data, it.len);
    const rtp::proto::Kind k = rtp::proto::classify(pkt);
    // The session key in mail: none for the configured session, else the peer's endpoint.
    void* const key =
        configured ? nullptr : reinterpret_cast<void*>(uintptr_t(rtp::endpoint_key(it.peer)));
    if (k == rtp::proto::Kind::rtcp) {
      rtp::proto::Compound c;
      if (rtp::proto::parse_rtcp(pkt, c) != rtp::proto::Error::ok) return bad(ctx, kBadRtcp);
      if (o_.mode == rtp::Mode::relay) {
        ctx.counters[kRtcpIn].add();
        return relay(ctx, it, relay_to);
      }
      return rtcp_in(ctx, c, key);
    }
    rtp::proto::RtpPacket p;
    if (k == rtp::proto::Kind::bad || rtp::proto::parse_rtp(pkt, p) != rtp::proto::Error::ok)
      return bad(ctx, kBadRtp);
    if (o_.mode == rtp::Mode::relay) {
      ctx.counters[kRtpIn].add();
      ctx.svc->requests.add();
      return relay(ctx, it, relay_to);
    }
    // Arrival in RTP timestamp units (A.8), from the one monotonic clock every worker reads.
    const uint32_t arrival = rtp::rtp_units(ctx.now_ns, o_.clock_rate);
    rt::Mail m;
    m.kind = kMailRtp;
    m.a = uint64_t{p.timestamp} << 32 | arrival;
    m.b = uint64_t{p.ssrc} << 32 | p.seq;
    m.p = key;
    to_owner(ctx, m);
  }

  template <class Io>
  void on_mail(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    switch (m.kind) {
      case kMailRtp: {
        rtp::Session* s = by_peer(m.p, uint32_t(m.b >> 32));
        if (!s) return ctx.counters[kUnknownSource].add();
        rtp_owner(ctx, *s, uint32_t(m.b >> 32), uint16_t(m.b), uint32_t(m.a >> 32), uint32_t(m.a));
        break;
      }
      case kMailRtcp: {
        rtp::Session* s = by_peer(m.p, uint32_t(m.a));
        if (!s) return ctx.counters[kUnknownSource].add();
        ++s->rtcp_in;
        ctx.counters[kRtcpIn].add();
        break;
      }
      case kMailSr:
        if (rtp::Session* s = by_peer(m.p, uint32_t(m.a >> 32))) {
          s->remote.last_sr = uint32_t(m.a);
          s->remote.last_sr_ns = m.b;
        }
        break;
      case kMailBlock:
        if (rtp::Session* s = by_ours(m.p, uint32_t(m.b))) peer_block(ctx, *s, m);
        break;
      case rt::kMailServiceCommand:
        command(ctx, m);
        break;
      case kMailRelayAdd:  // from the owner: a relay session's two routes
        (void)relay_.insert(m.a, m.b, uint32_t(uintptr_t(m.p)));
        (void)relay_.insert(m.b, m.a, uint32_t(uintptr_t(m.p)));
        break;
      case kMailRelayDel:
        (void)relay_.erase(m.a);
        (void)relay_.erase(m.b);
        break;
      case rt::kMailDrain:
        draining_ = true;  // no new sessions; the open ones run until the workers stop
        break;
      default:
        break;  // enable/disable: a session has nothing to finish
    }
  }

  // Test access (owner's view): the configured session, and a session by slot.
  const rtp::Remote& remote() const { return sessions_[0].remote; }
  const rtp::Sender& sender() const { return sessions_[0].sender; }
  const rtp::Session* session(size_t slot) const {
    return slot < sessions_.size() && sessions_[slot].open ? &sessions_[slot] : nullptr;
  }
  uint64_t unix_minus_mono_ns() const { return uint64_t(unix_minus_mono_ns_); }

 private:
  enum : uint64_t { kTimerTx = 1, kTimerRtcp = 2 };  // timer user = slot << 2 | kind
  enum : uint16_t { kMailRtp = 1, kMailSr, kMailBlock, kMailRtcp, kMailRelayAdd, kMailRelayDel };
  static constexpr size_t kRtpMax = rtp::proto::kRtpHeaderSize + 48000 * 2 / 50;
  static constexpr size_t kRtcpMax = 512;

  // A run-time session's keys: the peer's endpoint with the peer's SSRC (0: any), and the
  // peer's endpoint with our SSRC (how its report blocks name us).
  struct Key {
    uint64_t ep = 0;
    uint32_t ssrc = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = (k.ep ^ uint64_t{k.ssrc} << 17) * 0x9e3779b97f4a7c15ull;
      return size_t(h ^ h >> 29);
    }
  };

  // The peer rule (docs/rtp.md): its address and port, or with peer_match = "address" its
  // address from any port (senders such as GStreamer's udpsink use ephemeral ports).
  bool from(const dp::Endpoint& src, const dp::Endpoint& peer) const {
    return src.addr_be == peer.addr_be && (o_.match_address || src.port_be == peer.port_be);
  }
  bool takes_sessions() const { return o_.mode == rtp::Mode::endpoint && o_.max_sessions > 0; }
  bool relay_sessions() const { return o_.mode == rtp::Mode::relay && o_.max_sessions > 0; }
  uint32_t samples() const { return o_.clock_rate / (1000 / rtp::kPacketMs); }
  size_t payload_bytes() const { return samples() * (o_.codec == rtp::Codec::pcmu ? 1 : 2); }
  uint64_t open_sessions() const {
    if (o_.mode == rtp::Mode::relay) return uint64_t(o_.valid) + relays_open_;
    return (sessions_.empty() ? 0 : uint64_t(sessions_[0].open)) + by_peer_.size();
  }

  // Owner: the session a packet from the peer `key` with SSRC `ssrc` belongs to (the one
  // expecting that SSRC, else the one taking any), or nullptr.
  rtp::Session* by_peer(void* key, uint32_t ssrc) {
    if (!owner_) return nullptr;
    // The configured session hears its peer from the start, before its timers run.
    if (!key) return o_.valid && o_.mode == rtp::Mode::endpoint ? &sessions_[0] : nullptr;
    const uint64_t ep = uint64_t(reinterpret_cast<uintptr_t>(key));
    auto it = by_peer_.find({ep, ssrc});
    if (it == by_peer_.end()) it = by_peer_.find({ep, 0});
    return it == by_peer_.end() ? nullptr : &sessions_[it->second];
  }
  // Owner: the session whose stream a report block from the peer `key` is about.
  rtp::Session* by_ours(void* key, uint32_t our_ssrc) {
    if (!owner_) return nullptr;
    if (!key)
      return by_peer(key, 0) && sessions_[0].sender.ssrc == our_ssrc ? &sessions_[0] : nullptr;
    auto it = by_ours_.find({uint64_t(reinterpret_cast<uintptr_t>(key)), our_ssrc});
    return it == by_ours_.end() ? nullptr : &sessions_[it->second];
  }

  void init_sender(rtp::Session& s, uint32_t ssrc) {
    s.sender.ssrc = ssrc;
    s.sender.seq = uint16_t(rng_.next());
    s.sender.ts = uint32_t(rng_.next());
    s.avg_rtcp_size = 28 + 28 + 24 + 4 + 4 + double(o_.cname.size() + 4);
  }

  // Owner: the session's sender tick (now) and first report (RFC 3550 6.2's initial half
  // interval). False, with neither set, when the timer pool is full.
  template <class Io>
  bool start_timers(rt::Ctx<Io>& ctx, rtp::Session& s, uint64_t slot) {
    s.sender.next_ns = ctx.now_ns;
    s.sender.t0_ns = ctx.now_ns;
    s.sender.ts0 = s.sender.ts;
    s.tx_timer = ctx.timer_at(ctx.now_ns, slot << 2 | kTimerTx);
    s.rtcp_timer = ctx.timer_after(uint64_t(next_rtcp_s(s, true) * 1e9), slot << 2 | kTimerRtcp);
    if (s.tx_timer != rt::kNoTimer && s.rtcp_timer != rt::kNoTimer) return true;
    if (s.tx_timer != rt::kNoTimer) ctx.timer_cancel(s.tx_timer);
    if (s.rtcp_timer != rt::kNoTimer) ctx.timer_cancel(s.rtcp_timer);
    s.tx_timer = s.rtcp_timer = rt::kNoTimer;
    return false;
  }

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
  void relay(rt::Ctx<Io>& ctx, const dp::RxItem& it, const dp::Endpoint& to) {
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

  // The jitter buffer's new counts since `before`, into the service's counters.
  template <class Io>
  void jb_counted(rt::Ctx<Io>& ctx, const rtp::JitterCounts& before, const rtp::Session& s) {
    const rtp::JitterCounts& n = s.jb.counts();
    if (n.late != before.late) ctx.counters[kJbLate].add(n.late - before.late);
    if (n.duplicates != before.duplicates)
      ctx.counters[kJbDuplicates].add(n.duplicates - before.duplicates);
    if (n.reordered != before.reordered)
      ctx.counters[kJbReordered].add(n.reordered - before.reordered);
    if (n.concealed != before.concealed)
      ctx.counters[kJbConcealed].add(n.concealed - before.concealed);
    if (s.configured) ctx.counters[kPlayoutDelay].set(s.jb.delay());
  }

  // The owner: one RTP packet's header fields into the session's statistics and jitter
  // buffer.
  template <class Io>
  void rtp_owner(rt::Ctx<Io>& ctx, rtp::Session& s, uint32_t ssrc, uint16_t seq, uint32_t ts,
                 uint32_t arrival) {
    ++s.rtp_in;
    ctx.counters[kRtpIn].add();
    ctx.svc->requests.add();
    rtp::Remote& r = s.remote;
    if (!r.seen || ssrc != r.ssrc) {
      // A new SSRC (the first, or a restart of the peer): statistics start again.
      if (r.seen) ctx.counters[kSsrcChanges].add();
      r = rtp::Remote{};
      r.seen = true;
      r.ssrc = ssrc;
      r.stats.start(seq);
      s.jb.restart();
    }
    if (r.stats.update(seq) != rtp::SeqResult::valid) return ctx.counters[kNotCounted].add();
    r.stats.update_jitter(arrival, ts);
    const rtp::JitterCounts before = s.jb.counts();
    s.jb.add(seq, ts, arrival);
    jb_counted(ctx, before, s);
    if (!s.configured) return;
    ctx.counters[kJitter].set(r.stats.jitter());
    ctx.counters[kExpected].set(r.stats.expected());
    const int64_t lost = int64_t{r.stats.expected()} - r.stats.received();
    ctx.counters[kLost].set(lost > 0 ? uint64_t(lost) : 0);
  }

  // The owner: the peer's report block about our stream (its view, and the round trip).
  template <class Io>
  void peer_block(rt::Ctx<Io>& ctx, rtp::Session& s, const rt::Mail& m) {
    rtp::PeerView& v = s.peer_view;
    v.fraction_lost = uint8_t(m.a >> 56);
    // 24-bit signed on the wire; a negative count (duplicates) shows as 0 in the gauge.
    v.cumulative_lost = int32_t(uint32_t(m.a >> 32) << 8) >> 8;
    v.jitter = uint32_t(m.a);
    if (m.b >> 32) v.rtt_ntp = uint32_t(m.b >> 32);
    if (!s.configured) return;
    ctx.counters[kPeerFractionLost].set(v.fraction_lost);
    ctx.counters[kPeerLost].set(v.cumulative_lost > 0 ? uint64_t(v.cumulative_lost) : 0);
    ctx.counters[kPeerJitter].set(v.jitter);
    if (m.b >> 32) ctx.counters[kRttUs].set((m.b >> 32) * 1'000'000 / 65536);
  }

  // An accepted compound from a peer (`key`: nullptr for the configured session's, else the
  // peer's endpoint): mailed to the owner as the compound's arrival, its SR's time (for our
  // LSR/DLSR) and its report blocks (the owner keeps those about one of our streams).
  template <class Io>
  void rtcp_in(rt::Ctx<Io>& ctx, const rtp::proto::Compound& c, void* key) {
    for (size_t i = 0; i < c.n; ++i) {
      const rtp::proto::RtcpPacket& p = c.pkts[i];
      if (p.type != rtp::proto::kSr && p.type != rtp::proto::kRr) continue;
      const rtp::proto::Report r = rtp::proto::read_report(p);
      if (i == 0) {  // A.2: a compound starts with an SR or RR, its sender's SSRC
        rt::Mail m;
        m.kind = kMailRtcp;
        m.a = r.ssrc;
        m.p = key;
        to_owner(ctx, m);
      }
      if (r.has_sender) {
        rt::Mail m;
        m.kind = kMailSr;
        m.a = uint64_t{r.ssrc} << 32 | rtp::ntp_middle(r.sender.ntp);
        m.b = ctx.now_ns;
        m.p = key;
        to_owner(ctx, m);
      }
      for (size_t b = 0; b < r.count; ++b) {
        const rtp::proto::ReportBlock rb = r.block(b);
        rt::Mail m;
        m.kind = kMailBlock;
        m.a = uint64_t{rb.fraction_lost} << 56 |
              uint64_t(uint32_t(rb.cumulative_lost) & 0xffffff) << 32 | rb.jitter;
        m.b = rb.ssrc;
        // RFC 3550 6.4.1: RTT = A - LSR - DLSR in 1/65536 s, when the peer had an SR of ours.
        if (rb.lsr != 0) {
          const uint32_t a = rtp::ntp_middle(ntp_now(ctx));
          const uint32_t rtt = a - rb.lsr - rb.dlsr;
          m.b |= uint64_t{rtt < 0x80000000u ? (rtt ? rtt : 1) : 0} << 32;
        }
        m.p = key;
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
  void send_tone(rt::Ctx<Io>& ctx, rtp::Session& ses) {
    rtp::Sender& s = ses.sender;
    const size_t n = payload_bytes();
    const size_t bytes_per = o_.codec == rtp::Codec::pcmu ? 1 : 2;
    const uint32_t seq_ts = s.ts;
    const uint16_t seq = s.seq++;
    s.ts += samples();
    if (ses.loss_permille && rng_.below(1000) < ses.loss_permille)
      return ctx.counters[kInjectedLoss].add();
    // The tone is periodic over one second, so the offset is the timestamp modulo the rate.
    const size_t off = size_t(seq_ts % o_.clock_rate) * bytes_per;
    uint8_t pkt[kRtpMax];
    rtp::proto::write_rtp_header(
        pkt, {.marker = false, .pt = ses.pt, .seq = seq, .timestamp = seq_ts, .ssrc = s.ssrc});
    const size_t first = std::min(n, tone_.size() - off);
    std::memcpy(pkt + rtp::proto::kRtpHeaderSize, tone_.data() + off, first);
    std::memcpy(pkt + rtp::proto::kRtpHeaderSize + first, tone_.data(), n - first);
    const size_t len = rtp::proto::kRtpHeaderSize + n;
    if (ses.reorder_permille && s.held_len == 0 && rng_.below(1000) < ses.reorder_permille) {
      std::memcpy(s.held.data(), pkt, len);  // sent right after the next one
      s.held_len = len;
      return ctx.counters[kInjectedReorder].add();
    }
    transmit(ctx, ses, pkt, len);
    if (s.held_len) {
      transmit(ctx, ses, s.held.data(), s.held_len);
      s.held_len = 0;
    }
  }

  template <class Io>
  void transmit(rt::Ctx<Io>& ctx, rtp::Session& ses, const uint8_t* pkt, size_t len) {
    uint8_t* out = ctx.io.dgram_reserve(sock_, ses.peer, uint32_t(len));
    if (!out) return ctx.counters[kTxFull].add();
    std::memcpy(out, pkt, len);
    ctx.io.dgram_commit(uint32_t(len));
    ++ses.sender.packets;
    ses.sender.octets += uint32_t(len - rtp::proto::kRtpHeaderSize);
    ctx.counters[kRtpOut].add();
  }

  template <class Io>
  void send_report(rt::Ctx<Io>& ctx, rtp::Session& s, bool bye) {
    // The SR's RTP timestamp is the source's clock at this instant, from the nominal start.
    const uint64_t elapsed = ctx.now_ns - s.sender.t0_ns;
    const uint32_t rtp_now = s.sender.ts0 + rtp::rtp_units(elapsed, o_.clock_rate);
    uint8_t buf[kRtcpMax];
    const size_t n = rtp::write_report(buf, s.sender, s.remote, ctx.now_ns, ntp_now(ctx), rtp_now,
                                       o_.cname, bye);
    if (n == 0) return;
    s.avg_rtcp_size += (double(n + 28) - s.avg_rtcp_size) / 16;  // RFC 3550 6.3.3, with UDP/IP
    if (s.remote.seen && s.remote.stats.valid()) {
      s.fraction_lost = last_fraction(buf);
      if (s.configured) {
        const int64_t lost = int64_t{s.remote.stats.expected()} - s.remote.stats.received();
        ctx.counters[kFractionLost].set(s.fraction_lost);
        ctx.counters[kLost].set(lost > 0 ? uint64_t(lost) : 0);
      }
    }
    const dp::Endpoint to = s.peer_rtcp.port_be ? s.peer_rtcp : s.peer;
    uint8_t* out = ctx.io.dgram_reserve(sock_, to, uint32_t(n));
    if (!out) return ctx.counters[kTxFull].add();
    std::memcpy(out, buf, n);
    ctx.io.dgram_commit(uint32_t(n));
    ++s.rtcp_out;
    ctx.counters[kRtcpOut].add();
  }

  // The fraction lost of the block just written (the SR's first block).
  static uint8_t last_fraction(const uint8_t* sr) {
    return (sr[0] & 0x1f) ? sr[rtp::proto::kRtcpHeaderSize + 4 + rtp::proto::kSenderInfoSize + 4]
                          : 0;
  }

  // RFC 3550 6.2: two members, both senders; RTCP gets 5% of the session bandwidth (the
  // payload rate with IP/UDP/RTP headers at 50 packets/s).
  double next_rtcp_s(const rtp::Session& s, bool initial) {
    const double session_bw = double(payload_bytes() + 40) * (1000.0 / rtp::kPacketMs);
    return rtp::rtcp_interval(2, 2, 0.05 * session_bw, true, s.avg_rtcp_size, initial,
                              double(o_.rtcp_min_ms) / 1000, rng_.uniform());
  }

  // ---- Run-time sessions (control path: may allocate, never on the packet path) ----

  static std::string error_json(const std::string& e) {
    std::string out = "{\"ok\":false,\"error\":\"";
    for (char ch : e) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    return out + "\"}";
  }
  static void answer(rt::ServiceCommand* c, std::string reply) {
    c->reply = std::move(reply);
    c->done.store(true, std::memory_order_release);  // the block is the control thread's again
  }

  // A command from the control socket (rt::ServiceCommand): it reaches worker 0 and is
  // forwarded to the owner, which runs it and answers.
  template <class Io>
  void command(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    auto* c = static_cast<rt::ServiceCommand*>(m.p);
    if (!c) return;
    if (!owner_) {
      if (ctx.post(o_.worker, m) != rt::Post::failed) return;  // the owner answers
      return answer(c, error_json("the owning worker's mailbox is full: try again"));
    }
    rtp::Command cmd;
    const std::string e = rtp::parse_command(c->request, cmd);
    if (!e.empty()) return answer(c, error_json(e));
    const bool relay = o_.mode == rtp::Mode::relay;
    switch (cmd.op) {
      case rtp::CommandOp::open:
        return answer(c, relay ? open_relay(ctx, cmd) : open_session(ctx, cmd));
      case rtp::CommandOp::close:
        return answer(c, relay ? close_relay(ctx, cmd) : close_session(ctx, cmd));
      case rtp::CommandOp::list:
        return answer(c, relay ? list_relays() : list_sessions());
    }
  }

  // A relay session at run time: both routes into the owner's table, then broadcast to the
  // other workers (each forwards what it receives). A broadcast that did not reach every
  // worker is undone (the delete reaches the others after the add: mail between two workers
  // keeps its order), so a session is either routed everywhere or refused.
  template <class Io>
  std::string open_relay(rt::Ctx<Io>& ctx, const rtp::Command& cmd) {
    if (!relay_sessions())
      return error_json("this relay table takes no sessions at run time (max_sessions = 0)");
    if (cmd.peer_b.port_be == 0) return error_json("a relay session needs peer_b (side B)");
    if (!has_sock_) return error_json("the table has no udp port");
    if (draining_) return error_json("draining: no new sessions");
    if (free_.empty())
      return error_json("session table full (max_sessions = " + std::to_string(o_.max_sessions) +
                        ")");
    for (const dp::Endpoint& e : {cmd.peer, cmd.peer_b}) {
      if (o_.valid && (from(e, o_.peer) || from(e, o_.peer_b)))
        return error_json(dp::to_string(e) + " is a side of the table's configured session");
      if (const rtp::RelayTable::Entry* x = relay_.find(rtp::endpoint_key(e)))
        return error_json("duplicate: " + dp::to_string(e) + " is a side of session " +
                          std::to_string(x->slot));
    }
    const uint64_t ka = rtp::endpoint_key(cmd.peer), kb = rtp::endpoint_key(cmd.peer_b);
    const uint32_t slot = free_.back();
    // Room for both: the table holds 2 x max_sessions routes and a slot was free.
    (void)relay_.insert(ka, kb, slot);
    (void)relay_.insert(kb, ka, slot);
    rt::Mail m;
    m.kind = kMailRelayAdd;
    m.a = ka;
    m.b = kb;
    m.p = reinterpret_cast<void*>(uintptr_t(slot));
    if (ctx.broadcast(m, false) != 0) {
      relay_.erase(ka);
      relay_.erase(kb);
      m.kind = kMailRelayDel;
      (void)ctx.broadcast(m, false);
      return error_json("a worker's mailbox is full: try again");
    }
    free_.pop_back();
    relays_[slot] = {cmd.peer, cmd.peer_b, true};
    ++relays_open_;
    ctx.counters[kSessions].set(open_sessions());
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"ok\":true,\"session\":%u,\"peer\":\"%s\",\"peer_b\":\"%s\",\"worker\":%u}",
                  slot, dp::to_string(cmd.peer).c_str(), dp::to_string(cmd.peer_b).c_str(),
                  ctx.worker);
    return buf;
  }

  // Closing a relay session (by either side): its routes leave every worker's table. When
  // the broadcast misses a worker the session stays open on the owner, to be closed again.
  template <class Io>
  std::string close_relay(rt::Ctx<Io>& ctx, const rtp::Command& cmd) {
    if (cmd.peer_ssrc) return error_json("a relay session has no peer_ssrc");
    const rtp::RelayTable::Entry* x =
        relay_sessions() ? relay_.find(rtp::endpoint_key(cmd.peer)) : nullptr;
    if (!x) return error_json("no relay session with side " + dp::to_string(cmd.peer));
    const uint32_t slot = x->slot;
    RelaySlot& r = relays_[slot];
    rt::Mail m;
    m.kind = kMailRelayDel;
    m.a = rtp::endpoint_key(r.a);
    m.b = rtp::endpoint_key(r.b);
    if (ctx.broadcast(m, false) != 0)
      return error_json("a worker's mailbox is full: the session stays open, close it again");
    relay_.erase(m.a);
    relay_.erase(m.b);
    r = RelaySlot{};
    free_.push_back(slot);
    --relays_open_;
    ctx.counters[kSessions].set(open_sessions());
    return "{\"ok\":true,\"closed\":" + std::to_string(slot) + "}";
  }

  // A relay table's sessions (the configured pair as session 0).
  std::string list_relays() const {
    std::string out = "{\"ok\":true,\"worker\":" + std::to_string(o_.worker) +
                      ",\"mode\":\"relay\",\"max_sessions\":" + std::to_string(o_.max_sessions) +
                      ",\"sessions\":[";
    bool first = true;
    auto add = [&](size_t slot, const dp::Endpoint& a, const dp::Endpoint& b, bool configured) {
      out += std::string(first ? "" : ",") + "{\"session\":" + std::to_string(slot) +
             ",\"configured\":" + (configured ? "true" : "false") + ",\"peer\":\"" +
             dp::to_string(a) + "\",\"peer_b\":\"" + dp::to_string(b) + "\"}";
      first = false;
    };
    if (o_.valid) add(0, o_.peer, o_.peer_b, true);
    for (size_t i = 1; i < relays_.size(); ++i)
      if (relays_[i].open) add(i, relays_[i].a, relays_[i].b, false);
    return out + "]}";
  }

  template <class Io>
  std::string open_session(rt::Ctx<Io>& ctx, const rtp::Command& cmd) {
    if (cmd.peer_b.port_be) return error_json("peer_b: only a relay table's sessions have one");
    if (!has_sock_) return error_json("the table has no udp port");
    if (draining_) return error_json("draining: no new sessions");
    if (free_.empty())
      return error_json("session table full (max_sessions = " + std::to_string(o_.max_sessions) +
                        ")");
    if (o_.valid && from(cmd.peer, o_.peer))
      return error_json("that peer is the table's configured session");
    const uint64_t ep = rtp::endpoint_key(cmd.peer);
    if (by_peer_.count({ep, cmd.peer_ssrc}))
      return error_json("duplicate: a session with peer " + dp::to_string(cmd.peer) +
                        (cmd.peer_ssrc ? " and that peer_ssrc" : " (any peer_ssrc)") + " is open");
    uint32_t ssrc = cmd.ssrc;
    if (ssrc && by_ours_.count({ep, ssrc}))
      return error_json("duplicate: ssrc " + std::to_string(ssrc) + " is in use toward that peer");
    while (ssrc == 0 || by_ours_.count({ep, ssrc})) ssrc = uint32_t(rng_.next() >> 32);
    const uint32_t slot = free_.back();
    rtp::Session& s = sessions_[slot];
    s = rtp::Session{};
    s.jb = rtp::JitterBuffer(rtp::playout_for(o_.clock_rate));
    s.peer = cmd.peer;
    s.peer_ssrc = cmd.peer_ssrc;
    s.pt = cmd.pt >= 0 ? uint8_t(cmd.pt) : o_.pt;
    init_sender(s, ssrc);
    if (!start_timers(ctx, s, slot))
      return error_json("the worker's timer pool is full ([runtime] max_timers)");
    s.open = true;
    free_.pop_back();
    by_peer_.emplace(Key{ep, cmd.peer_ssrc}, slot);
    by_ours_.emplace(Key{ep, ssrc}, slot);
    ctx.counters[kSessions].set(open_sessions());
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"ok\":true,\"session\":%u,\"peer\":\"%s\",\"ssrc\":%u,\"worker\":%u}", slot,
                  dp::to_string(cmd.peer).c_str(), ssrc, ctx.worker);
    return buf;
  }

  // Closing sends the last report with BYE (RFC 3550 6.3.7) and frees the slot.
  template <class Io>
  std::string close_session(rt::Ctx<Io>& ctx, const rtp::Command& cmd) {
    const uint64_t ep = rtp::endpoint_key(cmd.peer);
    auto it = by_peer_.find({ep, cmd.peer_ssrc});
    if (it == by_peer_.end())
      return error_json(
          "no session with peer " + dp::to_string(cmd.peer) +
          (cmd.peer_ssrc ? " and peer_ssrc " + std::to_string(cmd.peer_ssrc) : std::string()));
    const uint32_t slot = it->second;
    rtp::Session& s = sessions_[slot];
    send_report(ctx, s, true);
    ctx.timer_cancel(s.tx_timer);
    ctx.timer_cancel(s.rtcp_timer);
    by_peer_.erase(it);
    by_ours_.erase(Key{ep, s.sender.ssrc});
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "{\"ok\":true,\"closed\":%u,\"rtp_out\":%u,\"rtp_in\":%" PRIu64 ",\"bye\":true}",
                  slot, s.sender.packets, s.rtp_in);
    s = rtp::Session{};
    free_.push_back(slot);
    ctx.counters[kSessions].set(open_sessions());
    return buf;
  }

  // Every open session with its statistics, as one JSON object.
  std::string list_sessions() const {
    std::string out = "{\"ok\":true,\"worker\":" + std::to_string(o_.worker) +
                      ",\"max_sessions\":" + std::to_string(o_.max_sessions) + ",\"sessions\":[";
    bool first = true;
    for (size_t i = 0; i < sessions_.size(); ++i) {
      const rtp::Session& s = sessions_[i];
      if (!s.open) continue;
      const rtp::ReceiverStats& st = s.remote.stats;
      const bool valid = s.remote.seen && st.valid();
      const int64_t lost = valid ? int64_t{st.expected()} - st.received() : 0;
      const rtp::JitterCounts& jb = s.jb.counts();
      char buf[1024];
      std::snprintf(
          buf, sizeof buf,
          "%s{\"session\":%zu,\"configured\":%s,\"peer\":\"%s\",\"ssrc\":%u,\"peer_ssrc\":%u,"
          "\"pt\":%u,\"rtp_out\":%u,\"rtp_in\":%" PRIu64 ",\"rtcp_out\":%" PRIu64
          ",\"rtcp_in\":%" PRIu64 ",\"expected\":%u,\"received\":%u,\"lost\":%" PRId64
          ",\"fraction_lost\":%u,\"jitter\":%u,\"rtt_us\":%" PRIu64
          ",\"peer_lost\":%d,\"peer_jitter\":%u,\"jb_played\":%" PRIu64 ",\"jb_late\":%" PRIu64
          ",\"jb_duplicates\":%" PRIu64 ",\"jb_reordered\":%" PRIu64 ",\"jb_concealed\":%" PRIu64
          ",\"playout_delay\":%u}",
          first ? "" : ",", i, s.configured ? "true" : "false", dp::to_string(s.peer).c_str(),
          s.sender.ssrc, s.remote.ssrc, unsigned(s.pt), s.sender.packets, s.rtp_in, s.rtcp_out,
          s.rtcp_in, valid ? st.expected() : 0, valid ? st.received() : 0, lost,
          unsigned(s.fraction_lost), valid ? st.jitter() : 0,
          uint64_t{s.peer_view.rtt_ntp} * 1'000'000 / 65536, s.peer_view.cumulative_lost,
          s.peer_view.jitter, jb.played, jb.late, jb.duplicates, jb.reordered, jb.concealed,
          s.jb.delay());
      out += buf;
      first = false;
    }
    return out + "]}";
  }

  rtp::RtpOptions o_;
  bool owner_ = false;
  bool has_sock_ = false;
  bool started_ = false;
  bool draining_ = false;
  dp::SocketId sock_ = 0;
  uint16_t port_ = 0;
  uint32_t config_ssrc_ = 0;
  std::vector<uint8_t> tone_;
  rtp::Rng rng_;
  int64_t unix_minus_mono_ns_ = 0;
  // Owner only: the session table (slot 0: the configured session), its free run-time slots,
  // and the two keys of each open run-time session.
  std::vector<rtp::Session> sessions_;
  std::vector<uint32_t> free_;
  std::unordered_map<Key, uint32_t, KeyHash> by_peer_;
  std::unordered_map<Key, uint32_t, KeyHash> by_ours_;
  // Relay: every worker's copy of the routes of the run-time sessions; the owner's slots.
  struct RelaySlot {
    dp::Endpoint a{}, b{};
    bool open = false;
  };
  rtp::RelayTable relay_;
  std::vector<RelaySlot> relays_;
  uint32_t relays_open_ = 0;
};

}  // namespace cw::svc
