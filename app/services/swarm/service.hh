// The swarm service (docs/swarm.md): BitTorrent peers over TCP (BEP 3, with BEP 6's fast
// extension), seeding and fetching the torrents of its config with the clients people use.
//
// One worker (key `worker`) owns the torrents: their pieces, the peers and the disk helper.
// Connections another worker accepts are closed and counted (foreign_worker): run the
// swarm's table on a one-worker runtime, or let the owner be the only one its port reaches.
//
// A peer session: the 68-byte handshake (its info-hash must be a loaded torrent's), then
// our pieces (have all / have none / bitfield), interest and choking (the first
// unchoke_slots interested peers are unchoked; when one leaves or loses interest the next
// is), requests served from disk and blocks requested from peers. Blocks are sent from
// read-only mappings of the files (storage.hh), copied once into the connection's output:
// the disk helper (disk.hh) first prefaults the piece's pages, and a piece prefaulted less
// than kResidentNs ago is served without asking it again. A peer's queued requests are
// bounded (peer_requests: beyond, or for a piece we lack, or while choked, BEP 6 rejects,
// else the request is dropped and counted), and served only while its connection's output
// is below kOutBudget.
// Downloading: rarest first with a random first piece (picker.hh), `pipeline` blocks asked
// ahead from each unchoked peer into one of max_active_pieces piece buffers; a complete
// piece goes to the helper, which checks its SHA-1 and writes it; only then is it ours
// (have sent to every peer). A bad piece is dropped and counted against the peer that sent
// it, which is banned (closed) after max_offences. A peer that sends nothing for
// idle_timeout is closed; we send a keep-alive after `keepalive` of our own silence.
//
// Handlers allocate nothing: peers, bitfields, request rings and piece buffers are sized in
// the factory. The owner worker loads, maps and checks every torrent there (setup: it reads
// all the data once and only announces pieces whose hash matched).
#pragma once

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "app/runtime/conn_slots.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/services/swarm/announcer.hh"
#include "app/services/swarm/config.hh"
#include "app/services/swarm/disk.hh"
#include "app/services/swarm/picker.hh"
#include "app/services/swarm/protocol.hh"
#include "app/services/swarm/storage.hh"
#include "dataplane/io.hh"

namespace cw::svc {

namespace bt = swarm::proto;

class Swarm {
 public:
  using Options = swarm::SwarmOptions;
  static constexpr const auto& kOptionKeys = swarm::kSwarmOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return swarm::parse_swarm_options(k); }
  // The TCP client socket outgoing peer connections are made from, on the owner only.
  static std::vector<rt::ClientSocket> client_sockets(const Options& o) {
    return {{{dp::Transport::tcp, false, {}, int(o.worker)}, "worker"}};
  }

  enum : uint32_t {
    kPeers,
    kHandshakes,
    kUnknownTorrent,
    kBadHandshake,
    kProtocolErrors,
    kPeersFull,
    kIdleClosed,
    kForeignWorker,
    kRequestsIn,
    kRejectsOut,
    kRequestsDropped,
    kBlocksOut,
    kBytesOut,
    kBlocksIn,
    kBytesIn,
    kUnexpectedBlocks,
    kPiecesHave,
    kPiecesDone,
    kBadPieces,
    kPeersBanned,
    kDiskErrors,
    kConnects,
    kConnectFailed,
    kTorrentsComplete,
    kTxFull,
    kTrackerAnnounces,
    kTrackerReplies,
    kTrackerFailures,
    kTrackerErrors,
    kTrackerPeers,
    kSelfConnects,
    kCorewireBytesIn,
    kCorewireBytesOut,
  };
  static constexpr rt::CounterDecl kCounters[] = {
      {"peers", "Peers past the handshake", rt::CounterKind::gauge},
      {"handshakes", "Handshakes accepted"},
      {"unknown_torrent", "Handshakes for an info-hash we do not hold: closed"},
      {"bad_handshake", "Handshakes that are not BitTorrent's: closed"},
      {"protocol_errors", "Peers closed for a malformed or out-of-range message"},
      {"peers_full", "Peers refused: max_peers reached or no peer slot"},
      {"idle_closed", "Peers closed for sending nothing for idle_timeout"},
      {"foreign_worker", "Connections on a worker that does not own the torrents: closed"},
      {"requests_in", "Block requests received"},
      {"rejects_out", "Requests rejected (BEP 6): piece missing, choked, queue full"},
      {"requests_dropped", "Requests ignored (no BEP 6): piece missing, choked, queue full"},
      {"blocks_out", "Blocks sent"},
      {"bytes_out", "Block bytes sent"},
      {"blocks_in", "Blocks received"},
      {"bytes_in", "Block bytes received"},
      {"unexpected_blocks", "Blocks received that we did not ask for or already had"},
      {"pieces_have", "Verified pieces held, all torrents", rt::CounterKind::gauge},
      {"pieces_done", "Pieces downloaded, verified and written"},
      {"bad_pieces", "Downloaded pieces whose SHA-1 did not match: discarded"},
      {"peers_banned", "Peers closed after max_offences bad pieces"},
      {"disk_errors", "Piece prefaults (for sending) or piece writes that failed"},
      {"connects", "Outgoing peer connections started"},
      {"connect_failed", "Outgoing peer connections that failed"},
      {"torrents_complete", "Torrents with every piece", rt::CounterKind::gauge},
      {"tx_full", "Messages not sent: the connection's output was refused"},
      {"tracker_announces", "Tracker announces started"},
      {"tracker_replies", "Tracker announces answered with peers"},
      {"tracker_failures", "Tracker announces answered with a failure reason"},
      {"tracker_errors", "Tracker announces no tracker answered usably"},
      {"tracker_peers", "Peer addresses received from trackers"},
      {"self_connects", "Connections to ourselves (our own peer id): closed"},
      {"corewire_bytes_in", "Block bytes received from peers with our peer_id_prefix"},
      {"corewire_bytes_out", "Block bytes sent to peers with our peer_id_prefix"},
  };

  static constexpr uint32_t kBlock = bt::kMaxBlock;  // 16 KiB
  static constexpr uint32_t kOutBudget = 1u << 20;   // output bytes a peer may have queued
  // A piece whose pages the helper prefaulted this recently is copied from without asking it
  // again: pages just faulted in are not evicted this soon short of extreme memory pressure.
  static constexpr uint64_t kResidentNs = 1'000'000'000;
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint64_t kRetryNs = 1'000'000'000;  // before connecting to a lost peer again
  static constexpr uint32_t kMaxRetries = 30;          // in a row, without a handshake
  // Tracker announces: the shortest interval we accept from a tracker, and the wait after
  // a failed announce (doubling from kAnnounceRetryS up to kAnnounceRetryMaxS).
  static constexpr uint32_t kMinAnnounceS = 10;
  static constexpr uint32_t kAnnounceRetryS = 15, kAnnounceRetryMaxS = 1800;
  static constexpr uint32_t kTrackerEndpoint = 0xffff;  // a timer's endpoint: the announce

  Swarm(const rt::ServiceCtx& c, const Options& o)
      : o_(o), owner_(c.worker == o.worker), slots_(owner_ ? c.max_conns : 0) {
    for (const rt::SocketRef& s : c.sockets) {
      if (!s.server && s.transport == dp::Transport::tcp && s.here) {
        client_ = s.id;
        has_client_ = true;
      }
      if (s.server && s.transport == dp::Transport::tcp && s.id < c.bound.size())
        listen_ = c.bound[s.id];  // the port we announce
    }
    if (owner_) setup();
  }
  Swarm(Swarm&&) = default;

  uint32_t max_frame() const { return max_frame_; }

  template <class Io>
  void on_open(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    if (!owner_) {
      ctx.counters[kForeignWorker].add();
      return ctx.io.close(it.conn);
    }
    uint32_t pi = kNone;
    if (Slot* sl = slots_.find(it.conn)) pi = sl->peer;  // ours: connect() made it
    if (pi == kNone) {
      pi = alloc_peer();
      Slot* sl = pi == kNone ? nullptr : slots_.open(it.conn);
      if (!sl) {
        if (pi != kNone) free_.push_back(pi);
        ctx.counters[kPeersFull].add();
        return ctx.io.close(it.conn);
      }
      sl->peer = pi;
      peers_[pi].conn = it.conn;
      peers_[pi].remote = it.peer;
    }
    Peer& p = peers_[pi];
    p.last_rx_ns = p.last_tx_ns = ctx.now_ns;
    if (p.outgoing && !send_handshake(ctx, p)) return;
    p.timer = ctx.timer_after(std::min(o_.idle_timeout_ms, o_.keepalive_ms) * 1'000'000,
                              (uint64_t(it.conn) << 32) | pi);
  }

  template <class Io>
  void on_closed(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    Slot* sl = slots_.find(it.conn);
    if (!sl) return;
    Peer& p = peers_[sl->peer];
    if (p.outgoing && it.reason == dp::CloseReason::connect_failed)
      ctx.counters[kConnectFailed].add();
    const uint32_t ti = p.torrent, ep = p.endpoint;
    release_peer(ctx, sl->peer);
    slots_.close(it.conn);
    if (ep != kNone) retry(ctx, ti, ep);
  }

  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    const uint32_t all = uint32_t(b.size());
    Slot* sl = slots_.find(c);
    if (!sl) return {all, true};
    const uint32_t pi = sl->peer;
    Peer& p = peers_[pi];
    if (p.closing) return {all, false};
    p.last_rx_ns = ctx.now_ns;
    size_t used = 0;
    if (!p.got_hs) {
      bt::Handshake hs;
      const bt::Result r = bt::parse_handshake(b, hs);
      if (r.status == bt::Status::need_more) return {0, false, false, uint32_t(bt::kHandshakeSize)};
      if (r.status == bt::Status::error) {
        ctx.counters[kBadHandshake].add();
        ctx.svc->malformed.add();
        return close(p, all);
      }
      if (!handshake(ctx, pi, p, hs)) return close(p, all);
      used = r.n;
    }
    bt::Limits lim;
    lim.fast = p.fast;
    lim.max_bitfield = ts_[p.torrent].have.size();
    while (used < b.size()) {
      bt::Message m;
      const bt::Result r = bt::parse_message(b.subspan(used), lim, m);
      if (r.status == bt::Status::need_more)
        return {uint32_t(used), false, false, uint32_t(b.size() - used + r.n)};
      if (r.status == bt::Status::error || !message(ctx, pi, p, m)) {
        if (!p.closing) {  // else our output was refused (counted tx_full), not the peer's fault
          ctx.counters[kProtocolErrors].add();
          ctx.svc->malformed.add();
        }
        return close(p, all);
      }
      used += r.n;
      if (p.closing) return {all, true};
    }
    return {uint32_t(used)};
  }

  template <class Io>
  void on_writable(rt::Ctx<Io>& ctx, dp::ConnId c) {
    Slot* sl = slots_.find(c);
    if (!sl) return;
    peers_[sl->peer].want_writable = false;
    pump(ctx, peers_[sl->peer]);
  }

  // The idle and keep-alive timer of a peer (user: its ConnId << 32 | peer index).
  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t user) {
    const uint32_t pi = uint32_t(user);
    if (!owner_) return;
    if (pi == kNone) {  // a configured peer to connect to again
      const uint32_t ti = uint32_t(user >> 48), ep = uint32_t(user >> 32) & 0xffff;
      if (ti >= ts_.size()) return;
      if (ep == kTrackerEndpoint) {
        if (ts_[ti].announce_timer == id) ts_[ti].announce_timer = rt::kNoTimer;
        return announce(ctx, ti);
      }
      if (ep < o_.peers.size() && !ts_[ti].complete()) connect(ctx, ti, o_.peers[ep], ep);
      return;
    }
    if (pi >= peers_.size()) return;
    Peer& p = peers_[pi];
    if (p.conn != dp::ConnId(user >> 32) || p.timer != id || p.closing) return;
    const uint64_t idle = o_.idle_timeout_ms * 1'000'000, keep = o_.keepalive_ms * 1'000'000;
    if (ctx.now_ns - p.last_rx_ns >= idle) {
      ctx.counters[kIdleClosed].add();
      p.closing = true;
      p.timer = rt::kNoTimer;
      return ctx.io.close(p.conn);
    }
    if (p.got_hs && ctx.now_ns - p.last_tx_ns >= keep &&
        !emit(ctx, p, 4, [](std::span<uint8_t> out) { return bt::write_keep_alive(out); }))
      return;
    // Before the handshake only the idle deadline counts (we owe no keep-alive yet).
    uint64_t at = p.last_rx_ns + idle;
    if (p.got_hs) at = std::min(at, p.last_tx_ns + keep);
    ctx.timer_rearm(id, at);
  }

  // Once per loop: connect out at the start, finish disk work, wake the disk helper.
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (!owner_) return;
    if (!started_) start(ctx);
    swarm::DiskDone d;
    while (disk_->poll(d)) completed(ctx, d);
    if (announcer_) {
      while (announcer_->poll(announce_done_)) announced(ctx, announce_done_);
      announcer_->kick();
    }
    if (starving_) {
      starving_ = false;
      for (uint32_t i = 0; i < peers_.size(); ++i)
        if (peers_[i].conn != dp::kNoConn && peers_[i].rq_len) pump(ctx, peers_[i]);
    }
    disk_->kick();
  }

  // The loop has stopped: join the disk helper before the backend (its waker) goes.
  // The announcer sends `stopped` for every torrent a tracker knows (within its budget).
  template <class Io>
  void on_stop(rt::Ctx<Io>&) {
    disk_.reset();
    if (!announcer_) return;
    for (uint32_t ti = 0; ti < ts_.size(); ++ti)
      if (ts_[ti].announced) announcer_->submit(job(ti, swarm::tracker::Event::stopped));
    announcer_->kick();
    announcer_.reset();
  }

  // For tests: pieces held of torrent i; whether the disk helper has nothing in flight.
  uint32_t have_count(size_t i) const { return i < ts_.size() ? ts_[i].have_count : 0; }
  bool disk_idle() const { return !disk_ || disk_->outstanding() == 0; }

 private:
  struct Slot {
    uint32_t peer = kNone;
  };
  struct Req {
    uint32_t index, begin, length;  // length 0: cancelled
  };
  struct Peer {
    dp::ConnId conn = dp::kNoConn;
    uint32_t torrent = kNone;
    uint64_t last_rx_ns = 0, last_tx_ns = 0;
    rt::TimerId timer = rt::kNoTimer;
    std::vector<uint8_t> bits;  // its pieces (BEP 3 order); sized at setup
    std::vector<Req> rq;        // its requests to us, a ring; sized at setup
    uint32_t rq_head = 0, rq_len = 0;
    uint32_t active = kNone;    // the piece buffer we are asking it blocks of
    uint32_t out = 0;           // blocks asked of it, not received
    uint32_t offences = 0;      // bad pieces it sent
    uint32_t messages = 0;      // messages received after the handshake
    uint32_t endpoint = kNone;  // outgoing to a configured peer: its index in o_.peers
    dp::Endpoint remote{};      // where it is (an incoming peer: its address and source port)
    bool outgoing = false, got_hs = false, fast = false, closing = false;
    bool corewire = false;  // its peer id starts with our peer_id_prefix
    bool am_choking = true, am_interested = false, peer_choking = true, peer_interested = false;
    bool counted = false, want_writable = false;
  };
  // A piece being downloaded: its buffer and the state of each block (0 missing, 1 asked,
  // 2 received). owner: the peer asked for its blocks (kNone: orphaned, any peer adopts it).
  struct Active {
    uint32_t torrent = kNone, piece = kNone, owner = kNone;
    uint32_t blocks = 0, got = 0;
    uint32_t source = kNone;  // the peer that sent the last block (blamed for a bad piece)
    dp::ConnId source_conn = dp::kNoConn;
    bool writing = false;
    std::vector<uint8_t> state;
    std::unique_ptr<uint8_t[]> buf;
  };
  // A piece's pages for serving: prefaulted by the helper (a prefault op), then copied from
  // until kResidentNs after `ns`. A failed prefault's requests are refused until then.
  struct PieceMem {
    uint64_t ns = 0;  // when the last prefault finished (0: never)
    bool loading = false, failed = false;
  };
  struct TorrentState {
    std::unique_ptr<swarm::Torrent> t;
    std::vector<uint8_t> have;    // BEP 3 bitfield
    std::vector<uint8_t> busy;    // per piece: in an Active
    std::vector<uint16_t> avail;  // per piece: peers that have it
    std::vector<PieceMem> mem;    // per piece: its pages for serving
    uint32_t have_count = 0, peers = 0;
    bool started = false;  // a piece was picked (no more random first)
    // Trackers (the announcer thread does the HTTP): block bytes up and down this run, the
    // next announce's timer, failures in a row.
    uint64_t uploaded = 0, downloaded = 0;
    rt::TimerId announce_timer = rt::kNoTimer;
    uint32_t announce_fails = 0;
    bool tracked = false;            // it has trackers to announce to
    bool announcing = false;         // a job is with the announcer
    bool announced = false;          // a tracker accepted our `started`
    bool completed_pending = false;  // complete, and no tracker told yet
    bool complete() const { return have_count == t->info().piece_count; }
  };

  // --- setup ---

  void setup() {
    uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    rng_ = seed ^ (uint64_t(::getpid()) << 32) ^ 0x9e3779b97f4a7c15ull;
    if (rng_ == 0) rng_ = 1;
    for (size_t i = 0; i < peer_id_.size(); ++i) {
      static constexpr char kAlnum[] =
          "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
      peer_id_[i] = i < o_.peer_id_prefix.size() ? uint8_t(o_.peer_id_prefix[i])
                                                 : uint8_t(kAlnum[next_random() % 62]);
    }
    size_t max_bits = 1, max_piece = kBlock;
    uint32_t have_all = 0, complete = 0;
    for (const std::string& path : o_.torrents) {
      auto t = swarm::load_torrent(path);
      if (!t) fatal(t.error().message);
      TorrentState s;
      s.t = std::move(*t);
      if (auto r = s.t->open(o_.data_dir); !r) fatal(r.error().message);
      const swarm::meta::Metainfo& m = s.t->info();
      s.have_count = s.t->check(s.have);
      s.busy.assign(m.piece_count, 0);
      s.mem.assign(m.piece_count, {});
      s.avail.assign(m.piece_count, 0);
      max_bits = std::max(max_bits, s.have.size());
      max_piece = std::max<size_t>(max_piece, m.piece_length);
      have_all += s.have_count;
      complete += s.complete();
      const auto hex = swarm::meta::to_hex(m.info_hash);
      std::fprintf(stderr, "corewire: swarm: %s: %.40s, %u of %u pieces verified\n", path.c_str(),
                   hex.data(), s.have_count, m.piece_count);
      ts_.push_back(std::move(s));
    }
    pieces_have_ = have_all;
    complete_ = complete;
    max_frame_ = uint32_t(std::max<size_t>(max_bits, kBlock + 8) + 64);
    peers_.resize(size_t(o_.max_peers) * ts_.size() + 16);
    for (Peer& p : peers_) {
      p.bits.assign(max_bits, 0);
      p.rq.resize(o_.peer_requests);
    }
    for (uint32_t i = uint32_t(peers_.size()); i-- > 0;) free_.push_back(i);
    active_.resize(o_.max_active_pieces);
    for (Active& a : active_) {
      a.state.assign((max_piece + kBlock - 1) / kBlock, 0);
      a.buf = std::make_unique_for_overwrite<uint8_t[]>(max_piece);
    }
    retries_.assign(ts_.size() * o_.peers.size(), 0);
    disk_ = std::make_unique<swarm::Disk>(o_.disk_reads + o_.max_active_pieces);
    setup_trackers();
  }

  // The announcer thread, when any torrent has an http(s) tracker (and `trackers` is on):
  // tracker_urls if given (one tier each), else each torrent's announce-list or announce.
  void setup_trackers() {
    if (!o_.trackers) return;
    std::vector<swarm::Announcer::Target> targets(ts_.size());
    bool any = false;
    for (size_t ti = 0; ti < ts_.size(); ++ti) {
      const swarm::meta::Metainfo& m = ts_[ti].t->info();
      swarm::Announcer::Target& tg = targets[ti];
      std::copy(m.info_hash.begin(), m.info_hash.end(), tg.info_hash.begin());
      auto add = [&](size_t tier, std::string_view url) {
        swarm::tracker::HttpUrl u;
        if (!swarm::tracker::split_url(url, u)) {
          std::fprintf(stderr, "corewire: swarm: %s: tracker %.*s skipped (http and https only)\n",
                       ts_[ti].t->path().c_str(), int(url.size()), url.data());
          return;
        }
        if (tg.tiers.size() <= tier) tg.tiers.resize(tier + 1);
        tg.tiers[tier].emplace_back(url);
      };
      if (!o_.tracker_urls.empty())
        for (size_t i = 0; i < o_.tracker_urls.size(); ++i) add(i, o_.tracker_urls[i]);
      else
        m.for_each_tracker(add);
      std::erase_if(tg.tiers, [](const auto& tier) { return tier.empty(); });
      ts_[ti].tracked = !tg.tiers.empty();
      any = any || ts_[ti].tracked;
    }
    if (!any) return;
    announcer_ = std::make_unique<swarm::Announcer>(
        std::move(targets), peer_id_, ntohs(listen_.port_be),
        std::min<uint32_t>(o_.max_peers, uint32_t(swarm::tracker::kMaxPeers)),
        uint32_t(next_random()));
  }

  [[noreturn]] static void fatal(const std::string& why) {
    std::fprintf(stderr, "corewire: swarm: %s\n", why.c_str());
    std::exit(1);
  }

  uint64_t next_random() {  // xorshift64
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  template <class Io>
  void start(rt::Ctx<Io>& ctx) {
    started_ = true;
    disk_->set_waker([](void* io) { static_cast<Io*>(io)->wake(); }, &ctx.io);
    if (announcer_) {
      announcer_->set_waker([](void* io) { static_cast<Io*>(io)->wake(); }, &ctx.io);
      for (uint32_t ti = 0; ti < ts_.size(); ++ti) announce(ctx, ti);
    }
    ctx.counters[kPiecesHave].set(pieces_have_);
    ctx.counters[kTorrentsComplete].set(complete_);
    if (!has_client_) return;
    for (uint32_t ti = 0; ti < ts_.size(); ++ti) {
      if (ts_[ti].complete()) continue;
      for (uint32_t ep = 0; ep < o_.peers.size(); ++ep) connect(ctx, ti, o_.peers[ep], ep);
    }
  }

  // Connects to `to` for torrent ti; ep is its index in o_.peers (retried when lost), or
  // kNone for a peer a tracker gave (not retried: the next announce gives it again).
  template <class Io>
  void connect(rt::Ctx<Io>& ctx, uint32_t ti, const dp::Endpoint& to, uint32_t ep) {
    const uint32_t pi = alloc_peer();
    if (pi == kNone) {
      ctx.counters[kPeersFull].add();
      return;
    }
    const dp::ConnId c = ctx.io.connect(client_, to);
    Slot* sl = c == dp::kNoConn ? nullptr : slots_.open(c);
    if (!sl) {
      if (c != dp::kNoConn) ctx.io.close(c);
      free_.push_back(pi);
      ctx.counters[kConnectFailed].add();
      if (ep != kNone) retry(ctx, ti, ep);
      return;
    }
    ctx.counters[kConnects].add();
    sl->peer = pi;
    Peer& p = peers_[pi];
    p.conn = c;
    p.torrent = ti;
    p.outgoing = true;
    p.endpoint = ep;
    p.remote = to;
  }

  // --- trackers ---

  swarm::AnnounceJob job(uint32_t ti, swarm::tracker::Event ev) const {
    const TorrentState& t = ts_[ti];
    const swarm::meta::Metainfo& m = t.t->info();
    // Bytes we lack: whole pieces, the last one possibly short.
    uint64_t have = uint64_t(t.have_count) * m.piece_length;
    if (m.piece_count && swarm::bit(t.have.data(), m.piece_count - 1))
      have -= m.piece_length - m.piece_size(m.piece_count - 1);
    return {ti, ev, t.uploaded, t.downloaded, m.total_length - have};
  }

  // Hands torrent ti's next announce to the announcer: `started` until a tracker took it,
  // then `completed` once, else a plain re-announce.
  template <class Io>
  void announce(rt::Ctx<Io>& ctx, uint32_t ti) {
    TorrentState& t = ts_[ti];
    if (!announcer_ || !t.tracked || t.announcing) return;
    using swarm::tracker::Event;
    const Event ev = !t.announced          ? Event::started
                     : t.completed_pending ? Event::completed
                                           : Event::none;
    if (!announcer_->submit(job(ti, ev))) return;  // cannot fail: one job per torrent
    t.announcing = true;
    ctx.counters[kTrackerAnnounces].add();
  }

  // A tracker's answer (or none): connect to the peers it gave while the torrent is not
  // complete, and set the next announce after its interval (or a backoff after a failure).
  template <class Io>
  void announced(rt::Ctx<Io>& ctx, const swarm::AnnounceDone& d) {
    using swarm::tracker::Event;
    if (d.torrent >= ts_.size()) return;
    TorrentState& t = ts_[d.torrent];
    t.announcing = false;
    uint64_t wait_s;
    if (d.status == swarm::AnnounceDone::ok) {
      ctx.counters[kTrackerReplies].add();
      ctx.counters[kTrackerPeers].add(d.npeers);
      t.announce_fails = 0;
      if (d.event == Event::started) t.announced = true;
      // A `completed`, or a `started` sent with nothing left, told the tracker we are done.
      if (d.event == Event::completed || (d.event == Event::started && d.left == 0))
        t.completed_pending = false;
      wait_s = std::max({d.interval_s, d.min_interval_s, kMinAnnounceS});
      if (!t.complete()) connect_tracker_peers(ctx, d);
    } else {
      ctx.counters[d.status == swarm::AnnounceDone::failure ? kTrackerFailures : kTrackerErrors]
          .add();
      wait_s =
          std::max(d.min_interval_s,
                   std::min(kAnnounceRetryS << std::min(t.announce_fails, 7u), kAnnounceRetryMaxS));
      ++t.announce_fails;
    }
    // Completed while this announce was out: tell the tracker now (after a failure, the
    // backoff first).
    if (d.status == swarm::AnnounceDone::ok && t.announced && t.completed_pending)
      return announce(ctx, d.torrent);
    if (t.announce_timer != rt::kNoTimer) ctx.timer_cancel(t.announce_timer);
    t.announce_timer =
        ctx.timer_after(wait_s * 1'000'000'000,
                        uint64_t(d.torrent) << 48 | uint64_t(kTrackerEndpoint) << 32 | kNone);
  }

  template <class Io>
  void connect_tracker_peers(rt::Ctx<Io>& ctx, const swarm::AnnounceDone& d) {
    const uint32_t ti = d.torrent;
    uint32_t conns = 0;
    for (const Peer& p : peers_) conns += p.conn != dp::kNoConn && p.torrent == ti;
    for (uint32_t k = 0; k < d.npeers && k < d.peers.size() && conns < o_.max_peers; ++k) {
      const dp::Endpoint to{d.peers[k].addr_be, d.peers[k].port_be};
      if (is_self(to)) continue;
      bool known = false;
      for (const Peer& p : peers_)
        known = known || (p.conn != dp::kNoConn && p.torrent == ti && p.remote == to);
      if (known) continue;
      connect(ctx, ti, to, kNone);
      ++conns;
    }
  }

  // Our own listening address as a tracker reports it back: the address we are bound to, a
  // loopback address with our port, or one that answered with our own peer id before.
  bool is_self(const dp::Endpoint& e) const {
    if (e.port_be == listen_.port_be &&
        (e.addr_be == listen_.addr_be || (ntohl(e.addr_be) >> 24) == 127))
      return true;
    return std::find(self_.begin(), self_.end(), e) != self_.end();
  }

  // A configured peer is connected to again a while after it was lost, while its torrent is
  // not complete, at most kMaxRetries times in a row without a handshake.
  template <class Io>
  void retry(rt::Ctx<Io>& ctx, uint32_t ti, uint32_t ep) {
    if (ts_[ti].complete() || ++retries_[ti * o_.peers.size() + ep] > kMaxRetries) return;
    ctx.timer_after(kRetryNs, uint64_t(ti) << 48 | uint64_t(ep) << 32 | kNone);
  }

  uint32_t alloc_peer() {
    if (free_.empty()) return kNone;
    const uint32_t pi = free_.back();
    free_.pop_back();
    Peer& p = peers_[pi];
    std::fill(p.bits.begin(), p.bits.end(), uint8_t{0});
    p.conn = dp::kNoConn;
    p.torrent = kNone;
    p.timer = rt::kNoTimer;
    p.rq_head = p.rq_len = p.out = p.offences = p.messages = 0;
    p.active = p.endpoint = kNone;
    p.outgoing = p.got_hs = p.fast = p.closing = false;
    p.am_choking = p.peer_choking = true;
    p.am_interested = p.peer_interested = p.counted = p.want_writable = false;
    return pi;
  }

  template <class Io>
  void release_peer(rt::Ctx<Io>& ctx, uint32_t pi) {
    Peer& p = peers_[pi];
    if (p.timer != rt::kNoTimer) ctx.timer_cancel(p.timer);
    p.timer = rt::kNoTimer;
    const bool unchoked = !p.am_choking;
    if (p.counted) {
      TorrentState& t = ts_[p.torrent];
      --t.peers;
      const uint32_t n = t.t->info().piece_count;
      for (uint32_t i = 0; i < n; ++i)
        if (swarm::bit(p.bits.data(), i) && t.avail[i]) --t.avail[i];
      ctx.counters[kPeers].set(--peer_count_);
    }
    for (Active& a : active_)
      if (a.owner == pi) orphan(a);
    p.conn = dp::kNoConn;
    p.counted = false;
    p.am_choking = true;
    free_.push_back(pi);
    if (unchoked) {
      --unchoked_;
      unchoke_next(ctx);
    }
  }

  static rt::StreamVerdict close(Peer& p, uint32_t all) {
    p.closing = true;
    return {all, true};
  }

  // --- output ---

  // Reserves n bytes on p's connection, lets write fill them (it returns the bytes written)
  // and commits. False when the output was refused (the runtime closes the connection).
  template <class Io, class Write>
  bool emit(rt::Ctx<Io>& ctx, Peer& p, uint32_t n, Write&& write) {
    uint8_t* out = ctx.io.stream_reserve(p.conn, n);
    if (!out) {
      ctx.counters[kTxFull].add();
      p.closing = true;
      return false;
    }
    ctx.io.stream_commit(p.conn, uint32_t(write(std::span<uint8_t>(out, n))));
    p.last_tx_ns = ctx.now_ns;
    return true;
  }
  template <class Io>
  bool send_simple(rt::Ctx<Io>& ctx, Peer& p, bt::MsgId id) {
    return emit(ctx, p, 5, [&](std::span<uint8_t> o) { return bt::write_simple(o, id); });
  }
  template <class Io>
  bool send_index(rt::Ctx<Io>& ctx, Peer& p, bt::MsgId id, uint32_t index) {
    return emit(ctx, p, 9, [&](std::span<uint8_t> o) { return bt::write_index(o, id, index); });
  }
  template <class Io>
  bool send_ref(rt::Ctx<Io>& ctx, Peer& p, bt::MsgId id, uint32_t index, uint32_t begin,
                uint32_t len) {
    return emit(ctx, p, 17, [&](std::span<uint8_t> o) {
      return bt::write_block_ref(o, id, index, begin, len);
    });
  }

  template <class Io>
  bool send_handshake(rt::Ctx<Io>& ctx, Peer& p) {
    bt::Handshake h;
    h.set(false, true, false);  // BEP 6; no BEP 10 or DHT yet
    h.info_hash = ts_[p.torrent].t->info().info_hash;
    h.peer_id = peer_id_;
    return emit(ctx, p, uint32_t(bt::kHandshakeSize), [&](std::span<uint8_t> o) {
      bt::write_handshake(o.first<bt::kHandshakeSize>(), h);
      return bt::kHandshakeSize;
    });
  }

  // Right after the handshakes: what we have (BEP 6's short forms when both speak it).
  template <class Io>
  bool send_pieces(rt::Ctx<Io>& ctx, Peer& p) {
    const TorrentState& t = ts_[p.torrent];
    if (p.fast && t.complete()) return send_simple(ctx, p, bt::kHaveAll);
    if (t.have_count == 0) return p.fast ? send_simple(ctx, p, bt::kHaveNone) : true;
    return emit(ctx, p, uint32_t(t.have.size() + 5),
                [&](std::span<uint8_t> o) { return bt::write_bitfield(o, t.have); });
  }

  // --- messages ---

  template <class Io>
  bool handshake(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p, const bt::Handshake& hs) {
    if (p.outgoing) {
      if (hs.info_hash != ts_[p.torrent].t->info().info_hash) {
        ctx.counters[kUnknownTorrent].add();
        return false;
      }
    } else {
      uint32_t ti = kNone;
      for (uint32_t i = 0; i < ts_.size() && ti == kNone; ++i)
        if (ts_[i].t->info().info_hash == hs.info_hash) ti = i;
      if (ti == kNone) {
        ctx.counters[kUnknownTorrent].add();
        return false;
      }
      p.torrent = ti;
    }
    if (hs.peer_id == peer_id_) {
      // Ourselves, through an address a tracker gave: the source address of the connection
      // with our listening port is how we appear, so it is not connected to again.
      ctx.counters[kSelfConnects].add();
      if (!p.outgoing) {
        self_[self_next_++ % self_.size()] = {p.remote.addr_be, listen_.port_be};
      }
      return false;
    }
    TorrentState& t = ts_[p.torrent];
    if (t.peers >= o_.max_peers) {
      ctx.counters[kPeersFull].add();
      return false;
    }
    ++t.peers;
    p.counted = true;
    ctx.counters[kPeers].set(++peer_count_);
    ctx.counters[kHandshakes].add();
    if (p.endpoint != kNone) retries_[p.torrent * o_.peers.size() + p.endpoint] = 0;
    p.got_hs = true;
    p.fast = hs.fast();
    p.corewire = !o_.peer_id_prefix.empty() &&
                 std::equal(o_.peer_id_prefix.begin(), o_.peer_id_prefix.end(), hs.peer_id.begin(),
                            [](char a, uint8_t b) { return uint8_t(a) == b; });
    (void)pi;
    if (!p.outgoing && !send_handshake(ctx, p)) return false;
    return send_pieces(ctx, p);
  }

  template <class Io>
  bool message(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p, const bt::Message& m) {
    if (m.keep_alive || !m.known) return true;
    const bool first = p.messages++ == 0;
    TorrentState& t = ts_[p.torrent];
    const uint32_t n = t.t->info().piece_count;
    switch (m.id) {
      case bt::kChoke:
        p.peer_choking = true;
        for (Active& a : active_)
          if (a.owner == pi) unask(a);
        p.out = 0;
        return true;
      case bt::kUnchoke:
        p.peer_choking = false;
        return fill(ctx, pi, p);
      case bt::kInterested:
        p.peer_interested = true;
        return maybe_unchoke(ctx, p);
      case bt::kNotInterested:
        p.peer_interested = false;
        if (!p.am_choking) return choke(ctx, p);
        return true;
      case bt::kHave:
        if (m.index >= n) return false;
        if (!swarm::bit(p.bits.data(), m.index)) {
          swarm::set_bit(p.bits.data(), m.index);
          ++t.avail[m.index];
          if (!p.am_interested && !swarm::bit(t.have.data(), m.index))
            return interested(ctx, pi, p);
        }
        return true;
      // BEP 3 sends these first only; aria2c may send its bitfield after other messages, and
      // libtorrent takes a late one as the peer's whole state: so do we.
      case bt::kBitfield:
        if (m.payload.size() != t.have.size()) return false;
        // Spare bits past the last piece must be zero (BEP 3).
        if (n % 8 && (m.payload.back() & (0xffu >> (n % 8)))) return false;
        return replace_bits(ctx, pi, p, first, Bits::these, m.payload.data());
      case bt::kHaveAll:
        return replace_bits(ctx, pi, p, first, Bits::all, nullptr);
      case bt::kHaveNone:
        return first || replace_bits(ctx, pi, p, first, Bits::none, nullptr);
      case bt::kRequest:
        return request(ctx, p, m);
      case bt::kPiece:
        return block(ctx, pi, p, m);
      case bt::kCancel:
        return cancel(ctx, p, m);
      case bt::kReject:
        // The piece is given up by this peer (any peer having it adopts it): every block
        // still asked of it for the piece returns, and stops counting in its pipeline.
        for (Active& a : active_) {
          if (a.owner != pi || a.torrent != p.torrent || a.piece != m.index || a.writing) continue;
          uint32_t asked = 0;
          for (uint32_t b = 0; b < a.blocks; ++b) asked += a.state[b] == 1;
          p.out = p.out > asked ? p.out - asked : 0;
          orphan(a);
        }
        return fill(ctx, pi, p);
      default:  // port, suggest, allowed fast: nothing to do yet
        return true;
    }
  }

  // p's pieces become all, none or `these` (a bitfield of the torrent's size, checked).
  enum class Bits : uint8_t { all, none, these };
  template <class Io>
  bool replace_bits(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p, bool first, Bits b,
                    const uint8_t* these) {
    TorrentState& t = ts_[p.torrent];
    const uint32_t n = t.t->info().piece_count;
    if (!first)  // a late one: what it had before stops counting
      for (uint32_t i = 0; i < n; ++i)
        if (swarm::bit(p.bits.data(), i) && t.avail[i]) --t.avail[i];
    const size_t len = t.have.size();
    if (b == Bits::these) {
      std::memcpy(p.bits.data(), these, len);
    } else {
      std::fill(p.bits.begin(), p.bits.begin() + long(len), uint8_t(b == Bits::all ? 0xff : 0));
      if (b == Bits::all && n % 8) p.bits[len - 1] = uint8_t(0xff00u >> (n % 8));
    }
    for (uint32_t i = 0; i < n; ++i)
      if (swarm::bit(p.bits.data(), i)) ++t.avail[i];
    return update_interest(ctx, pi, p);
  }

  // --- seeding ---

  template <class Io>
  bool request(rt::Ctx<Io>& ctx, Peer& p, const bt::Message& m) {
    ctx.counters[kRequestsIn].add();
    ctx.svc->requests.add();
    const TorrentState& t = ts_[p.torrent];
    const swarm::meta::Metainfo& mi = t.t->info();
    if (m.index >= mi.piece_count || uint64_t(m.begin) + m.length > mi.piece_size(m.index))
      return false;  // outside the torrent: a protocol error
    if (!swarm::bit(t.have.data(), m.index) || p.am_choking || p.rq_len == p.rq.size())
      return refuse(ctx, p, m.index, m.begin, m.length);
    p.rq[(p.rq_head + p.rq_len) % p.rq.size()] = {m.index, m.begin, m.length};
    ++p.rq_len;
    pump(ctx, p);
    return !p.closing;
  }

  // A request we will not serve: BEP 6 rejects it; without BEP 6 it is dropped (BEP 3).
  template <class Io>
  bool refuse(rt::Ctx<Io>& ctx, Peer& p, uint32_t index, uint32_t begin, uint32_t len) {
    if (!p.fast) {
      ctx.counters[kRequestsDropped].add();
      return true;
    }
    ctx.counters[kRejectsOut].add();
    return send_ref(ctx, p, bt::kReject, index, begin, len);
  }

  template <class Io>
  bool cancel(rt::Ctx<Io>& ctx, Peer& p, const bt::Message& m) {
    for (uint32_t k = 0; k < p.rq_len; ++k) {
      Req& r = p.rq[(p.rq_head + k) % p.rq.size()];
      if (r.length && r.index == m.index && r.begin == m.begin && r.length == m.length) {
        r.length = 0;
        // BEP 6: a cancelled request is answered by its block or a reject.
        return p.fast ? send_ref(ctx, p, bt::kReject, m.index, m.begin, m.length) : true;
      }
    }
    return true;  // already being read or sent: the block goes out
  }

  // Sends p's queued requests, in order, while its connection's output is below kOutBudget.
  // The head request's piece must have been prefaulted less than kResidentNs ago, else it
  // is prefaulted first (the request waits; the prefault's completion pumps every peer).
  template <class Io>
  void pump(rt::Ctx<Io>& ctx, Peer& p) {
    if (!p.rq_len) return;  // (and p.torrent is set: requests come after the handshake)
    TorrentState& t = ts_[p.torrent];
    while (p.rq_len && !p.closing) {
      if (ctx.io.queued(p.conn) >= kOutBudget) {
        if (!p.want_writable) {
          p.want_writable = true;
          ctx.io.notify_writable(p.conn);
        }
        return;
      }
      const Req r = p.rq[p.rq_head];
      if (r.length) {
        const PieceMem& pm = t.mem[r.index];
        if (pm.loading) return;
        if (pm.ns == 0 || ctx.now_ns - pm.ns >= kResidentNs) return prefault(t, r.index);
      }
      p.rq_head = uint32_t((p.rq_head + 1) % p.rq.size());
      --p.rq_len;
      if (r.length == 0) continue;
      if (t.mem[r.index].failed) {
        ctx.counters[kDiskErrors].add();
        refuse(ctx, p, r.index, r.begin, r.length);
        continue;
      }
      const uint64_t off = uint64_t(r.index) * t.t->info().piece_length + r.begin;
      bool copied = false;
      if (!emit(ctx, p, bt::kPieceHeaderSize + r.length, [&](std::span<uint8_t> o) {
            bt::write_piece_header(o, r.index, r.begin, r.length);
            copied = t.t->copy_out(off, r.length, o.data() + bt::kPieceHeaderSize);
            return copied ? bt::kPieceHeaderSize + r.length : 0u;
          }))
        return;
      if (!copied) {  // the file lost the piece since its prefault: as a failed prefault
        t.mem[r.index].failed = true;
        ctx.counters[kDiskErrors].add();
        refuse(ctx, p, r.index, r.begin, r.length);
        continue;
      }
      ctx.counters[kBlocksOut].add();
      ctx.counters[kBytesOut].add(r.length);
      if (p.corewire) ctx.counters[kCorewireBytesOut].add(r.length);
      t.uploaded += r.length;
      ctx.svc->responses.add();
    }
  }

  // Hands the helper a prefault of piece i of t when it has room (else a later tick tries).
  void prefault(TorrentState& t, uint32_t i) {
    if (prefaults_ >= o_.disk_reads || disk_->full()) {
      starving_ = true;
      return;
    }
    swarm::DiskOp op;
    op.kind = swarm::DiskOp::prefault;
    op.torrent = t.t.get();
    op.offset = uint64_t(i) * t.t->info().piece_length;
    op.len = t.t->info().piece_size(i);
    op.piece = i;
    op.cookie = uint64_t(&t - ts_.data());
    disk_->submit(op);  // cannot fail: checked full() above
    t.mem[i].loading = true;
    ++prefaults_;
  }

  template <class Io>
  void completed(rt::Ctx<Io>& ctx, const swarm::DiskDone& d) {
    if (d.op.kind == swarm::DiskOp::verify_write) return write_done(ctx, d);
    // A prefault: the piece's requests can go (every peer with requests is pumped).
    --prefaults_;
    PieceMem& pm = ts_[uint32_t(d.op.cookie)].mem[d.op.piece];
    pm.loading = false;
    pm.failed = d.status != swarm::DiskDone::ok;
    pm.ns = ctx.now_ns;
    starving_ = true;
  }

  // --- choking ---

  template <class Io>
  bool maybe_unchoke(rt::Ctx<Io>& ctx, Peer& p) {
    if (!p.am_choking || !p.peer_interested || unchoked_ >= o_.unchoke_slots) return true;
    if (!send_simple(ctx, p, bt::kUnchoke)) return false;
    p.am_choking = false;
    ++unchoked_;
    return true;
  }

  template <class Io>
  bool choke(rt::Ctx<Io>& ctx, Peer& p) {
    if (!send_simple(ctx, p, bt::kChoke)) return false;
    p.am_choking = true;
    --unchoked_;
    for (; p.rq_len; --p.rq_len) {  // queued requests are dropped (BEP 6: rejected)
      const Req r = p.rq[p.rq_head];
      p.rq_head = uint32_t((p.rq_head + 1) % p.rq.size());
      if (r.length && p.fast && !send_ref(ctx, p, bt::kReject, r.index, r.begin, r.length))
        return false;
    }
    unchoke_next(ctx);
    return true;
  }

  template <class Io>
  void unchoke_next(rt::Ctx<Io>& ctx) {
    for (Peer& q : peers_) {
      if (unchoked_ >= o_.unchoke_slots) return;
      if (q.conn != dp::kNoConn && q.got_hs && !q.closing && q.am_choking && q.peer_interested)
        maybe_unchoke(ctx, q);
    }
  }

  // --- downloading ---

  // Whether p has a piece we lack.
  bool needs(const TorrentState& t, const Peer& p) const {
    for (size_t i = 0; i < t.have.size(); ++i)
      if (p.bits[i] & ~t.have[i]) return true;
    return false;
  }

  template <class Io>
  bool interested(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p) {
    if (!send_simple(ctx, p, bt::kInterested)) return false;
    p.am_interested = true;
    return fill(ctx, pi, p);
  }

  template <class Io>
  bool update_interest(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p) {
    const bool want = needs(ts_[p.torrent], p);
    if (want && !p.am_interested) return interested(ctx, pi, p);
    if (!want && p.am_interested) {
      p.am_interested = false;
      return send_simple(ctx, p, bt::kNotInterested);
    }
    return true;
  }

  static void unask(Active& a) {
    for (uint32_t b = 0; b < a.blocks; ++b)
      if (a.state[b] == 1) a.state[b] = 0;
  }
  void orphan(Active& a) {
    if (a.owner != kNone && peers_[a.owner].active == uint32_t(&a - active_.data()))
      peers_[a.owner].active = kNone;
    a.owner = kNone;
    unask(a);
  }

  // An Active for p to ask blocks of: an orphaned piece it has, else a new one (picker.hh).
  uint32_t start_piece(uint32_t pi, Peer& p) {
    TorrentState& t = ts_[p.torrent];
    uint32_t free_slot = kNone;
    for (uint32_t i = 0; i < active_.size(); ++i) {
      Active& a = active_[i];
      if (a.piece == kNone) {
        if (free_slot == kNone) free_slot = i;
      } else if (a.owner == kNone && !a.writing && a.torrent == p.torrent &&
                 swarm::bit(p.bits.data(), a.piece)) {
        a.owner = pi;
        return i;
      }
    }
    if (free_slot == kNone) return kNone;
    const uint32_t piece = swarm::pick_piece({.peer = p.bits,
                                              .have = t.have,
                                              .busy = t.busy,
                                              .avail = t.avail,
                                              .pieces = t.t->info().piece_count,
                                              .random_first = !t.started,
                                              .random = next_random()});
    if (piece == swarm::kNoPiece) return kNone;
    t.started = true;
    t.busy[piece] = 1;
    Active& a = active_[free_slot];
    a.torrent = p.torrent;
    a.piece = piece;
    a.owner = pi;
    a.blocks = (t.t->info().piece_size(piece) + kBlock - 1) / kBlock;
    a.got = 0;
    a.writing = false;
    a.source = kNone;
    std::fill(a.state.begin(), a.state.begin() + a.blocks, uint8_t{0});
    return free_slot;
  }

  // Asks p for blocks until `pipeline` are outstanding.
  template <class Io>
  bool fill(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p) {
    if (p.peer_choking || !p.am_interested || p.closing || ts_[p.torrent].complete()) return true;
    while (p.out < o_.pipeline) {
      if (p.active == kNone && (p.active = start_piece(pi, p)) == kNone) return true;
      Active& a = active_[p.active];
      uint32_t b = 0;
      while (b < a.blocks && a.state[b] != 0) ++b;
      if (b == a.blocks) {  // all asked: the next blocks come from another piece
        p.active = kNone;
        continue;
      }
      const uint32_t size = ts_[a.torrent].t->info().piece_size(a.piece);
      const uint32_t len = std::min(kBlock, size - b * kBlock);
      if (!send_ref(ctx, p, bt::kRequest, a.piece, b * kBlock, len)) return false;
      a.state[b] = 1;
      ++p.out;
    }
    return true;
  }

  template <class Io>
  bool block(rt::Ctx<Io>& ctx, uint32_t pi, Peer& p, const bt::Message& m) {
    ctx.counters[kBlocksIn].add();
    ctx.counters[kBytesIn].add(m.payload.size());
    Active* a = nullptr;
    for (Active& x : active_)
      if (x.torrent == p.torrent && x.piece == m.index && !x.writing && x.owner == pi) a = &x;
    const uint32_t b = m.begin / kBlock;
    if (!a || m.begin % kBlock || b >= a->blocks || a->state[b] == 2 ||
        m.payload.size() !=
            std::min(kBlock, ts_[a->torrent].t->info().piece_size(a->piece) - b * kBlock)) {
      ctx.counters[kUnexpectedBlocks].add();  // not asked (or after a cancel): ignored
      return true;
    }
    if (a->state[b] == 1 && p.out) --p.out;
    if (p.corewire) ctx.counters[kCorewireBytesIn].add(m.payload.size());
    ts_[p.torrent].downloaded += m.payload.size();
    std::memcpy(a->buf.get() + m.begin, m.payload.data(), m.payload.size());
    a->state[b] = 2;
    a->source = pi;
    a->source_conn = p.conn;
    if (++a->got == a->blocks) {
      // Whole: the helper checks its hash and writes it; the buffer is its until done.
      const uint32_t idx = uint32_t(a - active_.data());
      if (p.active == idx) p.active = kNone;
      a->owner = kNone;
      a->writing = true;
      const swarm::Torrent* t = ts_[a->torrent].t.get();
      swarm::DiskOp op;
      op.kind = swarm::DiskOp::verify_write;
      op.torrent = t;
      op.offset = uint64_t(a->piece) * t->info().piece_length;
      op.len = t->info().piece_size(a->piece);
      op.piece = a->piece;
      op.buf = a->buf.get();
      op.cookie = idx;
      disk_->submit(op);  // cannot fail: capacity counts every piece buffer
    }
    return fill(ctx, pi, p);
  }

  template <class Io>
  void write_done(rt::Ctx<Io>& ctx, const swarm::DiskDone& d) {
    Active& a = active_[uint32_t(d.op.cookie)];
    const uint32_t ti = a.torrent;
    TorrentState& t = ts_[ti];
    t.busy[a.piece] = 0;
    if (d.status == swarm::DiskDone::ok) {
      swarm::set_bit(t.have.data(), a.piece);
      ++t.have_count;
      ctx.counters[kPiecesDone].add();
      ctx.counters[kPiecesHave].set(++pieces_have_);
      if (t.complete()) {
        ctx.counters[kTorrentsComplete].set(++complete_);
        // Trackers learn it now (BEP 3's `completed`), not at the next interval.
        t.completed_pending = t.tracked;
        if (t.announced && !t.announcing) {
          if (t.announce_timer != rt::kNoTimer) ctx.timer_cancel(t.announce_timer);
          t.announce_timer = rt::kNoTimer;
          announce(ctx, ti);
        }
      }
      for (uint32_t i = 0; i < peers_.size(); ++i) {
        Peer& q = peers_[i];
        if (q.conn == dp::kNoConn || !q.got_hs || q.closing || q.torrent != ti) continue;
        if (!swarm::bit(q.bits.data(), a.piece)) send_index(ctx, q, bt::kHave, a.piece);
        if (q.am_interested && !q.closing) update_interest(ctx, i, q);
      }
    } else if (d.status == swarm::DiskDone::bad_hash) {
      ctx.counters[kBadPieces].add();
      if (a.source != kNone && peers_[a.source].conn == a.source_conn) {
        Peer& q = peers_[a.source];
        if (++q.offences >= o_.max_offences && !q.closing) {
          ctx.counters[kPeersBanned].add();
          if (q.endpoint != kNone)  // a configured peer banned is not connected to again
            retries_[q.torrent * o_.peers.size() + q.endpoint] = kMaxRetries;
          q.closing = true;
          ctx.io.close(q.conn);
        }
      }
    } else {
      ctx.counters[kDiskErrors].add();
    }
    a.piece = a.owner = a.torrent = kNone;
    a.writing = false;
    // A piece buffer is free again: let every unchoked peer of the torrent ask for more.
    for (uint32_t i = 0; i < peers_.size(); ++i) {
      Peer& q = peers_[i];
      if (q.conn != dp::kNoConn && q.got_hs && q.torrent == ti && !q.closing) fill(ctx, i, q);
    }
  }

  Options o_;
  bool owner_ = false;
  bool has_client_ = false;
  bool started_ = false;
  bool starving_ = false;  // a peer waits for a prefault, or room for one
  dp::SocketId client_ = 0;
  uint32_t max_frame_ = rt::kDefaultMaxFrame;
  uint32_t unchoked_ = 0;
  uint32_t peer_count_ = 0;
  uint32_t pieces_have_ = 0, complete_ = 0;
  uint64_t rng_ = 1;
  bt::Id20 peer_id_{};
  rt::ConnSlots<Slot> slots_;
  std::vector<TorrentState> ts_;
  std::vector<Peer> peers_;
  std::vector<uint32_t> free_;     // free peer indexes (a stack, sized at setup)
  std::vector<uint32_t> retries_;  // per (torrent, configured peer): connects since a handshake
  std::vector<Active> active_;
  uint32_t prefaults_ = 0;              // prefault ops with the helper (at most disk_reads)
  dp::Endpoint listen_{};               // where peers reach us (announced port)
  std::array<dp::Endpoint, 8> self_{};  // our addresses learnt from self-connections
  uint32_t self_next_ = 0;
  swarm::AnnounceDone announce_done_;  // the one being handled (large: not on the stack)
  // Stops (sending `stopped`) after the disk helper; destroyed after it too.
  std::unique_ptr<swarm::Announcer> announcer_;
  // Last: destroyed first, so the helper thread stops before what it reads goes.
  std::unique_ptr<swarm::Disk> disk_;
};

}  // namespace cw::svc
