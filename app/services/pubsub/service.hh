// The pubsub service: the NATS client protocol (nats-server 2.9) over TCP, default port
// 4222. docs/pubsub.md has what it speaks and why.
//
// State: each worker holds its own connections' subscriptions (subs_) and the interest of
// every other worker (remote_: one entry per (subject, queue, worker) with a count), kept
// by mail: SUBs and UNSUBs are announced to every other worker in batches (one buffer of
// records per loop iteration), each acknowledged; a PING is answered only once the batch
// holding its connection's last announcement was acknowledged by every worker, so when a
// client's flush (PING/PONG) returns, every worker knows its subscriptions.
//
// A publish on worker A: A matches its own table and remote_, picks one member of every
// matching queue group over all workers (weighted by members), delivers its own share, and
// appends the message (with its picks and target workers) to its open batch, a SharedBuf
// mailed once per loop iteration to every worker one of its messages is for (one reference
// per mail). Mail between two workers is FIFO, so each subscriber sees one publisher's
// messages in publish order, each exactly once.
//
// Flow: a connection whose queued output passes max_pending gets -ERR 'Slow Consumer' and
// is closed (counted). A publisher is paused (not read) while mail to a worker it must reach
// is backpressured or no mail buffer is free. Handlers allocate nothing: tables, pools and
// scratch are sized here.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "app/runtime/conn_slots.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/runtime/shared_buf.hh"
#include "app/services/pubsub/config.hh"
#include "app/services/pubsub/protocol.hh"
#include "app/services/pubsub/stats.hh"
#include "app/services/pubsub/sublist.hh"
#include "dataplane/io.hh"

namespace cw::svc {

namespace nats = pubsub::proto;

class Pubsub {
 public:
  using Options = pubsub::PubsubOptions;
  static constexpr auto kOptionKeys = pubsub::kPubsubOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return pubsub::parse_pubsub_options(k); }
  // No auth on an address that is not loopback needs allow_anonymous (config.hh).
  static std::string listen_refusal(const Options& o, uint32_t addr_be) {
    return pubsub::listen_refusal(o, addr_be);
  }
  static constexpr const auto& kCounters = pubsub::kPubsubCounters;

  // Mail kinds between the workers of one pubsub service (above the control kinds' range
  // used by the runtime for kMailStopAccepting).
  enum : uint16_t {
    kMailPub = 0x101,  // p = a batch of message records (MsgHeader, subject, reply, payload, picks)
    kMailInterest,     // p = Interest records (each + subject + queue); a = the batch's number
    kMailAck,          // back to the announcer: a = the batch number received
  };
  static constexpr uint32_t kSmallBuf = 4096;  // bytes per small mail buffer
  static constexpr uint32_t kSmallBufs = 1024;
  static constexpr uint32_t kLargeBufs = 8;
  static constexpr uint32_t kMaxPicks = 32;                // queue groups one message reaches
  static constexpr uint64_t kHousekeepingNs = 20'000'000;  // pool returns, paused publishers
  static constexpr uint64_t kWaitPollNs =
      50'000;  // a paused publisher's next look (interrupt mode)

  Pubsub(const rt::ServiceCtx& c, const Options& o)
      : opt_(o),
        worker_(c.worker),
        workers_(c.workers),
        conns_(c.max_conns),
        subs_(o.worker_subscriptions),
        remote_(c.workers > 1 ? o.worker_subscriptions : 1),
        matches_(std::make_unique_for_overwrite<uint32_t[]>(o.worker_subscriptions)),
        cands_(std::make_unique_for_overwrite<Cand[]>(
            size_t(o.worker_subscriptions) + (c.workers > 1 ? o.worker_subscriptions : 1))),
        info_(1024),
        rng_(0x9e3779b97f4a7c15ull ^ (uint64_t(c.worker) + 1) * 0xbf58476d1ce4e5b9ull) {
    waiters_.reserve(c.max_conns);
    for (const rt::SocketRef& s : c.sockets)
      if (s.server && s.transport == dp::Transport::tcp && s.id < c.bound.size())
        bound_ = c.bound[s.id];
    if (workers_ > 64) {
      std::fprintf(stderr, "corewire: pubsub: at most 64 workers (%u)\n", workers_);
      std::abort();  // the routing keeps a worker set in 64 bits
    }
    if (workers_ > 1) {
      pubsub::Pools& p = opt_.shared->claim(worker_, workers_);
      p.small = std::make_unique<rt::SharedPool>(worker_, kSmallBufs, kSmallBuf);
      p.large = std::make_unique<rt::SharedPool>(worker_, kLargeBufs, large_bytes());
      small_ = p.small.get();
      large_ = p.large.get();
    }
    server_id_len_ = size_t(
        std::snprintf(server_id_, sizeof server_id_, "NCW%08X%04X", unsigned(::getpid()), 0u));
  }
  Pubsub(Pubsub&&) = default;

  // A PUB line, its payload and CRLF.
  uint32_t max_frame() const { return opt_.max_payload + nats::kMaxControlLine + 64; }
  const pubsub::Sublist& subscriptions() const { return subs_; }
  const pubsub::Sublist& remote_interest() const { return remote_; }

  template <class Io>
  void on_open(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    housekeeping_start(ctx);
    if (opt_.shared->connections.fetch_add(1, std::memory_order_relaxed) >= opt_.max_connections) {
      opt_.shared->connections.fetch_sub(1, std::memory_order_relaxed);
      ctx.counters[pubsub::kRefusedConnections].add();
      send_info(ctx, it.conn, it.peer);
      send_err(ctx, it.conn, nats::kErrMaxConns);
      return ctx.io.close(it.conn);
    }
    Conn* k = conns_.open(it.conn);
    if (!k) {
      opt_.shared->connections.fetch_sub(1, std::memory_order_relaxed);
      return ctx.io.close(it.conn);
    }
    ctx.counters[pubsub::kTotalConnections].add();
    ctx.counters[pubsub::kConnections].add();
    send_info(ctx, it.conn, it.peer);
    k->ping = ctx.timer_after(opt_.ping_interval_ms * 1'000'000, it.conn);
  }

  template <class Io>
  void on_closed(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    Conn* k = conns_.find(it.conn);
    if (!k) return;
    while (k->subs != pubsub::kNil) remove_sub(ctx, *k, k->subs, false);
    if (k->ping != rt::kNoTimer) ctx.timer_cancel(k->ping);
    conns_.close(it.conn);
    opt_.shared->connections.fetch_sub(1, std::memory_order_relaxed);
    const uint64_t n = ctx.counters[pubsub::kConnections].get();
    ctx.counters[pubsub::kConnections].set(n ? n - 1 : 0);
  }

  // Whole ops in order; a partial one is left to the runtime with its `need`.
  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    Conn* k = conns_.find(c);
    if (!k || k->closing) return {uint32_t(b.size()), k == nullptr};
    size_t used = 0;
    while (used < b.size()) {
      const std::span<const uint8_t> rest = b.subspan(used);
      const nats::Parsed p = nats::parse(rest, {opt_.max_payload, k->opts.headers && k->connected});
      if (p.status == nats::Status::need_more)
        return {uint32_t(used), false, false, uint32_t(p.need)};
      if (p.status == nats::Status::error) {
        ctx.counters[pubsub::kProtocolErrors].add();
        ctx.svc->malformed.add();
        const std::string_view text = nats::error_text(p.err);
        if (!text.empty()) send_err(ctx, c, text);
        return close(k, b.size());
      }
      if (auth_required() && !k->connected && p.op != nats::Op::connect)
        return auth_violation(ctx, c, k, b.size());
      const Go go = op(ctx, c, *k, p);
      if (go == Go::close) return close(k, b.size());
      if (go == Go::wait) return {uint32_t(used), false, true, 0};
      used += p.consumed;
    }
    return {uint32_t(used)};
  }

  template <class Io>
  void on_mail(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    housekeeping_start(ctx);
    if (m.from == rt::kControlSender) return;  // enable/disable/drain: nothing to do here
    auto* buf = static_cast<rt::SharedBuf*>(m.p);
    switch (m.kind) {
      case kMailPub:
        if (buf) deliver_forwarded(ctx, *buf);
        break;
      case kMailInterest:
        if (buf) interest(ctx, m, *buf);
        break;
      case kMailAck:
        if (m.from < workers_ && m.a > acked_[m.from]) {
          acked_[m.from] = m.a;
          resume_waiters(ctx);
        }
        break;
      default:
        break;
    }
    if (buf) rt::SharedPool::release(buf, ctx.worker);
  }

  template <class Io>
  void on_mail_drained(rt::Ctx<Io>& ctx) {
    resume_waiters(ctx);
  }

  // Once per loop: this iteration's announcements and messages for other workers go out as
  // one batch each (shared by every worker they are for), and paused
  // connections go on once what they wait for came (a mail buffer back, a mailbox drained,
  // their announcements acknowledged).
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (open_) flush_announcements(ctx);
    if (open_pub_) flush_pubs(ctx);
    if (waiters_.empty()) return;
    small_->reclaim();
    large_->reclaim();
    resume_waiters(ctx);
    if (!waiters_.empty()) ctx.wake_at(ctx.now_ns + kWaitPollNs);
  }

  // The housekeeping timer (user kNoConn) or a connection's PING timer (user = its ConnId).
  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t user) {
    if (user == dp::kNoConn) {
      if (small_) small_->reclaim();
      if (large_) large_->reclaim();
      resume_waiters(ctx);
      ctx.timer_rearm(id, ctx.now_ns + kHousekeepingNs);
      return;
    }
    const dp::ConnId c = dp::ConnId(user);
    Conn* k = conns_.find(c);
    if (!k || k->ping != id || k->closing) return;
    if (k->pings_out >= opt_.max_pings_out) {
      ctx.counters[pubsub::kStaleConnections].add();
      send_err(ctx, c, nats::kErrStale);
      k->closing = true;
      k->ping = rt::kNoTimer;
      return ctx.io.close(c);
    }
    ++k->pings_out;
    write(ctx, c, nats::kPing);
    ctx.timer_rearm(id, ctx.now_ns + opt_.ping_interval_ms * 1'000'000);
  }

 private:
  enum class Go : uint8_t { next, wait, close };
  enum class Wait : uint8_t { none, acks, mail };

  struct Conn {
    nats::ConnectOpts opts;        // its strings are not kept (they point into a received item)
    uint32_t subs = pubsub::kNil;  // its subscriptions (Sub::own_next)
    uint32_t nsubs = 0;
    uint64_t batch = 0;      // the announcement batch holding its last SUB/UNSUB
    Wait wait = Wait::none;  // why we paused it
    uint32_t pings_out = 0;  // server PINGs not answered
    rt::TimerId ping = rt::kNoTimer;
    bool connected = false;  // CONNECT seen
    bool closing = false;    // closed by us; output and input are ignored
    bool paused = false;     // we paused reading it
    bool listed = false;     // in waiters_
  };

  // A message record of a batch mailed to other workers: this header, then subject, reply,
  // payload and `picks` Pick entries. A batch goes to every worker one of its records is for
  // (`targets`); the others skip the record.
  struct MsgHeader {
    uint64_t targets;
    uint32_t subject, reply, payload, hdr, picks, pad;
  };
  // The queue picks a forwarded record brought (for route()).
  struct Picks {
    const uint8_t* at = nullptr;
    uint32_t n = 0;
  };
  struct Pick {
    uint64_t queue_hash;
    uint64_t worker;
  };
  // One record of an announcement batch: this header, then subject and queue.
  struct Interest {
    int32_t delta;  // +1 a subscription more, -1 one less
    uint16_t subject, queue;
  };
  // A queue-group candidate while one message is routed: a local subscription (worker ==
  // kLocal, id) or another worker's members (weight of them).
  struct Cand {
    uint64_t queue_hash;
    uint64_t weight;
    uint32_t id;
    uint32_t worker;
  };
  static constexpr uint32_t kLocal = ~uint32_t{0};

  // One publish as it is routed: from a client here, or forwarded (picks for this worker).
  struct Msg {
    std::string_view subject, reply;
    std::span<const uint8_t> payload;
    uint32_t hdr = 0;
  };

  bool auth_required() const { return opt_.auth(); }
  uint32_t large_bytes() const {
    return opt_.max_payload + 2 * nats::kMaxControlLine + uint32_t(sizeof(MsgHeader)) +
           kMaxPicks * uint32_t(sizeof(Pick));
  }

  static rt::StreamVerdict close(Conn* k, size_t all) {
    k->closing = true;
    return {uint32_t(all), true};
  }

  template <class Io>
  rt::StreamVerdict auth_violation(rt::Ctx<Io>& ctx, dp::ConnId c, Conn* k, size_t all) {
    ctx.counters[pubsub::kAuthFailures].add();
    send_err(ctx, c, nats::kErrAuth);
    return close(k, all);
  }

  // --- ops ---

  template <class Io>
  Go op(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const nats::Parsed& p) {
    switch (p.op) {
      case nats::Op::connect:
        return connect(ctx, c, k, p.json);
      case nats::Op::ping:
        // A flush: answered once every worker has this connection's subscriptions.
        if (k.batch > min_acked()) return wait_acks(ctx, c, k);
        return write(ctx, c, nats::kPong) ? Go::next : Go::close;
      case nats::Op::pong:
        k.pings_out = 0;
        return Go::next;
      case nats::Op::sub:
        return sub(ctx, c, k, p);
      case nats::Op::unsub:
        return unsub(ctx, c, k, p);
      case nats::Op::pub:
      case nats::Op::hpub:
        return pub(ctx, c, k, p);
      default:
        return Go::next;  // INFO, +OK
    }
  }

  template <class Io>
  Go connect(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, std::string_view json) {
    nats::ConnectOpts o = k.opts;
    if (!nats::parse_connect(json, o)) {
      ctx.counters[pubsub::kProtocolErrors].add();
      return Go::close;
    }
    if (o.no_responders && !o.headers) {
      ctx.counters[pubsub::kProtocolErrors].add();
      send_err(ctx, c, nats::kErrNoRespondersNeedsHeaders);
      return Go::close;
    }
    if (auth_required() && !credentials_ok(o)) {
      ctx.counters[pubsub::kAuthFailures].add();
      send_err(ctx, c, nats::kErrAuth);
      return Go::close;
    }
    o.user = o.pass = o.auth_token = o.name = {};
    k.opts = o;
    k.connected = true;
    return ok(ctx, c, k);
  }

  bool credentials_ok(const nats::ConnectOpts& o) const {
    if (!opt_.token.empty()) return o.token_set && o.auth_token == opt_.token;
    return o.user_set && o.pass_set && o.user == opt_.user && o.pass == opt_.password;
  }

  template <class Io>
  Go ok(rt::Ctx<Io>& ctx, dp::ConnId c, const Conn& k) {
    if (!k.opts.verbose) return Go::next;
    return write(ctx, c, nats::kOk) ? Go::next : Go::close;
  }

  template <class Io>
  Go sub(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const nats::Parsed& p) {
    if (!nats::valid_subject(p.subject) || (!p.queue.empty() && !nats::valid_subject(p.queue)) ||
        !pubsub::Sublist::fits(p.subject, p.queue, p.sid)) {
      return send_err(ctx, c, nats::kErrInvalidSubject) ? Go::next : Go::close;
    }
    if (find_sid(c, p.sid) != pubsub::kNil) return ok(ctx, c, k);  // kept, as nats-server
    if (opt_.max_subscriptions && k.nsubs >= opt_.max_subscriptions) {
      ctx.counters[pubsub::kSubsRefused].add();
      return send_err(ctx, c, nats::kErrMaxSubs) ? Go::next : Go::close;
    }
    if (!announce_room(ctx, p.subject.size() + p.queue.size()))
      return wait_for(ctx, c, k, Wait::mail);
    const uint32_t id = subs_.add(p.subject, p.queue, p.sid, c, k.subs);
    if (id == pubsub::kNil) {
      ctx.counters[pubsub::kSubsRefused].add();
      return send_err(ctx, c, nats::kErrMaxSubs) ? Go::next : Go::close;
    }
    ++k.nsubs;
    ctx.counters[pubsub::kSubscriptions].set(subs_.size());
    announce(&k, p.subject, p.queue, +1);
    return ok(ctx, c, k);
  }

  template <class Io>
  Go unsub(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const nats::Parsed& p) {
    const uint32_t id = find_sid(c, p.sid);
    if (id != pubsub::kNil) {
      pubsub::Sub& s = subs_.at(id);
      if (p.max_msgs && s.delivered < p.max_msgs) {
        s.max = p.max_msgs;
      } else {
        if (!announce_room(ctx, s.subject_len + s.queue_len))
          return wait_for(ctx, c, k, Wait::mail);
        remove_sub(ctx, k, id, true);
      }
    }
    return ok(ctx, c, k);
  }

  uint32_t find_sid(dp::ConnId c, std::string_view sid) const { return subs_.find_sid(c, sid); }

  // Removes subscription id of k, announced to the other workers (a PING of k waits for the
  // acknowledgement when `flush`; lost and counted when no buffer is left).
  template <class Io>
  void remove_sub(rt::Ctx<Io>& ctx, Conn& k, uint32_t id, bool flush) {
    const pubsub::Sub& s = subs_.at(id);
    if (announce_room(ctx, s.subject_len + s.queue_len))
      announce(flush ? &k : nullptr, s.subject_sv(), s.queue_sv(), -1);
    else
      ctx.counters[pubsub::kInterestFull].add();
    subs_.remove(id, k.subs);
    --k.nsubs;
    ctx.counters[pubsub::kSubscriptions].set(subs_.size());
  }

  // Whether the open batch can take a record of n subject and queue bytes (it is mailed and a
  // new one taken when full); false when no buffer is free.
  template <class Io>
  bool announce_room(rt::Ctx<Io>& ctx, size_t n) {
    if (workers_ < 2) return true;
    n += sizeof(Interest);
    if (open_ && open_->len + n <= open_->cap) return true;
    if (open_) flush_announcements(ctx);
    open_ = small_->alloc();
    if (!open_) open_ = large_->alloc();
    return open_ != nullptr;
  }

  // Appends a record to the open batch (announce_room said it fits); k, when given, waits for
  // this batch's acknowledgements before its next PONG.
  void announce(Conn* k, std::string_view subject, std::string_view queue, int delta) {
    if (workers_ < 2) return;
    const Interest h{delta, uint16_t(subject.size()), uint16_t(queue.size())};
    uint8_t* o = open_->data + open_->len;
    std::memcpy(o, &h, sizeof h);
    pubsub::copy_bytes(o + sizeof h, subject);
    pubsub::copy_bytes(o + sizeof h + subject.size(), queue);
    open_->len += uint32_t(sizeof h + subject.size() + queue.size());
    if (k) k->batch = sent_ + 1;
  }

  // Mails the open batch to every other worker (one reference each). A worker that cannot be
  // mailed misses it (counted) and is taken as having acknowledged it, so nobody waits forever.
  template <class Io>
  void flush_announcements(rt::Ctx<Io>& ctx) {
    rt::SharedBuf* b = open_;
    open_ = nullptr;
    if (b->len == 0) return rt::SharedPool::release(b, worker_);
    const uint64_t seq = ++sent_;
    for (unsigned w = 0; w < workers_; ++w) {
      if (w == worker_) continue;
      rt::SharedPool::retain(b);
      rt::Mail m;
      m.kind = kMailInterest;
      m.a = seq;
      m.p = b;
      if (ctx.post(w, m) == rt::Post::failed) {
        rt::SharedPool::release(b, worker_);
        ctx.counters[pubsub::kInterestFull].add();
        acked_[w] = std::max(acked_[w], seq);
      }
    }
    rt::SharedPool::release(b, worker_);
  }

  uint64_t min_acked() const {
    uint64_t m = ~uint64_t{0};
    for (unsigned w = 0; w < workers_; ++w)
      if (w != worker_) m = std::min(m, acked_[w]);
    return workers_ < 2 ? ~uint64_t{0} : m;
  }

  // Another worker's batch: each record moves its count for (subject, queue); then acked.
  template <class Io>
  void interest(rt::Ctx<Io>& ctx, const rt::Mail& m, const rt::SharedBuf& b) {
    for (size_t at = 0; at + sizeof(Interest) <= b.len;) {
      Interest h;
      std::memcpy(&h, b.data + at, sizeof h);
      at += sizeof h;
      if (at + h.subject + h.queue > b.len) break;
      const std::string_view subject(reinterpret_cast<const char*>(b.data) + at, h.subject);
      const std::string_view queue(subject.data() + h.subject, h.queue);
      at += h.subject + h.queue;
      if (!pubsub::Sublist::fits(subject, queue, {})) continue;
      const uint32_t id = remote_.find(subject, queue, m.from);
      if (h.delta > 0) {
        if (id != pubsub::kNil)
          ++remote_.at(id).count;
        else if (remote_.add(subject, queue, {}, m.from, remote_own_) == pubsub::kNil)
          ctx.counters[pubsub::kInterestFull].add();
      } else if (id != pubsub::kNil && --remote_.at(id).count == 0) {
        remote_.remove(id, remote_own_);
      }
    }
    rt::Mail ack;
    ack.kind = kMailAck;
    ack.a = m.a;
    ctx.post(m.from, ack);
  }

  // --- publish ---

  template <class Io>
  Go pub(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const nats::Parsed& p) {
    if (k.opts.pedantic && !nats::valid_literal_subject(p.subject) &&
        !send_err(ctx, c, nats::kErrInvalidPubSubject))
      return Go::close;
    const Msg msg{p.subject, p.reply, p.payload, p.hdr_len};
    // Route first: nothing is delivered until the mail it needs is sure to go.
    const Route r = route(msg, c, k.opts.echo, nullptr);
    if (r.targets) {
      for (unsigned w = 0; w < workers_; ++w)
        if ((r.targets >> w & 1) && ctx.backpressured(w)) return wait_for(ctx, c, k, Wait::mail);
      if (!pub_room(ctx, record_bytes(msg, r))) return wait_for(ctx, c, k, Wait::mail);
    }
    ctx.counters[pubsub::kInMsgs].add();
    ctx.counters[pubsub::kInBytes].add(p.payload.size());
    ctx.svc->requests.add();
    if (ok(ctx, c, k) == Go::close) return Go::close;
    deliver_local(ctx, msg, r);
    if (r.targets) append_pub(msg, r);
    if (!p.reply.empty() && k.opts.no_responders && r.nmatch + r.nqueue == 0 && r.targets == 0)
      no_responders(ctx, k, p.reply);
    return Go::next;
  }

  struct Route {
    uint32_t nmatch = 0;        // local plain deliveries in matches_[0, nmatch)
    uint32_t nqueue = 0;        // local queue picks in matches_[nmatch, nmatch + nqueue)
    uint32_t npicks = 0;        // remote queue picks in picks_
    uint64_t targets = 0;       // workers to mail (bit per worker)
    uint64_t remote_plain = 0;  // workers with a plain match
  };

  // Matches msg against this worker's subscriptions (minus the publisher's own without
  // echo) and, for a message from a client here, against the other workers' interest,
  // picking queue members. `forwarded`: the picks a forwarded message brought for this
  // worker (then only local queue groups named there get a member).
  Route route(const Msg& msg, dp::ConnId from, bool echo, const Picks* forwarded) {
    Route r;
    uint32_t nc = 0;
    subs_.match(msg.subject, [&](uint32_t id) {
      const pubsub::Sub& s = subs_.at(id);
      if (!echo && s.owner == from) return;
      if (s.queue_hash == 0)
        matches_[r.nmatch++] = id;
      else
        cands_[nc++] = {s.queue_hash, 1, id, kLocal};
    });
    if (forwarded) {
      // Only groups this worker was picked for; one member of each.
      uint32_t keep = 0;
      for (uint32_t i = 0; i < nc; ++i)
        if (picked_here(*forwarded, cands_[i].queue_hash)) cands_[keep++] = cands_[i];
      nc = keep;
    } else if (workers_ > 1) {
      remote_.match(msg.subject, [&](uint32_t id) {
        const pubsub::Sub& s = remote_.at(id);
        if (s.queue_hash == 0) {
          r.remote_plain |= uint64_t{1} << s.owner;
          r.targets |= uint64_t{1} << s.owner;
        } else {
          cands_[nc++] = {s.queue_hash, s.count, pubsub::kNil, uint32_t(s.owner)};
        }
      });
    }
    // Groups are picked from runs of one queue_hash. One group (the common case) is a run
    // already; a sort is needed only when groups interleave.
    const auto by_group = [](const Cand& a, const Cand& b) { return a.queue_hash < b.queue_hash; };
    if (!std::is_sorted(cands_.get(), cands_.get() + nc, by_group))
      std::sort(cands_.get(), cands_.get() + nc, by_group);
    for (uint32_t i = 0; i < nc;) {
      uint32_t j = i;
      uint64_t total = 0;
      for (; j < nc && cands_[j].queue_hash == cands_[i].queue_hash; ++j) total += cands_[j].weight;
      uint64_t at = next_rand() % total;
      uint32_t pick = i;
      while (at >= cands_[pick].weight) at -= cands_[pick++].weight;
      const Cand& c = cands_[pick];
      if (c.worker == kLocal) {
        matches_[r.nmatch + r.nqueue++] = c.id;
      } else if (r.npicks < kMaxPicks) {
        picks_[r.npicks++] = {c.queue_hash, c.worker};
        r.targets |= uint64_t{1} << c.worker;
      }
      i = j;
    }
    return r;
  }

  bool picked_here(const Picks& p, uint64_t qh) const {
    for (uint32_t i = 0; i < p.n; ++i) {
      Pick k;
      std::memcpy(&k, p.at + i * sizeof k, sizeof k);
      if (k.queue_hash == qh && k.worker == worker_) return true;
    }
    return false;
  }

  static size_t record_bytes(const Msg& m, const Route& r) {
    return sizeof(MsgHeader) + m.subject.size() + m.reply.size() + m.payload.size() +
           r.npicks * sizeof(Pick);
  }

  // Whether the open batch can take a record of n bytes (it is mailed and a new one taken
  // when full; a record over 4 KiB gets a large buffer of its own); false when no buffer is
  // free.
  template <class Io>
  bool pub_room(rt::Ctx<Io>& ctx, size_t n) {
    if (open_pub_ && open_pub_->len + n <= open_pub_->cap) return true;
    if (open_pub_) flush_pubs(ctx);
    open_pub_ = n <= kSmallBuf ? small_->alloc() : nullptr;
    if (!open_pub_ && n <= large_bytes()) open_pub_ = large_->alloc();
    return open_pub_ != nullptr;
  }

  // Appends the message and its picks to the open batch (pub_room said it fits).
  void append_pub(const Msg& m, const Route& r) {
    const MsgHeader h{r.targets,
                      uint32_t(m.subject.size()),
                      uint32_t(m.reply.size()),
                      uint32_t(m.payload.size()),
                      m.hdr,
                      r.npicks,
                      0};
    uint8_t* o = open_pub_->data + open_pub_->len;
    std::memcpy(o, &h, sizeof h);
    o += sizeof h;
    pubsub::copy_bytes(o, m.subject);
    o += m.subject.size();
    pubsub::copy_bytes(o, m.reply);
    o += m.reply.size();
    if (!m.payload.empty()) std::memcpy(o, m.payload.data(), m.payload.size());
    o += m.payload.size();
    std::memcpy(o, picks_.data(), r.npicks * sizeof(Pick));
    open_pub_->len += uint32_t(record_bytes(m, r));
    pub_targets_ |= r.targets;
  }

  // Mails the open batch once to every worker one of its records is for (one reference
  // each); a worker that cannot be mailed misses it, counted.
  template <class Io>
  void flush_pubs(rt::Ctx<Io>& ctx) {
    rt::SharedBuf* b = open_pub_;
    const uint64_t targets = pub_targets_;
    open_pub_ = nullptr;
    pub_targets_ = 0;
    for (unsigned w = 0; w < workers_; ++w) {
      if (!(targets >> w & 1)) continue;
      rt::SharedPool::retain(b);
      rt::Mail m;
      m.kind = kMailPub;
      m.p = b;
      if (ctx.post(w, m) == rt::Post::failed) {
        rt::SharedPool::release(b, worker_);
        ctx.counters[pubsub::kForwardFailed].add();
      } else {
        ctx.counters[pubsub::kForwarded].add();
      }
    }
    rt::SharedPool::release(b, worker_);
  }

  // A batch from another worker: the records for this worker, each to this worker's
  // subscribers and to one local member of each queue group picked here.
  template <class Io>
  void deliver_forwarded(rt::Ctx<Io>& ctx, const rt::SharedBuf& b) {
    for (size_t at = 0; at + sizeof(MsgHeader) <= b.len;) {
      MsgHeader h;
      std::memcpy(&h, b.data + at, sizeof h);
      const uint64_t body =
          uint64_t(h.subject) + h.reply + h.payload + uint64_t(h.picks) * sizeof(Pick);
      if (at + sizeof h + body > b.len || h.hdr > h.payload) return;
      const uint8_t* d = b.data + at + sizeof h;
      at += sizeof h + body;
      if (!(h.targets >> worker_ & 1)) continue;
      const char* s = reinterpret_cast<const char*>(d);
      const Msg msg{
          {s, h.subject}, {s + h.subject, h.reply}, {d + h.subject + h.reply, h.payload}, h.hdr};
      const Picks picks{d + h.subject + h.reply + h.payload, h.picks};
      const Route r = route(msg, dp::kNoConn, true, &picks);
      uint32_t want = 0;  // groups picked for this worker
      for (uint32_t i = 0; i < h.picks; ++i) {
        Pick p;
        std::memcpy(&p, picks.at + i * sizeof p, sizeof p);
        want += p.worker == worker_;
      }
      if (r.nqueue < want) ctx.counters[pubsub::kQueueDropped].add(want - r.nqueue);
      deliver_local(ctx, msg, r);
    }
  }

  template <class Io>
  void deliver_local(rt::Ctx<Io>& ctx, const Msg& m, const Route& r) {
    for (uint32_t i = 0; i < r.nmatch + r.nqueue; ++i) deliver(ctx, matches_[i], m);
  }

  // MSG or HMSG to subscription id; past max_pending its connection is a slow consumer.
  template <class Io>
  void deliver(rt::Ctx<Io>& ctx, uint32_t id, const Msg& m) {
    pubsub::Sub& s = subs_.at(id);
    if (!s.live) return;  // went with an earlier delivery of this message (auto-unsubscribe)
    const dp::ConnId c = dp::ConnId(s.owner);
    Conn* k = conns_.find(c);
    if (!k || k->closing) return;
    // A client that did not announce headers gets the payload without them, as from
    // nats-server.
    const std::span<const uint8_t> body = k->opts.headers ? m.payload : m.payload.subspan(m.hdr);
    const size_t hdr = m.hdr;
    const size_t* with_hdr = m.hdr && k->opts.headers ? &hdr : nullptr;
    // The head is written straight into the output (its size first): no staging copy.
    const size_t hn = nats::msg_head_size(m.subject, s.sid_sv(), m.reply, with_hdr, body.size());
    const size_t n = hn + body.size() + 2;
    // An idle connection takes any one message (max_payload may pass max_pending).
    const uint32_t queued = ctx.io.queued(c);
    if (queued && queued + n > opt_.max_pending) return slow_consumer(ctx, c, *k);
    uint8_t* out = ctx.io.stream_reserve(c, uint32_t(n));
    if (!out) return ctx.svc->dropped.add();
    nats::write_msg_head(reinterpret_cast<char*>(out), m.subject, s.sid_sv(), m.reply, with_hdr,
                         body.size());
    if (!body.empty()) std::memcpy(out + hn, body.data(), body.size());
    out[n - 2] = '\r';
    out[n - 1] = '\n';
    ctx.io.stream_commit(c, uint32_t(n));
    ctx.counters[pubsub::kOutMsgs].add();
    ctx.counters[pubsub::kOutBytes].add(body.size());
    if (++s.delivered >= s.max && s.max) remove_sub(ctx, *k, id, false);
  }

  template <class Io>
  void slow_consumer(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k) {
    ctx.counters[pubsub::kSlowConsumers].add();
    send_err(ctx, c, nats::kErrSlowConsumer);
    k.closing = true;
    ctx.io.close(c);
  }

  // The no-responders status to the requester's own subscription for its reply subject.
  template <class Io>
  void no_responders(rt::Ctx<Io>& ctx, Conn& k, std::string_view reply) {
    for (uint32_t i = k.subs; i != pubsub::kNil; i = subs_.at(i).own_next) {
      const pubsub::Sub& s = subs_.at(i);
      if (!nats::subject_matches(s.subject_sv(), reply)) continue;
      ctx.counters[pubsub::kNoResponders].add();
      const auto* hdr = reinterpret_cast<const uint8_t*>(nats::kNoRespondersHdr.data());
      const Msg m{
          reply, {}, {hdr, nats::kNoRespondersHdr.size()}, uint32_t(nats::kNoRespondersHdr.size())};
      return deliver(ctx, i, m);
    }
  }

  // --- flow ---

  // A PING whose connection's announcements are not all acknowledged: the batch goes out
  // now if it is still open, and the connection waits (not read) for the acknowledgements.
  template <class Io>
  Go wait_acks(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k) {
    if (open_ && k.batch > sent_) flush_announcements(ctx);
    return wait_for(ctx, c, k, Wait::acks);
  }

  // Pauses c until what it waits for came: acknowledgements (checked when one arrives) or
  // mail room (a buffer back, no mailbox full: checked every loop, on_tick).
  template <class Io>
  Go wait_for(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, Wait why) {
    if (why == Wait::mail) {
      ctx.counters[pubsub::kPublisherWaits].add();
      ctx.wake_at(ctx.now_ns + kWaitPollNs);
    }
    k.paused = true;
    k.wait = why;
    if (!k.listed) {
      k.listed = true;
      waiters_.push_back(c);
    }
    return Go::wait;
  }

  template <class Io>
  void resume(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k) {
    k.wait = Wait::none;
    if (!k.paused) return;
    k.paused = false;
    ctx.io.resume(c);
  }

  // Resumes every waiter whose reason is gone; the others stay listed.
  template <class Io>
  void resume_waiters(rt::Ctx<Io>& ctx) {
    if (waiters_.empty()) return;
    bool room = !small_ || (small_->in_use() < small_->size() && large_->in_use() < large_->size());
    for (unsigned w = 0; w < workers_; ++w) room = room && !ctx.backpressured(w);
    const uint64_t acked = min_acked();
    size_t keep = 0;
    for (dp::ConnId c : waiters_) {
      Conn* k = conns_.find(c);
      if (!k) continue;
      const bool still =
          (k->wait == Wait::acks && k->batch > acked) || (k->wait == Wait::mail && !room);
      if (still) {
        waiters_[keep++] = c;
        continue;
      }
      k->listed = false;
      resume(ctx, c, *k);
    }
    waiters_.resize(keep);
  }

  template <class Io>
  void housekeeping_start(rt::Ctx<Io>& ctx) {
    if (housekeeping_ != rt::kNoTimer || workers_ < 2) return;
    housekeeping_ = ctx.timer_after(kHousekeepingNs, dp::kNoConn);
  }

  uint64_t next_rand() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  // --- output ---

  // False: the connection failed (it is being closed).
  template <class Io>
  bool write(rt::Ctx<Io>& ctx, dp::ConnId c, std::string_view bytes) {
    uint8_t* out = ctx.io.stream_reserve(c, uint32_t(bytes.size()));
    if (!out) {
      ctx.svc->dropped.add();
      return false;
    }
    std::memcpy(out, bytes.data(), bytes.size());
    ctx.io.stream_commit(c, uint32_t(bytes.size()));
    return true;
  }

  template <class Io>
  bool send_err(rt::Ctx<Io>& ctx, dp::ConnId c, std::string_view text) {
    char b[160];
    const size_t n = nats::encode_err(b, text);
    ctx.svc->errors.add();
    return n && write(ctx, c, {b, n});
  }

  // INFO, as nats-server 2.9 sends it (auth_required only when it is).
  template <class Io>
  void send_info(rt::Ctx<Io>& ctx, dp::ConnId c, const dp::Endpoint& peer) {
    const uint32_t a = __builtin_bswap32(peer.addr_be), h = __builtin_bswap32(bound_.addr_be);
    const uint64_t cid = ++client_seq_ * workers_ + worker_;
    const int n = std::snprintf(
        info_.data(), info_.size(),
        "INFO {\"server_id\":\"%.*s\",\"server_name\":\"%s\",\"version\":\"2.9.10\","
        "\"proto\":1,\"go\":\"corewire\",\"host\":\"%u.%u.%u.%u\",\"port\":%u,"
        "\"headers\":true,%s\"max_payload\":%u,\"client_id\":%llu,"
        "\"client_ip\":\"%u.%u.%u.%u\"} \r\n",  // nats-server ends it with a space
        int(server_id_len_), server_id_, opt_.server_name.c_str(), h >> 24, (h >> 16) & 255,
        (h >> 8) & 255, h & 255, unsigned(__builtin_bswap16(bound_.port_be)),
        auth_required() ? "\"auth_required\":true," : "", opt_.max_payload, (unsigned long long)cid,
        a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
    if (n > 0 && size_t(n) < info_.size()) write(ctx, c, {info_.data(), size_t(n)});
  }

  Options opt_;
  unsigned worker_ = 0, workers_ = 1;
  rt::ConnSlots<Conn> conns_;
  pubsub::Sublist subs_;                // this worker's connections' subscriptions
  pubsub::Sublist remote_;              // other workers' interest (owner = worker, count)
  uint32_t remote_own_ = pubsub::kNil;  // remote_'s entries as one owner list (unused order)
  // One message's local deliveries (capacity: subs_) and queue candidates (subs_ + remote_);
  // written before read, so untouched pages cost nothing.
  std::unique_ptr<uint32_t[]> matches_;
  std::unique_ptr<Cand[]> cands_;
  std::array<Pick, kMaxPicks> picks_{};
  std::vector<char> info_;             // one INFO line
  std::vector<dp::ConnId> waiters_;    // paused connections (wait_for); capacity max_conns
  rt::SharedBuf* open_ = nullptr;      // the announcement batch being filled (workers > 1)
  uint64_t sent_ = 0;                  // announcement batches mailed
  rt::SharedBuf* open_pub_ = nullptr;  // the message batch being filled (workers > 1)
  uint64_t pub_targets_ = 0;           // workers open_pub_'s records are for
  std::array<uint64_t, 64> acked_{};   // by worker: the last batch it acknowledged
  rt::SharedPool* small_ = nullptr;    // this worker's mail buffers (workers > 1), in
  rt::SharedPool* large_ = nullptr;    // opt_.shared so they outlive every worker
  dp::Endpoint bound_{};
  char server_id_[32] = {};
  size_t server_id_len_ = 0;
  uint64_t client_seq_ = 0;
  uint64_t rng_;
  rt::TimerId housekeeping_ = rt::kNoTimer;
};

}  // namespace cw::svc
