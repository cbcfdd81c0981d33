// The peer service (docs/cluster.md): QUIC sessions with mutual TLS between corewire nodes,
// the foundation of the cluster. One [[service]] table gives the node's certificate, key and
// CA, the UDP port peers dial (`udp`), and the peers this node dials (`peers`); every worker
// runs a QuicEndpoint (endpoint.hh) for the sessions it holds: the peers it dials (peer i on
// worker i % workers, from that worker's own client port, so the answers come back to it)
// and the ones that dial it on the shared port (SO_REUSEPORT keeps a peer's 4-tuple on one
// worker). Connection timers run on the worker's timer wheel, one per connection slot.
//
// On its streams a node answers requests for channel 0 (echo) with their body; `probe_requests`
// makes it send that many echo requests on every session it dials and check the responses
// (counted probe_ok / probe_bad, probe_done once all came back in order). For benchmarks,
// probe_rtt keeps one of them outstanding and exports the round trips' p50 / p99 (a
// histogram, bench/hist), and probe_bulk streams sink-channel frames the peer consumes and
// times (sink_bytes over sink_us: goodput measured on the receiver).
//
// With `etcd`, the members come from etcd (membership.hh): the process's membership thread
// hands every worker each new view; member X is dialed by worker hash(X) mod workers, from
// a member slot pinned to the certificate X registered. A member that leaves the view has its
// sessions closed (the one dialed to it, and any it dialed here); one that rejoins under a
// new lease is dialed afresh. Worker 0 exports the thread's counters.
//
// Nothing here allocates per packet: the endpoint's buffers and outbox are sized at setup;
// each packet is copied once from the outbox into the worker's send batch, where the kernel
// backends gather consecutive packets to one peer into GSO trains (dataplane/kernel/
// udp_gso.hh).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/services/peer/api.hh"
#include "app/services/peer/api_local.hh"
#include "app/services/peer/config.hh"
#include "app/services/peer/endpoint.hh"
#include "app/services/peer/membership.hh"
#include "app/services/peer/tls.hh"
#include "bench/hist/histogram.hh"
#include "dataplane/io.hh"

namespace cw::svc {

class Peer {
 public:
  static constexpr size_t kDgramHeader = 3;     // kind, channel
  static constexpr uint32_t kDgramWindow = 32;  // probe datagrams in flight
  using Options = peer::PeerOptions;
  static constexpr const auto& kOptionKeys = peer::kPeerOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return peer::parse_peer_options(k); }
  static std::string listen_refusal(const Options& o, uint32_t addr_be) {
    return peer::peer_listen_refusal(o, addr_be);
  }
  static constexpr uint64_t kMemberStatsNs = 100'000'000;  // membership counters' refresh
  static constexpr uint64_t kStallRetryNs = 100'000;       // a full API inbox is retried this soon
  // Every worker's own client port: the sessions it dials send and receive there.
  static std::vector<rt::ClientSocket> client_sockets(const Options&) {
    return {{{dp::Transport::udp, false, {}, rt::kAllWorkers}, "peers"}};
  }

  // The endpoint's counters first, in peer::EpCounter order.
  enum : uint32_t {
    kProbeSent = peer::kEpCounters,
    kProbeOk,
    kProbeBad,
    kProbeDone,
    kProbeUs,
    kEchoed,
    kUnknownChannel,
    kUnexpectedFrames,
    kTxFull,
    kSetupFailed,
    kDgramProbeSent,
    kDgramProbeBack,
    kDgramEchoed,
    kBadDatagrams,
    kDgramEchoFull,
    kMembers,  // the membership thread's counters, in peer::Membership::Stat order
    kMembersUp = kMembers + uint32_t{peer::Membership::kStats},
    kMemberDials,
    kMemberDrops,
    kMemberNoSlot,
    kProbeRttSamples,
    kProbeRttP50,
    kProbeRttP99,
    kBulkSent,
    kSinkFrames,
    kSinkBytes,
    kSinkUs,
    kApi,  // the peer API's counters, in peer::ApiCounter order
  };
  static constexpr rt::CounterDecl kCounters[] = {
      {"sessions_up", "Peer sessions whose handshake completed (dialed and accepted)"},
      {"sessions_closed", "Peer sessions that ended after being up"},
      {"handshake_failed", "Handshakes that failed or timed out"},
      {"peer_refused", "Handshakes refused: the peer's certificate missing or not the CA's"},
      {"accept_no_slot", "New inbound sessions refused: max_inbound reached"},
      {"drop_garbage", "Datagrams on a peer port that are not QUIC: dropped"},
      {"drop_unknown", "QUIC packets for no session of this worker: dropped"},
      {"drop_wrong_worker", "Packets for a session of another worker: dropped"},
      {"drop_version", "Packets of a QUIC version not spoken: dropped"},
      {"outbox_full", "Times a session had more to send than one flush took"},
      {"frames_in", "Frames received on peer streams"},
      {"frames_out", "Frames queued on peer streams"},
      {"bad_frames", "Malformed frames (their session is closed)"},
      {"datagrams_in", "RFC 9221 datagrams received"},
      {"datagrams_out", "RFC 9221 datagrams sent"},
      {"datagrams_dropped", "Datagrams not sent (peer takes none) or not kept (inbox full)"},
      {"sessions_open", "Peer sessions up now", rt::CounterKind::gauge},
      {"peer_mismatch", "Members refused: certificate not the one registered in etcd"},
      {"probe_sent", "Probe requests sent"},
      {"probe_ok", "Probe responses that came back whole and in order"},
      {"probe_bad", "Probe responses out of order or altered"},
      {"probe_done", "Sessions whose probe got every response back"},
      {"probe_us", "Time the last finished probe took, microseconds", rt::CounterKind::gauge},
      {"echoed", "Echo requests answered"},
      {"unknown_channel", "Datagram requests for a channel nothing serves: dropped"},
      {"unexpected_frames", "Responses nobody asked for, requests on our own streams: dropped"},
      {"tx_full", "Packets not sent for want of a transmit buffer (QUIC resends)"},
      {"setup_failed", "Workers whose endpoint could not start (see the log)",
       rt::CounterKind::gauge},
      {"dgram_probe_sent", "Probe datagrams sent (best effort)"},
      {"dgram_probe_back", "Probe datagrams that came back echoed"},
      {"dgram_echoed", "Echo request datagrams answered"},
      {"bad_datagrams", "Datagrams too short or of an unknown kind: dropped"},
      {"dgram_echo_full", "Echo datagrams not sent: the session's datagram queue was full"},
      {"members", "Cluster members in etcd's last view, this node included",
       rt::CounterKind::gauge},
      {"member_joins", "Members that appeared in the view (a restart under a new lease too)"},
      {"member_leaves", "Members that left the view (lease expired or revoked)"},
      {"lease_grants", "etcd leases this node was granted"},
      {"lease_lost", "Times etcd no longer held this node's lease (registered again)"},
      {"etcd_errors", "etcd requests not answered, or answered with an error"},
      {"etcd_bad_replies", "etcd replies that were not what its JSON gateway sends"},
      {"etcd_bad_members", "Member entries skipped in the last read (malformed, too many)",
       rt::CounterKind::gauge},
      {"etcd_up", "1 while etcd answers", rt::CounterKind::gauge},
      {"members_up", "Members whose dialed session is up", rt::CounterKind::gauge},
      {"member_dials", "Members given a slot to dial"},
      {"member_drops", "Dialed member sessions ended: the member left or changed"},
      {"member_no_slot", "Members not dialed: every member slot taken (max_members)"},
      {"probe_rtt_samples", "Round trips in the RTT probe's histogram (warm-up excluded)",
       rt::CounterKind::gauge},
      {"probe_rtt_p50_ns", "The RTT probe's median round trip, ns", rt::CounterKind::gauge},
      {"probe_rtt_p99_ns", "The RTT probe's 99th percentile round trip, ns",
       rt::CounterKind::gauge},
      {"bulk_sent_bytes", "Bulk probe body bytes queued on sink-channel frames"},
      {"sink_frames", "Sink-channel requests consumed"},
      {"sink_bytes", "Sink-channel request body bytes consumed"},
      {"sink_us", "Microseconds from this worker's first sink frame to its latest",
       rt::CounterKind::gauge},
      {"api_requests", "Peer API requests sent"},
      {"api_responses", "Peer API responses received for them"},
      {"api_timeouts", "Peer API requests that timed out (request_timeout)"},
      {"api_down", "Peer API requests failed: their session ended"},
      {"api_refused", "Peer API requests the peer refused: no service on the channel"},
      {"api_served", "Peers' API requests handed to a service here"},
      {"api_answered", "Peer API responses sent"},
      {"api_wait", "Peer API sends told to wait: send ring or pending table full"},
      {"api_late", "Peer API responses for no pending request (timed out): dropped"},
      {"api_bad", "Malformed peer API frames: dropped"},
      {"api_no_channel", "Peers' API requests for a channel nothing opened here: refused"},
      {"api_reply_dropped", "Peer API responses not sent: the requester's session ended"},
  };
  static_assert(std::size(kCounters) == uint32_t{kApi} + uint32_t{peer::kApiCounters});

  Peer(const rt::ServiceCtx& c, const Options& o) : o_(o) {
    for (const rt::SocketRef& s : c.sockets) {
      if (s.transport != dp::Transport::udp) continue;
      if (s.server) {
        server_sock_ = s.id;
        has_server_ = true;
      } else if (s.here) {
        client_sock_ = s.id;
        has_client_ = true;
      }
    }
    if (!has_client_) return;
    tls_ = std::make_unique<peer::TlsContext>();
    if (std::string e = tls_->load(o.cert, o.key, o.ca); !e.empty()) {
      std::fprintf(stderr, "corewire: peer worker %u: %s\n", c.worker, e.c_str());
      tls_.reset();
      return;
    }
    peer::EndpointConfig ec;
    ec.worker = c.worker;
    ec.max_inbound = has_server_ ? o.max_inbound : 0;
    for (size_t i = 0; i < o.peers.size(); ++i)
      if (i % c.workers == c.worker) ec.dial.push_back(o.peers[i]);
    if (has_server_ && server_sock_ < c.bound.size()) ec.server_local = c.bound[server_sock_];
    if (client_sock_ < c.bound.size()) ec.client_local = c.bound[client_sock_];
    ec.idle_timeout_ns = o.idle_timeout_ms * 1'000'000;
    ec.keepalive_ns = o.keepalive_ms * 1'000'000;
    ec.handshake_timeout_ns = o.handshake_timeout_ms * 1'000'000;
    ec.retry_ns = o.retry_ms * 1'000'000;
    ec.stream_window = o.stream_window;
    if (o.membership && !has_server_)
      std::fprintf(stderr,
                   "corewire: peer worker %u: etcd membership needs `udp` (the port "
                   "members dial): not joining\n",
                   c.worker);
    if (o.membership && has_server_) {
      members_ = o.membership;
      self_ = ec.server_local;
      ec.member_slots = o.max_members - 1;
      view_ = std::make_unique<peer::View>();
      prev_ = std::make_unique<peer::View>();
      member_.resize(ec.member_slots);
    }
    ep_ = std::make_unique<peer::QuicEndpoint>(ec, tls_.get());
    peer::ApiConfig ac;
    ac.timeout_ns = o.request_timeout_ms * 1'000'000;
    ac.self = o.advertise.addr_be ? o.advertise : ec.server_local;
    ac.peers = o.peers;
    api_ = std::make_unique<peer::Api>(*ep_, ac);
    timers_.assign(ep_->slots(), rt::kNoTimer);
    probes_.resize(ep_->client_slots());
    probe_buf_.resize(o.probe_bytes);
    if (o.probe_rtt) rtt_ = std::make_unique<bench::Histogram>();
  }

  template <class Io>
  void on_datagrams(rt::Ctx<Io>& ctx, std::span<const dp::RxItem> items) {
    if (!ep_) return;
    for (const dp::RxItem& it : items) {
      const peer::Via via =
          it.sock == client_sock_ && has_client_ ? peer::Via::client : peer::Via::server;
      ep_->on_datagram(via, it.peer, it.data, it.len, ctx.now_ns);
      // QUIC datagrams it carried, now: the inbox holds one packet's worth.
      drain_datagrams(ctx);
    }
    pump(ctx);
  }

  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (!ep_) {
      if (!counted_setup_) {
        counted_setup_ = true;
        ctx.counters[kSetupFailed].set(1);
      }
      return;
    }
    if (!started_) {
      started_ = true;
      ep_->start(ctx.now_ns);
      if (ctx.worker < peer::kMaxApiWorkers) peer::local_apis()[ctx.worker] = api_.get();
    }
    if (members_) tick_members(ctx);
    // The API's timeouts and ended sessions; what its users sent since the last pump.
    api_->tick(ctx.now_ns);
    if (const uint64_t t = api_->next_deadline(); t != peer::kNever) ctx.wake_at(t);
    // Frames left for a full channel inbox are tried again (its user polls every tick).
    if (api_->take_stalled() || ep_->pending()) pump(ctx);
    if (api_->stalled()) ctx.wake_at(ctx.now_ns + kStallRetryNs);
  }

  // The loop has stopped: the membership thread forgets this worker's waker (the last
  // worker to stop stops the thread, which revokes the lease).
  template <class Io>
  void on_stop(rt::Ctx<Io>& ctx) {
    if (members_ && attached_) members_->detach(ctx.worker);
    attached_ = false;
    if (ctx.worker < peer::kMaxApiWorkers && peer::local_apis()[ctx.worker] == api_.get())
      peer::local_apis()[ctx.worker] = nullptr;
  }

  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t slot) {
    if (!ep_ || slot >= timers_.size() || timers_[slot] != id) return;
    timers_[slot] = rt::kNoTimer;  // fired: a new one is set from the slot's next expiry
    ep_->on_expiry(uint32_t(slot), ctx.now_ns);
    pump(ctx);
  }

 private:
  struct MemberSlot {
    bool used = false;
    peer::etcd::Member m;  // the member it dials
  };

  // Which worker dials member id: a hash of the id (every worker of every node agrees).
  static unsigned member_worker(std::string_view id, unsigned workers) {
    uint64_t h = 14695981039346656037ull;  // FNV-1a
    for (char c : id) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return unsigned(h % workers);
  }

  // Once per loop iteration: take a new view, finish assignments that waited for a slot,
  // and refresh the counters every kMemberStatsNs.
  template <class Io>
  void tick_members(rt::Ctx<Io>& ctx) {
    if (!attached_) {
      attached_ = true;
      members_->attach(
          ctx.worker, ctx.workers, self_, [](void* io) { static_cast<Io*>(io)->wake(); }, &ctx.io);
    }
    std::swap(view_, prev_);
    if (members_->poll(ctx.worker, *view_)) {
      apply_view(ctx);
    } else {
      std::swap(view_, prev_);
      if (assign_pending_) assign_members(ctx);
    }
    if (ctx.now_ns >= next_stats_ns_) {
      uint32_t up = 0;
      for (uint32_t i = 0; i < member_.size(); ++i)
        up += member_[i].used && ep_->is_open(ep_->member_slot(i));
      ctx.counters[kMembersUp].set(up);
      if (ctx.worker == 0)
        for (uint32_t s = 0; s < peer::Membership::kStats; ++s)
          ctx.counters[kMembers + s].set(members_->stat(peer::Membership::Stat(s)));
      next_stats_ns_ = ctx.now_ns + kMemberStatsNs;
      ctx.wake_at(next_stats_ns_);
    }
  }

  // A new view (view_; the one before in prev_). Dialed members that left or changed (a new
  // address, certificate or lease) are unassigned, which closes their sessions; sessions a
  // departed member dialed here (known by its certificate) are closed too. Then the members
  // this worker dials get slots.
  template <class Io>
  void apply_view(rt::Ctx<Io>& ctx) {
    auto in = [](const peer::View& v, auto&& match) {
      for (uint32_t j = 0; j < v.n; ++j)
        if (match(v.members[j])) return true;
      return false;
    };
    for (uint32_t i = 0; i < member_.size(); ++i) {
      MemberSlot& ms = member_[i];
      if (!ms.used || in(*view_, [&](const peer::etcd::Member& m) { return m.same(ms.m); }))
        continue;
      ep_->unassign(ep_->member_slot(i));
      ms.used = false;
      ctx.counters[kMemberDrops].add();
    }
    for (uint32_t s = ep_->client_slots(); s < ep_->slots(); ++s) {
      const peer::Fingerprint* fp = ep_->peer_fingerprint(s);
      auto same_fp = [&](const peer::etcd::Member& m) { return fp && m.fp == *fp; };
      if (fp && in(*prev_, same_fp) && !in(*view_, same_fp)) ep_->close(s, 0);
    }
    assign_members(ctx);
  }

  template <class Io>
  void assign_members(rt::Ctx<Io>& ctx) {
    assign_pending_ = false;
    const std::string_view self = members_->node_id();
    for (uint32_t j = 0; j < view_->n; ++j) {
      const peer::etcd::Member& m = view_->members[j];
      if (m.name() == self || member_worker(m.name(), ctx.workers) != ctx.worker) continue;
      uint32_t idle = UINT32_MAX;
      bool dialed = false, closing = false;
      for (uint32_t i = 0; i < member_.size() && !dialed; ++i) {
        dialed = member_[i].used && member_[i].m.same(m);
        if (member_[i].used) continue;
        if (ep_->assignable(ep_->member_slot(i)))
          idle = std::min(idle, i);
        else
          closing = true;  // free once its close is done
      }
      if (dialed) continue;
      if (idle == UINT32_MAX) {
        if (closing)
          assign_pending_ = true;
        else
          ctx.counters[kMemberNoSlot].add();
        continue;
      }
      ep_->assign(ep_->member_slot(idle), m.addr, m.fp, ctx.now_ns);
      member_[idle] = {true, m};
      ctx.counters[kMemberDials].add();
    }
    pump(ctx);
  }

  struct Probe {
    uint32_t session = 0;  // the endpoint's session number this probe runs on
    int stream = -1;
    uint32_t sent = 0, ok = 0;
    uint64_t sent_at = 0;  // probe_rtt: when the outstanding request was queued
    int bulk_stream = -1;
    uint64_t bulk = 0;                     // bulk probe bytes queued
    uint32_t dgrams = 0, dgrams_back = 0;  // probe datagrams sent, echoes received
    uint64_t t0 = 0;
    bool done = false;
  };

  // After any input: hand received frames to their handlers, send probe requests, write
  // what the connections have into the worker's batch, and move their timers.
  template <class Io>
  void pump(rt::Ctx<Io>& ctx) {
    ep_->drain_frames(
        [&](uint32_t slot, unsigned st, const peer::FrameHeader& h, std::span<const uint8_t> body) {
          return on_frame(ctx, slot, st, h, body);
        });
    drain_datagrams(ctx);
    run_probes(ctx);
    // A full outbox is drained and refilled a few times; what is left goes next iteration.
    for (int round = 0; round < 4; ++round) {
      ep_->flush(ctx.now_ns);
      send_out(ctx);
      if (!ep_->pending()) break;
    }
    if (ep_->pending()) ctx.wake_at(ctx.now_ns);
    for (uint32_t slot : ep_->timer_changes()) set_timer(ctx, slot);
    ep_->clear_timer_changes();
    const auto& n = ep_->counters();
    for (uint32_t i = 0; i < peer::kEpCounters; ++i) ctx.counters[i].set(n[i]);
    const auto& a = api_->counters();
    for (uint32_t i = 0; i < peer::kApiCounters; ++i) ctx.counters[kApi + i].set(a[i]);
  }

  template <class Io>
  void send_out(rt::Ctx<Io>& ctx) {
    for (const peer::OutPacket& p : ep_->outbox()) {
      const dp::SocketId s = p.via == peer::Via::client ? client_sock_ : server_sock_;
      uint8_t* out = ctx.io.dgram_reserve(s, p.to, p.len);
      if (!out) {
        ctx.counters[kTxFull].add();
        continue;
      }
      std::memcpy(out, p.data, p.len);
      ctx.io.dgram_commit(p.len);
    }
    ep_->clear_outbox();
  }

  template <class Io>
  void set_timer(rt::Ctx<Io>& ctx, uint32_t slot) {
    const uint64_t t = ep_->expiry(slot);
    rt::TimerId& id = timers_[slot];
    if (t == peer::kNever) {
      if (id != rt::kNoTimer) ctx.timer_cancel(id);
      id = rt::kNoTimer;
      return;
    }
    if (id != rt::kNoTimer && ctx.timer_rearm(id, t)) return;
    id = ctx.timer_at(t, slot);  // kNoTimer when the pool is full: counted, retried next pump
    if (id == rt::kNoTimer) ctx.wake_at(ctx.now_ns + 1'000'000);
  }

  // One received frame; false leaves it for later (its answer does not fit yet). Channel 0 is
  // echo and the probes', kChannelSink the bulk probe's; every other channel is the API's.
  template <class Io>
  bool on_frame(rt::Ctx<Io>& ctx, uint32_t slot, unsigned st, const peer::FrameHeader& h,
                std::span<const uint8_t> body) {
    const bool ours = st < peer::kLocalStreams;  // a stream we opened: it carries responses
    // Channels other than echo and the bulk probe's sink belong to the peer API's users.
    if (h.channel != peer::kChannelEcho && h.channel != peer::kChannelSink)
      return api_->on_frame(slot, st, h, body, ctx.now_ns);
    if (!ours && h.kind == peer::FrameKind::request && h.channel == peer::kChannelSink) {
      if (sink_t0_ == 0) sink_t0_ = ctx.now_ns;
      ctx.counters[kSinkFrames].add();
      ctx.counters[kSinkBytes].add(h.len);
      ctx.counters[kSinkUs].set((ctx.now_ns - sink_t0_) / 1000);
      return true;
    }
    if (!ours && h.kind == peer::FrameKind::request) {
      const peer::FrameHeader r{h.len, peer::FrameKind::response, h.channel};
      if (!ep_->send_frame(slot, st, r, body)) return false;
      ctx.counters[kEchoed].add();
      return true;
    }
    if (ours && h.kind == peer::FrameKind::response && slot < probes_.size()) {
      probe_response(ctx, probes_[slot], body);
      return true;
    }
    ctx.counters[kUnexpectedFrames].add();
    return true;
  }

  template <class Io>
  void drain_datagrams(rt::Ctx<Io>& ctx) {
    ep_->drain_datagrams(
        [&](uint32_t slot, std::span<const uint8_t> d) { on_datagram_in(ctx, slot, d); });
  }

  // A datagram: kind (1 request, 2 response), channel (u16 big-endian), payload. Channel 0
  // echoes a request as a response; a full send queue drops the answer (best effort).
  template <class Io>
  void on_datagram_in(rt::Ctx<Io>& ctx, uint32_t slot, std::span<const uint8_t> d) {
    if (d.size() < kDgramHeader || (d[0] != 1 && d[0] != 2))
      return ctx.counters[kBadDatagrams].add();
    const uint16_t channel = uint16_t(d[1] << 8 | d[2]);
    if (d[0] == 2) {
      if (slot < probes_.size() && channel == peer::kChannelEcho) {
        ++probes_[slot].dgrams_back;
        ctx.counters[kDgramProbeBack].add();
      } else
        ctx.counters[kUnexpectedFrames].add();
      return;
    }
    if (channel != peer::kChannelEcho) return ctx.counters[kUnknownChannel].add();
    std::memcpy(dgram_buf_.data(), d.data(), d.size());
    dgram_buf_[0] = 2;
    if (ep_->send_datagram(slot, std::span(dgram_buf_.data(), d.size())))
      ctx.counters[kDgramEchoed].add();
    else
      ctx.counters[kDgramEchoFull].add();
  }

  // The probe's request i: its number, then bytes derived from it.
  void fill_probe(uint32_t seq) {
    for (size_t i = 0; i < probe_buf_.size(); ++i) probe_buf_[i] = uint8_t(seq * 131u + i);
    std::memcpy(probe_buf_.data(), &seq, sizeof seq);
  }

  template <class Io>
  void probe_response(rt::Ctx<Io>& ctx, Probe& p, std::span<const uint8_t> body) {
    fill_probe(p.ok);
    const bool ok = p.ok < p.sent && body.size() == probe_buf_.size() &&
                    std::memcmp(body.data(), probe_buf_.data(), body.size()) == 0;
    if (!ok) {
      ctx.counters[kProbeBad].add();
      return;
    }
    ++p.ok;
    ctx.counters[kProbeOk].add();
    if (rtt_ && p.ok > o_.probe_requests / 10) rtt_->record(ctx.now_ns - p.sent_at);
    if (p.ok == o_.probe_requests && !p.done) {
      p.done = true;
      ctx.counters[kProbeDone].add();
      ctx.counters[kProbeUs].set((ctx.now_ns - p.t0) / 1000);
      if (rtt_) {
        ctx.counters[kProbeRttSamples].set(rtt_->count());
        ctx.counters[kProbeRttP50].set(rtt_->percentile(50));
        ctx.counters[kProbeRttP99].set(rtt_->percentile(99));
      }
    }
  }

  template <class Io>
  void run_probes(rt::Ctx<Io>& ctx) {
    if (o_.probe_requests == 0 && o_.probe_datagrams == 0 && o_.probe_bulk == 0) return;
    for (uint32_t slot = 0; slot < probes_.size(); ++slot) {
      Probe& p = probes_[slot];
      if (!ep_->is_open(slot)) continue;
      if (p.session != ep_->session(slot)) p = Probe{ep_->session(slot)};
      if (p.done && p.dgrams == o_.probe_datagrams && p.bulk == o_.probe_bulk) continue;
      if (p.stream < 0 && o_.probe_requests) {
        p.stream = ep_->open_stream(slot);
        if (p.stream < 0) continue;
        p.t0 = ctx.now_ns;
      }
      const peer::FrameHeader h{uint32_t(probe_buf_.size()), peer::FrameKind::request,
                                peer::kChannelEcho};
      // Up to what the ring holds (probe_rtt: one at a time); the rest as acknowledgements
      // free it.
      const uint32_t window = o_.probe_rtt ? 1 : UINT32_MAX;
      while (p.stream >= 0 && p.sent < o_.probe_requests && p.sent - p.ok < window) {
        fill_probe(p.sent);
        if (!ep_->send_frame(slot, unsigned(p.stream), h, probe_buf_)) break;
        ++p.sent;
        p.sent_at = ctx.now_ns;
        ctx.counters[kProbeSent].add();
      }
      if (p.bulk < o_.probe_bulk) run_bulk(ctx, slot, p);
      // Datagram probe: requests of probe_bytes (capped), at most kDgramWindow unanswered
      // (a lost one keeps its place: heavy loss stalls the probe, which a test notices).
      for (; p.dgrams < o_.probe_datagrams && p.dgrams - p.dgrams_back < kDgramWindow; ++p.dgrams) {
        const size_t n = std::min<size_t>(o_.probe_bytes + kDgramHeader, peer::kMaxDatagram);
        dgram_buf_[0] = 1;
        dgram_buf_[1] = dgram_buf_[2] = 0;
        if (!ep_->send_datagram(slot, std::span(dgram_buf_.data(), n))) break;
        ctx.counters[kDgramProbeSent].add();
      }
    }
  }

  // The bulk probe: sink-channel frames of probe_bytes (the last one shorter) on a stream of
  // its own, as many as its ring holds now.
  template <class Io>
  void run_bulk(rt::Ctx<Io>& ctx, uint32_t slot, Probe& p) {
    if (p.bulk_stream < 0) p.bulk_stream = ep_->open_stream(slot);
    while (p.bulk_stream >= 0 && p.bulk < o_.probe_bulk) {
      const uint32_t n = uint32_t(std::min<uint64_t>(probe_buf_.size(), o_.probe_bulk - p.bulk));
      const peer::FrameHeader h{n, peer::FrameKind::request, peer::kChannelSink};
      if (!ep_->send_frame(slot, unsigned(p.bulk_stream), h, std::span(probe_buf_.data(), n)))
        break;
      p.bulk += n;
      ctx.counters[kBulkSent].add(n);
    }
  }

  peer::PeerOptions o_;
  bool has_server_ = false, has_client_ = false;
  bool started_ = false, counted_setup_ = false;
  dp::SocketId server_sock_ = 0, client_sock_ = 0;
  std::unique_ptr<peer::TlsContext> tls_;
  std::unique_ptr<peer::QuicEndpoint> ep_;
  std::unique_ptr<peer::Api> api_;   // over ep_; local_api(worker) for this worker's services
  std::vector<rt::TimerId> timers_;  // by slot
  std::vector<Probe> probes_;        // by client slot
  std::vector<uint8_t> probe_buf_;
  std::unique_ptr<bench::Histogram> rtt_;  // probe_rtt's round trips (null without it)
  uint64_t sink_t0_ = 0;                   // when this worker's first sink frame came in
  std::vector<uint8_t> dgram_buf_ = std::vector<uint8_t>(peer::kMaxDatagram);
  // Membership (null without etcd): the process's thread, this worker's last two views
  // (allocated: about 8 KiB each) and its member slots.
  std::shared_ptr<peer::Membership> members_;
  dp::Endpoint self_{};
  bool attached_ = false, assign_pending_ = false;
  uint64_t next_stats_ns_ = 0;
  std::unique_ptr<peer::View> view_, prev_;
  std::vector<MemberSlot> member_;
};

}  // namespace cw::svc
