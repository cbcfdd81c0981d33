// The load generator's NATS dialect (--proto nats): one instance per worker, with `pubs`
// publisher and `subs` subscriber TCP connections to a NATS server (nats-server, or
// corewire's pubsub service). Every connection waits for INFO, sends CONNECT (and, for a
// subscriber, SUB to the subject, in the queue group if one is set) and a PING; once every
// connection of every worker had its PONG (so every subscription is in place), publishers
// publish fixed-size payloads to the subject:
//   open loop:   at `rate` (this worker's share), fixed or Poisson gaps, round-robin over the
//                publishers; a message carries its *intended* time, so a stall shows as
//                latency (no coordinated omission).
//   closed loop: each publisher keeps at most `window` PUBs in flight. By default a PUB is
//                in flight until delivered (to every subscriber; to one in a queue group):
//                the publisher's deliveries over the fan-out, summed over all workers,
//                so the run holds the rate the subscribers keep up with. With ack_window
//                (or no subscribers) until the server took it: a PING follows every
//                max(1, window / 2) PUBs and its PONG acknowledges them (what nats
//                clients' flush() waits for; a server may then deliver faster than the
//                subscribers read, and close them as slow consumers).
// Each payload starts with a nats::Stamp (intended time, publisher, sequence, measured flag);
// a subscriber records now - intended into the histogram for every measured message, and
// counts messages that come before an earlier one of the same publisher (out_of_order).
//
// Counters (ClientResults): sent = measured PUBs, received = measured MSGs delivered (over
// all subscribers, so up to sent x subs without a queue group), errors = -ERR lines, bad
// server bytes, and payloads too short for a stamp. Loss needs every worker's figures and is
// computed by the caller: expected = published x (queue group ? 1 : subscribers).
//
// Workers meet through a NatsShared (atomics only, touched per tick, never per message): a
// worker starts publishing once all are set up, and is done when every worker finished
// publishing and the subscribers got every expected message, or `timeout` after it saw
// every worker finish publishing. Closed-loop pacing reads the per-publisher deliveries.
//
// Ownership: the service is owned by its worker thread; results as in client.hh (the
// histogram is not written once the phase is done).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "app/runtime/conn_slots.hh"
#include "app/runtime/service.hh"
#include "bench/corewire_bench/client.hh"
#include "bench/corewire_bench/nats_codec.hh"
#include "dataplane/io.hh"

namespace cw::bench {

// What the workers of one run share (written by all, by atomic adds once per tick at most).
struct NatsShared {
  NatsShared(uint32_t n, uint32_t pubs_total)
      : workers(n), npubs(pubs_total), by_pub(new std::atomic<uint64_t>[pubs_total]()) {}
  const uint32_t workers, npubs;
  // Deliveries of each publisher's messages (warm-up too), all workers: closed-loop pacing.
  const std::unique_ptr<std::atomic<uint64_t>[]> by_pub;
  std::atomic<uint32_t> ready{0};      // workers whose connections are set up (or gave up)
  std::atomic<uint32_t> sent_done{0};  // workers whose publishers finished
  std::atomic<uint64_t> published{0};  // measured PUBs of the workers that finished
  alignas(64) std::atomic<uint64_t> delivered{0};  // measured MSGs so far, all workers (per tick)
};

struct NatsConfig {
  uint32_t pubs = 1, subs = 1;  // this worker's publisher / subscriber connections
  uint32_t pub_base = 0;        // id of this worker's first publisher (unique over workers)
  uint32_t pubs_total = 1;      // all workers (< 2^kPubBits)
  uint32_t subs_total = 1;      // all workers
  std::string subject = "bench";
  std::string queue;        // empty: plain subscriptions (every subscriber gets every message)
  bool ack_window = false;  // closed loop: in flight until the server's PONG, not delivery
  std::shared_ptr<NatsShared> shared;
};

class NatsClient {
 public:
  // Setup: every table sized here; nothing is allocated afterwards. cfg.msg_size is the
  // payload size (at least nats::kStampSize).
  NatsClient(const ClientConfig& cfg, const NatsConfig& n, ClientResults* res)
      : cfg_(cfg), n_(n), res_(res) {
    if (!n_.shared) n_.shared = std::make_shared<NatsShared>(1, n_.pubs_total);
    n_.pubs_total = std::min(n_.pubs_total, n_.shared->npubs);
    got_by_pub_.assign(n_.pubs_total, 0);
    // A publisher's message is delivered this many times (0: nobody to pace on).
    fan_ = n_.queue.empty() ? n_.subs_total : std::min(n_.subs_total, 1u);
    if (fan_ == 0) n_.ack_window = true;
    cfg_.msg_size = std::max(cfg_.msg_size, nats::kStampSize);
    conns_.resize(size_t(n_.pubs) + n_.subs);
    for (uint32_t i = 0; i < conns_.size(); ++i) conns_[i].pub = i < n_.pubs;
    conn_idx_ = rt::ConnSlots<ConnIdx>(cfg_.max_conns);
    last_seq_.assign(size_t(n_.subs) * n_.pubs_total, 0);
    filler_.assign(cfg_.msg_size, uint8_t('x'));
    chunk_ = std::max(1u, cfg_.window / 2);
    rng_ = cfg_.seed * 0x9E3779B97F4A7C15ull + 1;
    if (cfg_.mode == LoopMode::open && cfg_.rate > 0) period_ns_ = 1e9 / cfg_.rate;
  }

  Phase phase() const { return Phase(res_->phase.load(std::memory_order_relaxed)); }

  // ---- service API --------------------------------------------------------------------
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    const uint64_t now = ctx.now_ns;
    share_delivered();
    if (phase() == Phase::done) return;
    if (phase() == Phase::connecting) connecting(ctx);
    if (phase() == Phase::running) {
      if (cfg_.mode == LoopMode::open)
        send_open(ctx);
      else
        send_closed(ctx);
      if (sending_over(now)) end_sending();
    }
    if (phase() == Phase::draining && drained(now)) set_phase(Phase::done);
    if (phase() != Phase::done) ctx.wake_at(next_wake(now));
  }

  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    Conn* cn = find(c);
    if (!cn) return {uint32_t(b.size()), true};
    uint32_t used = 0;
    for (;;) {
      const nats::Event e = nats::next(cn->rx, b.subspan(used));
      used += e.consumed;
      switch (e.kind) {
        case nats::Ev::need_more:
          return {used, false};
        case nats::Ev::msg:
          on_msg(ctx.now_ns, *cn);
          break;
        case nats::Ev::ping:
          if (!write(ctx, *cn, nats::kPong)) return {used, true};
          break;
        case nats::Ev::pong:
          on_pong(*cn);
          break;
        case nats::Ev::info:
          if (!cn->hello && !hello(ctx, *cn)) return {used, true};
          break;
        case nats::Ev::ok:
          break;
        case nats::Ev::err:
          res_->nats_err_lines.add();
          res_->errors.add();
          break;
        case nats::Ev::bad:
          res_->nats_bad.add();
          res_->errors.add();
          return {used, true};
      }
    }
  }

  template <class Io>
  void on_open(rt::Ctx<Io>&, const dp::RxItem& it) {
    Conn* cn = find(it.conn);
    if (!cn || cn->open) return;
    cn->open = true;
    res_->conns_open.add();
  }

  template <class Io>
  void on_closed(rt::Ctx<Io>&, const dp::RxItem& it) {
    Conn* cn = find(it.conn);
    if (!cn) return;
    conn_idx_.close(it.conn);
    if (cn->open) {
      res_->conns_open.set(res_->conns_open.get() - 1);
      res_->conns_closed.add();
    } else {
      res_->conns_failed.add();
    }
    if (!cn->ready) ++gave_up_;
    cn->open = cn->ready = false;
    cn->dead = true;
    cn->id = dp::kNoConn;
  }

  // ---- test hooks -----------------------------------------------------------------------
  uint32_t ready_conns() const { return ready_; }

 private:
  static constexpr uint32_t kNone = ~uint32_t{0};
  struct Conn {
    dp::ConnId id = dp::kNoConn;
    bool pub = false;
    bool open = false;   // tcp connected
    bool hello = false;  // CONNECT (SUB) PING sent
    bool ready = false;  // the PONG to that PING came
    bool dead = false;   // failed or closed
    nats::RxState rx;
    uint32_t sub = 0;    // subscriber index (subscribers only)
    uint64_t seq = 0;    // publisher: next sequence number
    uint64_t pubs = 0;   // publisher: PUBs sent
    uint64_t acked = 0;  // publisher: PUBs acknowledged by PONGs
  };
  struct ConnIdx {
    uint32_t i = kNone;
  };

  Conn* find(dp::ConnId c) {
    const ConnIdx* x = conn_idx_.find(c);
    return x && x->i < conns_.size() ? &conns_[x->i] : nullptr;
  }
  void set_phase(Phase p) { res_->phase.store(uint8_t(p), std::memory_order_release); }

  template <class Io>
  bool write(rt::Ctx<Io>& ctx, Conn& cn, std::string_view s) {
    uint8_t* o = ctx.io.stream_reserve(cn.id, uint32_t(s.size()));
    if (!o) return false;
    std::memcpy(o, s.data(), s.size());
    ctx.io.stream_commit(cn.id, uint32_t(s.size()));
    return true;
  }

  // INFO came: CONNECT, SUB for a subscriber, and the PING whose PONG says all was taken.
  template <class Io>
  bool hello(rt::Ctx<Io>& ctx, Conn& cn) {
    static constexpr std::string_view kName = "corewire-bench";
    const uint32_t sid = cn.sub + 1;
    const uint32_t n = nats::connect_size(kName) +
                       (cn.pub ? 0 : nats::sub_size(n_.subject, n_.queue, sid)) +
                       uint32_t(nats::kPing.size());
    uint8_t* o = ctx.io.stream_reserve(cn.id, n);
    if (!o) return false;
    char* p = reinterpret_cast<char*>(o);
    p += nats::encode_connect(p, kName);
    if (!cn.pub) p += nats::encode_sub(p, n_.subject, n_.queue, sid);
    std::memcpy(p, nats::kPing.data(), nats::kPing.size());
    ctx.io.stream_commit(cn.id, n);
    cn.hello = true;
    return true;
  }

  void on_pong(Conn& cn) {
    if (!cn.ready) {
      cn.ready = true;
      ++ready_;
      return;
    }
    if (cn.pub) cn.acked = std::min(cn.pubs, cn.acked + chunk_);
  }

  void on_msg(uint64_t now, Conn& cn) {
    const nats::RxState& rx = cn.rx;
    if (cn.pub || rx.head_have < nats::kStampSize) {
      res_->nats_unstamped.add();  // not one of ours (or a subscriber's sid mixed up)
      res_->errors.add();
      return;
    }
    const nats::Stamp s = nats::get_stamp(rx.head);
    if (s.pub < n_.pubs_total) {
      ++got_by_pub_[s.pub];
      uint64_t& last = last_seq_[size_t(cn.sub) * n_.pubs_total + s.pub];
      if (s.seq + 1 <= last) res_->nats_out_of_order.add();
      last = std::max(last, s.seq + 1);
    }
    if (!s.measured) {
      res_->nats_warmup_msgs.add();
      return;
    }
    if (phase() == Phase::done) {  // after the run: counted, not timed
      res_->late.add();
      return;
    }
    res_->received.add();
    ++delivered_;
    res_->hist.record(now >= s.intended_ns ? now - s.intended_ns : 0);
    res_->last_rx_ns = now;
  }

  // Connects every connection (kConnectsPerTick per tick), then waits for all workers.
  template <class Io>
  void connecting(rt::Ctx<Io>& ctx) {
    const uint64_t now = ctx.now_ns;
    if (issued_ == 0) connect_deadline_ = now + cfg_.connect_timeout_ns;
    const uint32_t end = std::min<uint32_t>(uint32_t(conns_.size()), issued_ + kConnectsPerTick);
    for (uint32_t i = issued_; i < end; ++i) {
      Conn& cn = conns_[i];
      cn.sub = i < n_.pubs ? 0 : i - n_.pubs;
      const dp::ConnId c =
          cfg_.sockets.empty() ? dp::kNoConn : ctx.io.connect(cfg_.sockets[0], cfg_.target);
      ConnIdx* x = conn_idx_.open(c);
      if (!x) {
        cn.dead = true;
        ++gave_up_;
        res_->conns_failed.add();
        continue;
      }
      x->i = i;
      cn.id = c;
    }
    issued_ = end;
    if (!counted_ready_ && issued_ == conns_.size() &&
        (ready_ + gave_up_ == conns_.size() || now >= connect_deadline_)) {
      counted_ready_ = true;
      n_.shared->ready.fetch_add(1, std::memory_order_acq_rel);
    }
    if (counted_ready_ && (n_.shared->ready.load(std::memory_order_acquire) == n_.shared->workers ||
                           now >= connect_deadline_ + cfg_.connect_timeout_ns)) {
      start_ns_ = next_intended_ns_ = now;
      res_->measure_start_ns = now + cfg_.warmup_ns;
      set_phase(Phase::running);
    }
  }

  bool in_warmup(uint64_t t) const { return t < start_ns_ + cfg_.warmup_ns; }
  bool may_send(uint64_t t) const {
    if (in_warmup(t)) return true;
    if (cfg_.count && measured_sent_ >= cfg_.count) return false;
    if (cfg_.duration_ns && t >= start_ns_ + cfg_.warmup_ns + cfg_.duration_ns) return false;
    return cfg_.count || cfg_.duration_ns;
  }
  bool any_publisher() const {
    for (uint32_t i = 0; i < n_.pubs; ++i)
      if (conns_[i].ready) return true;
    return false;
  }
  bool sending_over(uint64_t now) const {
    if (!any_publisher()) return true;
    return !may_send(cfg_.mode == LoopMode::open ? next_intended_ns_ : now);
  }
  void end_sending() {
    n_.shared->published.fetch_add(measured_sent_, std::memory_order_relaxed);
    n_.shared->sent_done.fetch_add(1, std::memory_order_acq_rel);
    set_phase(Phase::draining);
  }
  // Every worker finished publishing and every expected message came, or `timeout` passed
  // since this worker saw them all finished (a worker with subscribers only waits for the
  // others' publishers).
  bool drained(uint64_t now) {
    const NatsShared& s = *n_.shared;
    if (s.sent_done.load(std::memory_order_acquire) != s.workers) return false;
    if (all_sent_ns_ == 0) all_sent_ns_ = now;
    if (now - all_sent_ns_ >= cfg_.timeout_ns) return true;
    const uint64_t fan = n_.queue.empty() ? n_.subs_total : (n_.subs_total ? 1 : 0);
    return s.delivered.load(std::memory_order_relaxed) >=
           s.published.load(std::memory_order_relaxed) * fan;
  }
  // Tells the other workers what this one's subscribers got (per tick: O(publishers)).
  void share_delivered() {
    if (n_.subs)
      for (uint32_t p = 0; p < n_.pubs_total; ++p)
        if (got_by_pub_[p]) {
          n_.shared->by_pub[p].fetch_add(got_by_pub_[p], std::memory_order_relaxed);
          got_by_pub_[p] = 0;
        }
    if (delivered_ == shared_delivered_) return;
    n_.shared->delivered.fetch_add(delivered_ - shared_delivered_, std::memory_order_relaxed);
    shared_delivered_ = delivered_;
  }

  // Open loop: every PUB whose intended time has come, round-robin over the publishers.
  template <class Io>
  void send_open(rt::Ctx<Io>& ctx) {
    for (uint32_t k = 0; k < kMaxSendsPerTick && next_intended_ns_ <= ctx.now_ns; ++k) {
      if (!may_send(next_intended_ns_)) return;
      const uint32_t p = next_publisher();
      if (p == kNone) return;
      // No buffer: the connection is gone (a failed reservation closes it; on_closed
      // follows). The message keeps its intended time for the next publisher.
      if (!publish(ctx, conns_[p], next_intended_ns_, p)) return;
      rr_ = p + 1;
      next_intended_ns_ += next_gap_ns();
    }
  }
  // Closed loop: every publisher up to `window` unacknowledged PUBs.
  template <class Io>
  void send_closed(rt::Ctx<Io>& ctx) {
    uint32_t budget = kMaxSendsPerTick;
    for (uint32_t p = 0; p < n_.pubs && budget; ++p) {
      Conn& cn = conns_[p];
      while (cn.ready && in_flight(cn, p) < cfg_.window && budget && may_send(ctx.now_ns)) {
        if (!publish(ctx, cn, ctx.now_ns, p)) return;
        --budget;
      }
    }
  }
  // Closed loop: PUBs of local publisher p not yet acknowledged (ack_window) or delivered
  // (what every worker's subscribers got of them, over the fan-out).
  uint64_t in_flight(const Conn& cn, uint32_t p) const {
    const uint32_t g = n_.pub_base + p;
    if (n_.ack_window || g >= n_.pubs_total) return cn.pubs - cn.acked;
    const uint64_t got = n_.shared->by_pub[g].load(std::memory_order_relaxed) + got_by_pub_[g];
    return cn.pubs - std::min(cn.pubs, got / fan_);
  }

  uint32_t next_publisher() const {
    for (uint32_t i = 0; i < n_.pubs; ++i) {
      const uint32_t p = (rr_ + i) % n_.pubs;
      if (conns_[p].ready) return p;
    }
    return kNone;
  }

  // PUB <subject> <size>\r\n<stamp><filler>\r\n (+ PING every chunk_ PUBs, closed loop).
  template <class Io>
  bool publish(rt::Ctx<Io>& ctx, Conn& cn, uint64_t intended, uint32_t p) {
    const uint32_t size = cfg_.msg_size;
    const uint32_t line = nats::pub_line_size(n_.subject, size);
    const bool ping = cfg_.mode == LoopMode::closed && n_.ack_window && (cn.pubs + 1) % chunk_ == 0;
    const uint32_t n = line + size + 2 + (ping ? uint32_t(nats::kPing.size()) : 0);
    uint8_t* o = ctx.io.stream_reserve(cn.id, n);
    if (!o) {
      res_->send_blocked.add();
      return false;
    }
    nats::encode_pub_line(reinterpret_cast<char*>(o), n_.subject, size);
    uint8_t* pay = o + line;
    std::memcpy(pay, filler_.data(), size);
    const bool measured = !in_warmup(intended);
    nats::put_stamp(pay, {intended, n_.pub_base + p, cn.seq++, measured});
    pay[size] = '\r';
    pay[size + 1] = '\n';
    if (ping) std::memcpy(pay + size + 2, nats::kPing.data(), nats::kPing.size());
    ctx.io.stream_commit(cn.id, n);
    ++cn.pubs;
    if (measured) {
      ++measured_sent_;
      res_->sent.add();
      res_->last_tx_ns = intended;
    } else {
      res_->warmup_sent.add();
    }
    return true;
  }

  uint64_t next_gap_ns() {
    double g = period_ns_;
    if (cfg_.arrival == Arrival::poisson) {
      rng_ ^= rng_ << 13;
      rng_ ^= rng_ >> 7;
      rng_ ^= rng_ << 17;
      const double u = (double(rng_ >> 11) + 0.5) * (1.0 / 9007199254740992.0);
      g = -std::log(u) * period_ns_;
    }
    // Carry the fraction so the long-run rate is exact.
    gap_carry_ += g;
    const uint64_t n = uint64_t(gap_carry_);
    gap_carry_ -= double(n);
    return n;
  }

  uint64_t next_wake(uint64_t now) const {
    uint64_t t = now + std::max<uint64_t>(cfg_.scan_ns, 1000);
    if (phase() == Phase::running && cfg_.mode == LoopMode::open)
      t = std::min(t, std::max(now, next_intended_ns_));
    return t;
  }

  ClientConfig cfg_;
  NatsConfig n_;
  ClientResults* res_;
  std::vector<Conn> conns_;  // publishers first, then subscribers
  rt::ConnSlots<ConnIdx> conn_idx_;
  std::vector<uint64_t> last_seq_;    // [subscriber][publisher]: highest seq + 1 seen
  std::vector<uint64_t> got_by_pub_;  // deliveries per publisher not yet in by_pub
  uint32_t fan_ = 1;                  // deliveries per publish (subscribers, or 1: queue)
  std::vector<uint8_t> filler_;       // the payload's bytes after the stamp
  uint32_t chunk_ = 1;                // closed loop: PUBs per PING
  uint32_t issued_ = 0, ready_ = 0, gave_up_ = 0;
  bool counted_ready_ = false;
  uint64_t connect_deadline_ = 0;
  uint64_t all_sent_ns_ = 0;  // when this worker saw every worker done publishing (0: not yet)
  uint64_t start_ns_ = 0, next_intended_ns_ = 0;
  double period_ns_ = 0, gap_carry_ = 0;
  uint64_t rng_ = 1;
  uint32_t rr_ = 0;
  uint64_t measured_sent_ = 0;
  uint64_t delivered_ = 0, shared_delivered_ = 0;  // measured MSGs; the part told the others
};

}  // namespace cw::bench
