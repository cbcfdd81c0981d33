// The kv service: memcached's text and meta protocols over TCP (default port 11211) and
// its UDP frame, on per-worker store partitions. docs/kv.md has what it speaks and why.
//
// Ownership: every key has one owner worker (rt::owner_of over rt::hash_key), whose Store
// partition alone holds it. A request read on another worker is forwarded: its bytes go to
// the owner by mail (in a buffer of the sender's pool), the owner runs it and mails the
// reply back (in a buffer of its own pool); each buffer goes home through the pool's
// return list. The connection's ReplyOrder writes replies in request order, holding early
// ones. A request with nothing outstanding on its connection and owned here is answered
// in place (the fast path; with one worker every request takes it).
//
// Flow: a connection stops being read (StreamVerdict::pause) while it has pipeline_depth
// requests in flight, while mail to an owner is backpressured or no mail buffer is free,
// and while more than kSlowReaderBytes of its output are queued (a peer that does not
// read); it is resumed when replies come in, mail drains, buffers return or the output
// drains. Handlers allocate nothing: tables, pools and reply buffers are sized here.
//
// Cluster (`cluster = true`, docs/cluster.md#key-value-across-nodes): every key also has an
// owner node, by rendezvous hashing over the nodes the peer API sees up (this one and the
// peer service's `peers`). A request for another node's key takes its turn in the
// connection's ReplyOrder and goes to that node as a peer API request on channel
// kPeerChannel; the owner runs it and answers; the answer takes its turn. One worker only.
#pragma once

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/conn_slots.hh"
#include "app/runtime/registry.hh"
#include "app/runtime/reply_order.hh"
#include "app/runtime/router.hh"
#include "app/runtime/service.hh"
#include "app/runtime/service_keys.hh"
#include "app/runtime/shared_buf.hh"
#include "app/services/kv/cluster.hh"
#include "app/services/kv/config.hh"
#include "app/services/kv/exec.hh"
#include "app/services/kv/protocol.hh"
#include "app/services/kv/stats.hh"
#include "app/services/kv/store/store.hh"
#include "app/services/peer/api_local.hh"
#include "dataplane/io.hh"

namespace cw::svc {

namespace proto = kv::proto;

class Kv {
 public:
  using Options = kv::KvOptions;
  static constexpr auto kOptionKeys = kv::kKvOptionKeys;
  static Options parse_options(rt::ServiceKeys& k) { return kv::parse_kv_options(k); }

  // Output a connection may have queued before it stops being read (a slow reader).
  static constexpr uint32_t kSlowReaderBytes = 1u << 20;
  // Background expiry and the counters' copy to /metrics, every this often.
  static constexpr uint64_t kHousekeepingNs = 1'000'000'000;
  static constexpr uint32_t kExpireBudget = 4096;  // chunks visited per housekeeping

  // Mail kinds between the workers of one kv service.
  enum : uint16_t {
    kMailRequest = 1,  // to the owner: p = request bytes (line + data); a = conn, b = seq
    kMailGetKey,       // to the owner: p = a one-key get line; reply without END
    kMailReply,        // back: p = reply bytes, or nullptr (the owner had no buffer)
    kMailFlush,        // flush_all to the other partitions: a = delay (int64)
    kMailUdp,          // to the owner: p = UdpForward + the datagram; it answers itself
  };

  // The peer API channel kv nodes talk on, and what a request on it carries: a kind byte
  // (kPeerKeyed: one keyed request, line and data; kPeerGetKey: a one-key get line, answered
  // without END), then the request's bytes.
  static constexpr uint16_t kPeerChannel = 2;
  enum : uint8_t { kPeerKeyed = 1, kPeerGetKey = 2 };
  static constexpr uint32_t kPeerPending = 4096;    // requests to other nodes in flight
  static constexpr uint32_t kPeerInbox = 1u << 20;  // the channel's inbox, bytes
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // Declared counters (app/runtime/counters.hh, kv/stats.hh): memcached's names for the
  // partition's store (copied from its StoreStats every kHousekeepingNs), then the service's.
  static constexpr const auto& kCounters = kv::kKvCounters;

  Kv(const rt::ServiceCtx& c, const Options& o)
      : opt_(o),
        parts_(o.partitions),
        worker_(c.worker),
        workers_(c.workers),
        conns_(c.max_conns),
        order_(std::make_unique<rt::ReplyOrder>(rt::ReplyOrderConfig{
            .max_conns = c.max_conns,
            .window = o.pipeline_depth,
            .windows = std::min<uint32_t>(c.max_conns, 1024),
            .block_bytes = 256,
            .blocks = uint32_t((std::max<uint64_t>(2u << 20, 4 * o.item_size_max)) / 256)})),
        scratch_(std::max<size_t>(kv::reply_bytes_max(o.item_size_max), 64 * 1024)),
        peers_(std::clamp<uint32_t>(2 * c.max_conns, 1024, 1u << 16), o.udp_tcp_trust_s),
        waiters_(),
        started_s_(0),
        pid_(uint32_t(::getpid())) {
    limits_.max_value = uint32_t(std::min<uint64_t>(o.item_size_max, proto::kMaxDataLen));
    waiters_.reserve(c.max_conns);
    timespec rt{}, mono{};
    ::clock_gettime(CLOCK_REALTIME, &rt);
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    wall_offset_ns_ = (int64_t(rt.tv_sec) - int64_t(mono.tv_sec)) * 1'000'000'000 +
                      (int64_t(rt.tv_nsec) - int64_t(mono.tv_nsec));
    started_s_ = uint32_t(rt.tv_sec);
    for (const rt::SocketRef& s : c.sockets) {
      if (s.transport != dp::Transport::udp || !s.server) continue;
      const dp::Endpoint at = s.id < c.bound.size() ? c.bound[s.id] : dp::Endpoint{};
      udp_ok_ = o.udp_public || loopback(at);
    }
    part_ = &parts_->claim(worker_, workers_);
    kv::StoreConfig sc;
    sc.memory_limit = kv::partition_bytes(o, workers_);
    sc.item_size_max = o.item_size_max;
    auto st = kv::Store::create(sc);
    if (!st) {
      std::fprintf(stderr, "corewire: kv worker %u: %s\n", worker_, st.error().message.c_str());
      std::abort();  // setup cannot return an error from a factory; the limits were checked
    }
    part_->store = std::make_unique<kv::Store>(std::move(st.value()));
    store_ = part_->store.get();
    if (workers_ > 1) {
      // Forwarded requests in flight are bounded by connections x pipeline depth.
      const uint64_t in_flight = uint64_t(c.max_conns) * o.pipeline_depth;
      part_->small = std::make_unique<rt::SharedPool>(
          worker_, uint32_t(std::clamp<uint64_t>(in_flight, 64, kv::kSmallBufs)), kv::kSmallBuf);
      part_->large =
          std::make_unique<rt::SharedPool>(worker_, kv::kLargeBufs, uint32_t(large_bytes()));
    }
    if (!opt_.warm_restart_file.empty()) warm_load(started_s_);
    if (o.cluster && workers_ > 1) {
      std::fprintf(stderr,
                   "corewire: kv: cluster = true runs on one worker only (not built "
                   "for more): set workers = 1\n");
      std::abort();  // as above: a factory cannot return an error
    }
    if (o.cluster) {
      remote_.resize(kPeerPending);
      remote_free_.reserve(kPeerPending);
      for (uint32_t i = kPeerPending; i-- > 0;) remote_free_.push_back(i);
      peer_buf_.resize(peer::kMaxApiBody);
      held_.reserve(peer::kMaxApiBody);
    }
  }
  Kv(Kv&&) = default;

  uint32_t max_frame() const {
    return uint32_t(
        std::max<uint64_t>(proto::kMaxGetLine, limits_.max_value + proto::kMaxLine + 2));
  }
  const kv::Store& store() const { return *store_; }
  const rt::ReplyOrder& order() const { return *order_; }

  template <class Io>
  void on_open(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    housekeeping_start(ctx);
    Conn* k = conns_.open(it.conn);
    if (!k) return ctx.io.close(it.conn);
    // The handshake proved the address receives: its UDP replies are not capped for a while.
    k->peer_be = it.peer.addr_be;
    k->peer_port_be = it.peer.port_be;
    k->last_s = now_s(ctx);
    if (!peers_.opened(k->peer_be, now_s(ctx))) ctx.counters[kv::kTcpPeersFull].add();
    ctx.counters[kv::kTotalConnections].add();
    ctx.counters[kv::kCurrConnections].add();
  }

  template <class Io>
  void on_closed(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    const Conn* k = conns_.find(it.conn);
    if (!k) return;
    peers_.closed(k->peer_be, now_s(ctx));
    conns_.close(it.conn);
    order_->closed(it.conn);
    const uint64_t n = ctx.counters[kv::kCurrConnections].get();
    ctx.counters[kv::kCurrConnections].set(n ? n - 1 : 0);
  }

  // Whole requests in order; a partial one is left to the runtime with its `need`.
  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    Conn* k = conns_.find(c);
    if (!k) return {uint32_t(b.size()), true};
    const uint32_t now = now_s(ctx);
    k->last_s = now;
    size_t used = 0;
    if (k->swallow) {  // the rest of a refused value
      const size_t take = std::min<uint64_t>(k->swallow, b.size());
      k->swallow -= take;
      used = take;
    }
    while (used < b.size()) {
      if (ctx.io.queued(c) > kSlowReaderBytes) {
        ctx.counters[kv::kSlowReaderPauses].add();
        k->wait = Wait::output;
        ctx.io.notify_writable(c);
        return pause(k, used);
      }
      const std::span<const uint8_t> rest = b.subspan(used);
      const proto::Parsed p = proto::parse(rest, limits_, k->scanned);
      if (p.status == proto::Status::need_more) {
        k->scanned = p.need ? 0 : uint32_t(rest.size());
        return {uint32_t(used), false, false, uint32_t(p.need)};
      }
      k->scanned = 0;
      Go go;
      if (p.status == proto::Status::error) {
        go = bad_request(ctx, c, p);
        if (go == Go::next && p.consumed > rest.size()) {
          k->swallow = p.consumed - rest.size();
          return {uint32_t(b.size())};
        }
      } else {
        go = request(ctx, c, *k, p.req, rest.first(p.consumed), now);
      }
      if (go == Go::close) return {uint32_t(used + std::min(p.consumed, rest.size())), true};
      if (go == Go::wait) return wait(ctx, c, k, used);
      used += p.consumed;
    }
    return {uint32_t(used)};
  }

  template <class Io>
  void on_writable(rt::Ctx<Io>& ctx, dp::ConnId c) {
    Conn* k = conns_.find(c);
    if (k && k->wait == Wait::output) resume(ctx, c, *k);
  }

  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    housekeeping_start(ctx);
    if (!udp_ok_) return ctx.counters[kv::kUdpRefused].add();
    serve_udp(ctx, it.sock, it.peer, {it.data, it.len}, false, trusted(ctx, it.peer));
  }

  template <class Io>
  void on_mail(rt::Ctx<Io>& ctx, const rt::Mail& m) {
    housekeeping_start(ctx);
    auto* buf = static_cast<rt::SharedBuf*>(m.p);
    switch (m.kind) {
      case kMailRequest:
      case kMailGetKey:
        if (buf) serve_forwarded(ctx, m, {buf->data, buf->len});
        break;
      case kMailReply:
        reply_arrived(ctx, m, buf);
        break;
      case kMailFlush:
        store_->flush_all(int64_t(m.a), now_s(ctx));
        break;
      case kMailUdp:
        if (buf && buf->len >= sizeof(UdpForward)) {
          UdpForward f;
          std::memcpy(&f, buf->data, sizeof f);
          serve_udp(ctx, f.sock, f.peer, {buf->data + sizeof f, buf->len - uint32_t(sizeof f)},
                    true, f.trusted);
        }
        break;
      default:
        break;  // control mail (enable/disable/drain): nothing to do here
    }
    if (buf) rt::SharedPool::release(buf, ctx.worker);
  }

  // Cluster: find this worker's peer API (the peer service registers it on its first tick),
  // then take what other nodes sent: requests to run, answers to ours.
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    if (!opt_.cluster || (!api_ && !cluster_attach(ctx))) return;
    uint32_t events = 0;
    if (held_to_.has_value()) send_held(ctx);
    while (!held_to_.has_value() &&
           api_->poll(
               kPeerChannel, [&](const peer::ApiMessage& m) { on_peer(ctx, m); }, 1))
      ++events;
    if (events) resume_waiters(ctx);
  }

  template <class Io>
  void on_mail_drained(rt::Ctx<Io>& ctx) {
    resume_waiters(ctx);
  }

  template <class Io>
  void on_timer(rt::Ctx<Io>& ctx, rt::TimerId id, uint64_t) {
    store_->expire_some(now_s(ctx), kExpireBudget);
    mirror_counters(ctx);
    if (part_->small) part_->small->reclaim();
    if (part_->large) part_->large->reclaim();
    resume_waiters(ctx);
    ctx.timer_rearm(id, ctx.now_ns + kHousekeepingNs);
  }

  // After the loop stopped (drain or stop): the partition goes to <file>.<worker>.
  template <class Io>
  void on_stop(rt::Ctx<Io>& ctx) {
    mirror_counters(ctx);
    if (opt_.warm_restart_file.empty()) return;
    const uint32_t now = now_s(ctx);
    const std::string path = warm_path(worker_);
    auto r = store_->save_file(path, now);
    if (!r) {
      std::fprintf(stderr, "corewire: kv worker %u: warm restart save failed: %s\n", worker_,
                   r.error().message.c_str());
      return;
    }
    ctx.counters[kv::kWarmSaved].set(r.value().items);
    std::fprintf(stderr, "corewire: kv worker %u: saved %llu items to %s\n", worker_,
                 (unsigned long long)r.value().items, path.c_str());
    // Files of workers this run does not have would be loaded again next time: worker 0
    // removes them (nobody else writes those names).
    if (worker_ == 0)
      for (unsigned i = workers_; i < kv::kMaxWarmFiles; ++i) ::unlink(warm_path(i).c_str());
  }

 private:
  enum class Go : uint8_t { next, wait, close };
  enum class Wait : uint8_t { none, replies, progress, output };

  struct Conn {
    uint64_t swallow = 0;   // bytes of a refused value still to discard
    uint32_t scanned = 0;   // bytes at the start known to hold no newline (parse's hint)
    uint32_t get_done = 0;  // keys of the current get line already taken (after a wait)
    Wait wait = Wait::none;
    bool paused = false;        // we paused reading it
    bool listed = false;        // in waiters_
    uint32_t peer_be = 0;       // the peer's IPv4 address (TcpPeers, stats conns)
    uint16_t peer_port_be = 0;  // stats conns
    uint32_t last_s = 0;        // unix s of its last bytes (stats conns)
  };

  // The UDP request a worker forwards to the owner of its keys, who sends the reply.
  struct UdpForward {
    dp::SocketId sock;
    dp::Endpoint peer;
    bool trusted;  // decided where it arrived (that worker saw the source's TCP sessions)
  };

  // Where one reply goes: straight to the stream (nothing outstanding) or its turn.
  struct Slot {
    bool direct = true;
    uint32_t seq = 0;
  };

  static bool loopback(const dp::Endpoint& e) { return (ntohl_(e.addr_be) >> 24) == 127; }
  // A source that has shown it receives: its replies are not capped (docs/kv.md, "UDP").
  template <class Io>
  bool trusted(const rt::Ctx<Io>& ctx, const dp::Endpoint& peer) const {
    return loopback(peer) || kv::in_any(opt_.udp_trusted, peer.addr_be) ||
           peers_.proven(peer.addr_be, now_s(ctx));
  }
  static uint32_t ntohl_(uint32_t v) { return __builtin_bswap32(v); }

  template <class Io>
  uint32_t now_s(const rt::Ctx<Io>& ctx) const {
    return uint32_t((int64_t(ctx.now_ns) + wall_offset_ns_) / 1'000'000'000);
  }

  std::string warm_path(unsigned w) const {
    return opt_.warm_restart_file + "." + std::to_string(w);
  }

  static rt::StreamVerdict pause(Conn* k, size_t used) {
    k->paused = true;
    return {uint32_t(used), false, true, 0};
  }

  template <class Io>
  rt::StreamVerdict wait(rt::Ctx<Io>& ctx, dp::ConnId c, Conn* k, size_t used) {
    ctx.counters[kv::kPipelinePauses].add();
    if (order_->outstanding(c) > 0) {
      k->wait = Wait::replies;  // its own replies will resume it
    } else {
      k->wait = Wait::progress;  // a window, mail or a buffer elsewhere: any progress
      if (!k->listed) {
        k->listed = true;
        waiters_.push_back(c);
      }
    }
    return pause(k, used);
  }

  template <class Io>
  void resume(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k) {
    k.wait = Wait::none;
    if (!k.paused) return;
    k.paused = false;
    ctx.io.resume(c);
  }

  template <class Io>
  void resume_waiters(rt::Ctx<Io>& ctx) {
    if (waiters_.empty()) return;
    for (dp::ConnId c : waiters_) {
      Conn* k = conns_.find(c);
      if (!k) continue;
      k->listed = false;
      if (k->wait == Wait::progress) resume(ctx, c, *k);
    }
    waiters_.clear();
  }

  // --- replies ---

  // A slot for one reply on c; false: the pipeline is full (wait).
  bool take_slot(dp::ConnId c, Slot& s) {
    if (order_->idle(c)) {
      s = Slot{true, 0};
      return true;
    }
    s.direct = false;
    s.seq = order_->begin(c);
    return s.seq != rt::ReplyOrder::kFull;
  }

  // False: the connection failed (it is being closed).
  template <class Io>
  bool put(rt::Ctx<Io>& ctx, dp::ConnId c, const Slot& s, std::span<const char> bytes) {
    if (s.direct) return write(ctx, c, bytes);
    return answer(ctx, c, s.seq, bytes);
  }

  template <class Io>
  bool write(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const char> bytes) {
    if (bytes.empty()) return true;
    uint8_t* out = ctx.io.stream_reserve(c, uint32_t(bytes.size()));
    if (!out) {
      ctx.svc->dropped.add();
      return false;
    }
    std::memcpy(out, bytes.data(), bytes.size());
    ctx.io.stream_commit(c, uint32_t(bytes.size()));
    ctx.svc->responses.add();
    return true;
  }

  template <class Io>
  bool answer(rt::Ctx<Io>& ctx, dp::ConnId c, uint32_t seq, std::span<const char> bytes) {
    const rt::Reply r = order_->reply(
        ctx.io, c, seq, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    if (r == rt::Reply::failed) {
      ctx.svc->dropped.add();
      ctx.io.close(c);
      return false;
    }
    if (r != rt::Reply::dropped) ctx.svc->responses.add();
    return true;
  }

  // A reply in scratch_ (n bytes, or kv::kOverflow: a bug, answered as a server error).
  std::span<const char> scratch(size_t n) {
    if (n == kv::kOverflow)
      n = proto::encode_server_error(scratch_, "reply does not fit the reply buffer");
    return {scratch_.data(), n};
  }

  // --- requests ---

  template <class Io>
  Go bad_request(rt::Ctx<Io>& ctx, dp::ConnId c, const proto::Parsed& p) {
    // A request that ends the connection waits, as quit does, until the replies before it
    // are out: closing now would drop those held in order.
    if (p.close && !order_->idle(c)) return Go::wait;
    if (p.close) {
      ctx.counters[kv::kProtocolCloses].add();
      ctx.svc->malformed.add();
    } else {
      ctx.counters[kv::kClientErrors].add();
      ctx.svc->errors.add();
    }
    if (!p.noreply && !p.reply.empty()) {
      Slot s;
      if (!take_slot(c, s)) return Go::wait;
      const size_t n = proto::encode_line(scratch_, p.reply);
      if (!put(ctx, c, s, scratch(n))) return Go::close;
    }
    return p.close ? Go::close : Go::next;
  }

  template <class Io>
  Go request(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const proto::Request& r,
             std::span<const uint8_t> raw, uint32_t now) {
    using proto::Cmd;
    if (kv::is_keyed(r.cmd)) {
      const std::string_view key = r.item_key();
      if (const uint32_t slot = owner_node(key); slot != kNoSlot) {
        const Go go = forward_peer(ctx, c, slot, kPeerKeyed, raw);
        if (go != Go::wait) ctx.svc->requests.add();
        return go;
      }
      const unsigned owner = owner_of(ctx, key);
      if (owner == worker_) {
        Slot s;
        if (!take_slot(c, s)) return Go::wait;
        ctx.svc->requests.add();
        return put(ctx, c, s, scratch(kv::execute_keyed(*store_, r, now, scratch_))) ? Go::next
                                                                                     : Go::close;
      }
      if (ctx.backpressured(owner)) return Go::wait;
      rt::SharedBuf* buf = mail_buf(raw.size());
      if (!buf) return Go::wait;
      const uint32_t seq = order_->begin(c);
      if (seq == rt::ReplyOrder::kFull) {
        rt::SharedPool::release(buf, ctx.worker);
        return Go::wait;
      }
      ctx.svc->requests.add();
      std::memcpy(buf->data, raw.data(), raw.size());
      buf->len = uint32_t(raw.size());
      return forward(ctx, c, seq, owner, kMailRequest, buf) ? Go::next : Go::close;
    }
    if (kv::is_get(r.cmd)) return get_line(ctx, c, k, r, now);
    if (r.cmd == Cmd::quit) return order_->idle(c) ? Go::close : Go::wait;
    // stats counts what the requests before it did, on whichever worker ran them.
    if (r.cmd == Cmd::stats && !order_->idle(c)) return Go::wait;
    Slot s;
    if (!take_slot(c, s)) return Go::wait;
    ctx.svc->requests.add();
    size_t n = 0;
    switch (r.cmd) {
      case Cmd::version:
        n = proto::encode_line(scratch_, kv::kVersionLine);
        break;
      case Cmd::verbosity:
        n = r.noreply ? 0 : proto::encode(scratch_, proto::Reply::ok);
        break;
      case Cmd::mn:
        n = proto::encode(scratch_, proto::Reply::mn);
        break;
      case Cmd::flush_all:
        flush_all(ctx, r.exptime, now);
        n = r.noreply ? 0 : proto::encode(scratch_, proto::Reply::ok);
        break;
      case Cmd::stats:
        n = stats_reply(ctx, r.args, now);
        break;
      default:
        n = proto::encode(scratch_, proto::Reply::error);
        break;
    }
    return put(ctx, c, s, scratch(n ? n : 0)) ? Go::next : Go::close;
  }

  // get/gets/gat/gats: a VALUE block per hit in key order, then END. Keys owned elsewhere
  // are forwarded one by one; each key and the END take a turn in the ReplyOrder, so a
  // line with more keys than the pipeline depth is taken in parts (get_done).
  template <class Io>
  Go get_line(rt::Ctx<Io>& ctx, dp::ConnId c, Conn& k, const proto::Request& r, uint32_t now) {
    if (k.get_done == 0 && order_->idle(c) && all_local(ctx, r.keys)) {
      ctx.svc->requests.add();
      for (std::string_view key : r.keys) {
        const size_t n = kv::execute_get_key(*store_, r.cmd, key, r.exptime, now, scratch_);
        if (n && !write(ctx, c, scratch(n))) return Go::close;
      }
      return write(ctx, c, scratch(proto::encode(scratch_, proto::Reply::end))) ? Go::next
                                                                                : Go::close;
    }
    if (k.get_done == 0) ctx.svc->requests.add();
    uint32_t i = 0;
    for (std::string_view key : r.keys) {
      if (i++ < k.get_done) continue;
      if (const uint32_t slot = owner_node(key); slot != kNoSlot) {
        char line[proto::kMaxLine];
        const size_t n = kv::encode_get_key({line, sizeof line}, r.cmd, r.exptime, key);
        const Go go =
            forward_peer(ctx, c, slot, kPeerGetKey, {reinterpret_cast<const uint8_t*>(line), n});
        if (go == Go::wait) k.get_done = i - 1;
        if (go != Go::next) return go;
        continue;
      }
      const unsigned owner = owner_of(ctx, key);
      rt::SharedBuf* buf = nullptr;
      if (owner != worker_) {
        if (ctx.backpressured(owner) || !(buf = mail_buf(proto::kMaxLine))) {
          k.get_done = i - 1;
          return Go::wait;
        }
      }
      const uint32_t seq = order_->begin(c);
      if (seq == rt::ReplyOrder::kFull) {
        if (buf) rt::SharedPool::release(buf, ctx.worker);
        k.get_done = i - 1;
        return Go::wait;
      }
      if (owner == worker_) {
        const size_t n = kv::execute_get_key(*store_, r.cmd, key, r.exptime, now, scratch_);
        if (!answer(ctx, c, seq, scratch(n))) return Go::close;
        continue;
      }
      buf->len = uint32_t(kv::encode_get_key({reinterpret_cast<char*>(buf->data), buf->cap}, r.cmd,
                                             r.exptime, key));
      if (!forward(ctx, c, seq, owner, kMailGetKey, buf)) return Go::close;
    }
    const uint32_t seq = order_->begin(c);
    if (seq == rt::ReplyOrder::kFull) {
      k.get_done = r.keys.size();
      return Go::wait;
    }
    k.get_done = 0;
    return answer(ctx, c, seq, scratch(proto::encode(scratch_, proto::Reply::end))) ? Go::next
                                                                                    : Go::close;
  }

  template <class Io>
  bool all_local(rt::Ctx<Io>& ctx, const proto::KeyList& keys) const {
    if (workers_ == 1 && !api_) return true;
    for (std::string_view key : keys)
      if (owner_of(ctx, key) != worker_ || owner_node(key) != kNoSlot) return false;
    return true;
  }

  template <class Io>
  unsigned owner_of(rt::Ctx<Io>& ctx, std::string_view key) const {
    if (workers_ == 1) return 0;
    return ctx.owner_of(rt::hash_key({reinterpret_cast<const uint8_t*>(key.data()), key.size()}));
  }

  template <class Io>
  void flush_all(rt::Ctx<Io>& ctx, int64_t delay, uint32_t now) {
    ctx.counters[kv::kCmdFlush].add();
    store_->flush_all(delay, now);
    rt::Mail m;
    m.kind = kMailFlush;
    m.a = uint64_t(delay);
    // Mail to a worker is FIFO, so requests this connection forwards later see the flush.
    if (workers_ > 1 && ctx.broadcast(m, false) != 0) ctx.counters[kv::kForwardFailed].add();
  }

  // --- forwarding ---

  // A buffer of this worker's pools for n bytes; nullptr when none is free (wait).
  rt::SharedBuf* mail_buf(size_t n) {
    if (n <= kv::kSmallBuf) return part_->small ? part_->small->alloc() : nullptr;
    if (n > large_bytes()) return nullptr;
    return part_->large ? part_->large->alloc() : nullptr;
  }
  size_t large_bytes() const { return kv::reply_bytes_max(opt_.item_size_max) + kv::kSmallBuf; }

  // Posts buf (filled) to the owner; on failure answers SERVER_ERROR at seq.
  template <class Io>
  bool forward(rt::Ctx<Io>& ctx, dp::ConnId c, uint32_t seq, unsigned owner, uint16_t kind,
               rt::SharedBuf* buf) {
    rt::Mail m;
    m.kind = kind;
    m.a = c;
    m.b = seq;
    m.p = buf;
    if (ctx.post(owner, m) != rt::Post::failed) {
      ctx.counters[kv::kForwarded].add();
      return true;
    }
    rt::SharedPool::release(buf, ctx.worker);
    ctx.counters[kv::kForwardFailed].add();
    return answer(ctx, c, seq, scratch(proto::encode_server_error(scratch_, "out of memory")));
  }

  // On the owner: run a forwarded request and mail the reply home.
  template <class Io>
  void serve_forwarded(rt::Ctx<Io>& ctx, const rt::Mail& m, std::span<const uint8_t> bytes) {
    bool bad = false;
    const std::span<const char> out =
        scratch(run_forwarded(bytes, m.kind == kMailGetKey, now_s(ctx), bad));
    ctx.counters[kv::kServedForOthers].add();
    rt::Mail r = m;
    r.kind = kMailReply;
    r.p = nullptr;
    if (rt::SharedBuf* b = mail_buf(out.size())) {
      std::memcpy(b->data, out.data(), out.size());
      b->len = uint32_t(out.size());
      r.p = b;
    }
    if (ctx.post(m.from, r) == rt::Post::failed) {  // the requester's turn never comes
      if (r.p) rt::SharedPool::release(static_cast<rt::SharedBuf*>(r.p), ctx.worker);
      ctx.counters[kv::kForwardFailed].add();
    }
  }

  // A forwarded request (one keyed request, or a one-key get line when get_key) run on this
  // partition: the reply's length in scratch_. Anything else is answered SERVER_ERROR and
  // sets bad.
  size_t run_forwarded(std::span<const uint8_t> bytes, bool get_key, uint32_t now, bool& bad) {
    const proto::Parsed p = proto::parse(bytes, limits_);
    const bool ok =
        p.status == proto::Status::ok && p.consumed == bytes.size() &&
        (get_key ? kv::is_get(p.req.cmd) && p.req.keys.size() == 1 : kv::is_keyed(p.req.cmd));
    bad = !ok;
    if (!ok) return proto::encode_server_error(scratch_, "forwarded request unreadable");
    if (get_key)
      return kv::execute_get_key(*store_, p.req.cmd, *p.req.keys.begin(), p.req.exptime, now,
                                 scratch_);
    return kv::execute_keyed(*store_, p.req, now, scratch_);
  }

  // Home again: the reply takes its turn; a connection waiting for its replies may read on.
  template <class Io>
  void reply_arrived(rt::Ctx<Io>& ctx, const rt::Mail& m, rt::SharedBuf* buf) {
    const dp::ConnId c = dp::ConnId(m.a);
    if (buf) {
      take_reply(ctx, c, uint32_t(m.b), {reinterpret_cast<const char*>(buf->data), buf->len});
    } else {
      ctx.counters[kv::kForwardFailed].add();
      take_reply(ctx, c, uint32_t(m.b),
                 scratch(proto::encode_server_error(scratch_, "out of memory")));
    }
    resume_waiters(ctx);
  }

  template <class Io>
  void take_reply(rt::Ctx<Io>& ctx, dp::ConnId c, uint32_t seq, std::span<const char> bytes) {
    answer(ctx, c, seq, bytes);
    Conn* k = conns_.find(c);
    if (k && k->wait == Wait::replies && order_->outstanding(c) <= opt_.pipeline_depth / 2)
      resume(ctx, c, *k);
  }

  // --- cluster ---

  // The node list from the peer API: this node, then the configured peers (every node has
  // the same list, so every node computes the same owners). False: no peer service yet.
  template <class Io>
  bool cluster_attach(rt::Ctx<Io>& ctx) {
    api_ = peer::local_api(ctx.worker);
    if (!api_) return false;
    if (!api_->open_channel(kPeerChannel, {kPeerPending, kPeerInbox})) {
      std::fprintf(stderr, "corewire: kv: the peer API channel %u is taken: not clustering\n",
                   unsigned(kPeerChannel));
      opt_.cluster = false;
      api_ = nullptr;
      return false;
    }
    const peer::ApiConfig& pc = api_->config();
    node_ids_.push_back(kv::node_id(pc.self));
    node_slot_.push_back(kNoSlot);
    for (const dp::Endpoint& e : pc.peers) {
      if (e == pc.self) continue;
      node_ids_.push_back(kv::node_id(e));
      node_slot_.push_back(api_->slot_to(e));
    }
    node_up_.assign(node_ids_.size(), 0);
    return true;
  }

  // The peer slot of the node owning key, or kNoSlot: this node (or no cluster).
  uint32_t owner_node(std::string_view key) const {
    if (!api_) return kNoSlot;
    for (size_t i = 0; i < node_ids_.size(); ++i)
      node_up_[i] = i == 0 || (node_slot_[i] != kNoSlot &&
                               api_->state(node_slot_[i]) != peer::PeerState::down);
    const size_t o =
        kv::rendezvous(rt::hash_key({reinterpret_cast<const uint8_t*>(key.data()), key.size()}),
                       node_ids_, node_up_);
    return o == 0 ? kNoSlot : node_slot_[o];
  }

  // Sends bytes (a keyed request or a one-key get line) to the node in slot; its answer
  // takes the connection's next turn. Wait: no turn, no table entry or no room on the way.
  template <class Io>
  Go forward_peer(rt::Ctx<Io>& ctx, dp::ConnId c, uint32_t slot, uint8_t kind,
                  std::span<const uint8_t> bytes) {
    const bool fits = bytes.size() + 1 <= peer::kMaxApiBody;
    if (fits && (remote_free_.empty() || !api_->can_request(slot, kPeerChannel, bytes.size() + 1)))
      return Go::wait;
    const uint32_t seq = order_->begin(c);
    if (seq == rt::ReplyOrder::kFull) return Go::wait;
    if (!fits) {
      ctx.counters[kv::kClusterTooLarge].add();
      return answer(ctx, c, seq,
                    scratch(proto::encode_server_error(scratch_, "too large for the cluster")))
                 ? Go::next
                 : Go::close;
    }
    peer_buf_[0] = kind;
    std::memcpy(peer_buf_.data() + 1, bytes.data(), bytes.size());
    const uint32_t i = remote_free_.back();
    if (api_->request(slot, kPeerChannel, std::span(peer_buf_.data(), bytes.size() + 1), i,
                      ctx.now_ns) != peer::Send::ok) {
      ctx.counters[kv::kClusterUnavailable].add();
      return answer(ctx, c, seq, peer_failure(kind)) ? Go::next : Go::close;
    }
    remote_free_.pop_back();
    remote_[i] = {c, seq, kind};
    ctx.counters[kv::kClusterForwarded].add();
    ctx.wake_at(ctx.now_ns);  // the peer service sends it next iteration
    return Go::next;
  }

  // What a request to a node that did not answer gets: a get's key misses (cache semantics);
  // anything else is a server error.
  std::span<const char> peer_failure(uint8_t kind) {
    if (kind == kPeerGetKey) return {};
    return scratch(proto::encode_server_error(scratch_, "owner node unavailable"));
  }

  template <class Io>
  void on_peer(rt::Ctx<Io>& ctx, const peer::ApiMessage& m) {
    if (m.event == peer::Event::request) return serve_peer(ctx, m);
    if (m.cookie >= remote_.size()) return;
    const Remote r = remote_[m.cookie];
    remote_free_.push_back(uint32_t(m.cookie));
    if (m.event == peer::Event::response) {
      take_reply(ctx, r.conn, r.seq, {reinterpret_cast<const char*>(m.body.data()), m.body.size()});
      return;
    }
    ctx.counters[m.event == peer::Event::timeout ? kv::kClusterTimeouts : kv::kClusterUnavailable]
        .add();
    take_reply(ctx, r.conn, r.seq, peer_failure(r.kind));
  }

  // Another node's request for a key this node owns: run it, answer. An answer that must
  // wait for room is held (polling stops until it is sent).
  template <class Io>
  void serve_peer(rt::Ctx<Io>& ctx, const peer::ApiMessage& m) {
    ctx.counters[kv::kClusterServed].add();
    size_t n = 0;
    bool bad = m.body.empty() || (m.body[0] != kPeerKeyed && m.body[0] != kPeerGetKey);
    if (bad)
      n = proto::encode_server_error(scratch_, "forwarded request unreadable");
    else
      n = run_forwarded(m.body.subspan(1), m.body[0] == kPeerGetKey, now_s(ctx), bad);
    if (bad) ctx.counters[kv::kClusterBad].add();
    std::span<const char> out = scratch(n);
    if (out.size() > peer::kMaxApiBody) {
      ctx.counters[kv::kClusterTooLarge].add();
      out = scratch(proto::encode_server_error(scratch_, "too large for the cluster"));
    }
    const std::span<const uint8_t> bytes{reinterpret_cast<const uint8_t*>(out.data()), out.size()};
    if (api_->respond(m.to, kPeerChannel, bytes) == peer::Send::wait) {
      held_.assign(bytes.begin(), bytes.end());
      held_to_ = m.to;
    }
    ctx.wake_at(ctx.now_ns);
  }

  template <class Io>
  void send_held(rt::Ctx<Io>& ctx) {
    if (api_->respond(*held_to_, kPeerChannel, held_) == peer::Send::wait) return;
    held_to_.reset();
    ctx.wake_at(ctx.now_ns);
  }

  // --- UDP ---

  // One request datagram: every request in it runs here when this worker owns all their
  // keys; when another worker owns them all, the datagram goes there and that worker
  // answers; keys of several owners are refused (SERVER_ERROR, counted).
  template <class Io>
  void serve_udp(rt::Ctx<Io>& ctx, dp::SocketId sock, const dp::Endpoint& peer,
                 std::span<const uint8_t> dgram, bool forwarded, bool trusted) {
    const proto::UdpFrame f = proto::parse_udp(dgram);
    if (f.status != proto::UdpStatus::ok) return ctx.counters[kv::kUdpMalformed].add();
    unsigned owner = worker_;
    bool spanning = false;
    if (!forwarded && workers_ > 1) {
      bool first = true;
      for (size_t off = 0; off < f.payload.size();) {
        const proto::Parsed p = proto::parse(f.payload.subspan(off), limits_);
        if (p.status != proto::Status::ok) break;
        off += p.consumed;
        auto see = [&](std::string_view key) {
          const unsigned o = owner_of(ctx, key);
          if (first) owner = o;
          spanning = spanning || o != owner;
          first = false;
        };
        if (kv::is_keyed(p.req.cmd)) see(p.req.item_key());
        if (kv::is_get(p.req.cmd))
          for (std::string_view key : p.req.keys) see(key);
      }
      if (!spanning && owner != worker_) {
        rt::SharedBuf* buf = mail_buf(sizeof(UdpForward) + dgram.size());
        if (!buf) return ctx.counters[kv::kUdpMalformed].add();
        const UdpForward fw{sock, peer, trusted};
        std::memcpy(buf->data, &fw, sizeof fw);
        std::memcpy(buf->data + sizeof fw, dgram.data(), dgram.size());
        buf->len = uint32_t(sizeof fw + dgram.size());
        rt::Mail m;
        m.kind = kMailUdp;
        m.p = buf;
        if (ctx.post(owner, m) == rt::Post::failed) {
          rt::SharedPool::release(buf, ctx.worker);
          ctx.counters[kv::kForwardFailed].add();
        } else {
          ctx.counters[kv::kForwarded].add();
        }
        return;
      }
    }
    ctx.counters[kv::kUdpRequests].add();
    const uint32_t now = now_s(ctx);
    size_t len = 0;
    bool overflow = false;
    auto room = [&] { return std::span<char>(scratch_).subspan(len); };
    auto add = [&](size_t n) {
      if (n == kv::kOverflow || n > scratch_.size() - len)
        overflow = true;
      else
        len += n;
    };
    if (spanning) {
      ctx.counters[kv::kUdpSpanning].add();
      add(proto::encode_server_error(room(), "keys of one UDP request span workers"));
    }
    for (size_t off = 0; !spanning && !overflow && off < f.payload.size();) {
      const proto::Parsed p = proto::parse(f.payload.subspan(off), limits_);
      if (p.status == proto::Status::need_more) {
        ctx.counters[kv::kUdpMalformed].add();
        break;
      }
      off += p.consumed;
      ctx.svc->requests.add();
      if (p.status == proto::Status::error) {
        ctx.counters[kv::kClientErrors].add();
        if (!p.noreply && !p.reply.empty()) add(proto::encode_line(room(), p.reply));
        if (p.close || p.consumed > f.payload.size()) break;
        continue;
      }
      const proto::Request& r = p.req;
      if (kv::is_keyed(r.cmd)) {
        add(kv::execute_keyed(*store_, r, now, room()));
      } else if (kv::is_get(r.cmd)) {
        for (std::string_view key : r.keys)
          if (!overflow) add(kv::execute_get_key(*store_, r.cmd, key, r.exptime, now, room()));
        add(proto::encode(room(), proto::Reply::end));
      } else if (r.cmd == proto::Cmd::flush_all) {
        flush_all(ctx, r.exptime, now);
        if (!r.noreply) add(proto::encode(room(), proto::Reply::ok));
      } else if (r.cmd == proto::Cmd::version) {
        add(proto::encode_line(room(), kv::kVersionLine));
      } else if (r.cmd == proto::Cmd::mn) {
        add(proto::encode(room(), proto::Reply::mn));
      } else if (r.cmd == proto::Cmd::verbosity) {
        if (!r.noreply) add(proto::encode(room(), proto::Reply::ok));
      } else if (r.cmd != proto::Cmd::quit) {
        add(proto::encode(room(), proto::Reply::error));  // stats: TCP only
      }
    }
    if (overflow) {
      len = 0;
      add(proto::encode_server_error(room(), "object too large for cache"));
    }
    send_udp(ctx, sock, peer, f.header.request_id, {scratch_.data(), len}, dgram.size(), trusted);
  }

  // The reply cut into memcached's datagrams. To a source that has not shown it receives
  // the reply may be udp_reply_factor times its request at most (counted).
  template <class Io>
  void send_udp(rt::Ctx<Io>& ctx, dp::SocketId sock, const dp::Endpoint& peer, uint16_t id,
                std::span<const char> reply, size_t request_bytes, bool trusted) {
    if (reply.empty()) return;
    const uint16_t total = proto::udp_datagram_count(reply.size());
    const uint64_t wire = reply.size() + uint64_t(total) * proto::kUdpHeaderSize;
    if (!trusted && wire > uint64_t(opt_.udp_reply_factor) * request_bytes)
      return ctx.counters[kv::kUdpCapped].add();
    const std::span<const uint8_t> bytes{reinterpret_cast<const uint8_t*>(reply.data()),
                                         reply.size()};
    for (uint16_t seq = 0; seq < total; ++seq) {
      uint8_t* out = ctx.io.dgram_reserve(sock, peer, uint32_t(proto::kUdpMaxDatagram));
      if (!out) return ctx.svc->dropped.add();
      const size_t n = proto::udp_datagram({out, proto::kUdpMaxDatagram}, id, bytes, seq);
      ctx.io.dgram_commit(uint32_t(n));
    }
    ctx.svc->responses.add();
  }

  // --- stats ---

  // `stats [settings|slabs|items|conns]`: memcached's names. Store figures are the sum
  // over every partition (read from their counters; docs/kv.md), connections this worker's.
  template <class Io>
  size_t stats_reply(rt::Ctx<Io>& ctx, std::string_view args, uint32_t now) {
    kv::StatsWriter w(scratch_);
    if (args.empty()) {
      w.stat("pid", pid_);
      w.stat("uptime", now - std::min(now, started_s_));
      w.stat("time", now);
      w.text("version", kv::kVersion);
      w.stat("pointer_size", 64);
      w.stat("curr_connections", ctx.counters[kv::kCurrConnections].get());
      w.stat("total_connections", ctx.counters[kv::kTotalConnections].get());
      w.stat("threads", workers_);
      w.stat("cmd_flush", ctx.counters[kv::kCmdFlush].get());
      kv::store_stats_sum(w, *parts_);
    } else if (args == "settings") {
      w.stat("maxbytes", opt_.memory_limit);
      w.stat("maxconns", uint64_t(conns_.capacity()) * workers_);
      w.stat("num_threads", workers_);
      w.text("evictions", "on");
      w.text("cas_enabled", "yes");
      w.text("growth_factor", "1.25");
      w.stat("item_size_max", opt_.item_size_max);
      w.stat("udp_reply_factor", opt_.udp_reply_factor);
      w.stat("udp_trusted", opt_.udp_trusted.size());
      w.stat("udp_tcp_trust", opt_.udp_tcp_trust_s);
      w.stat("pipeline_depth", opt_.pipeline_depth);
      w.text("warm_restart_file", opt_.warm_restart_file.empty() ? "none" : "set");
    } else if (args == "slabs") {
      kv::store_slabs_sum(w, *parts_, opt_.item_size_max);
    } else if (args == "items") {
      kv::store_items_sum(w, *parts_);
    } else if (args == "conns") {
      // This worker's connections (others' state is theirs alone); as many as fit.
      conns_.for_each([&](dp::ConnId c, const Conn& k) { conn_stats(w, c, k, now); });
    } else {
      return proto::encode(scratch_, proto::Reply::error);
    }
    return w.end();
  }

  // memcached's `stats conns` lines for one connection: "<id>:addr", ":state",
  // ":secs_since_last_cmd".
  static void conn_stats(kv::StatsWriter& w, dp::ConnId c, const Conn& k, uint32_t now) {
    static constexpr const char* kState[] = {"conn_parse_cmd", "conn_wait_replies",
                                             "conn_wait_progress", "conn_wait_output"};
    const uint32_t a = ntohl_(k.peer_be);
    char name[48], addr[40];
    const int n =
        std::snprintf(addr, sizeof addr, "tcp:%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255,
                      (a >> 8) & 255, a & 255, unsigned(__builtin_bswap16(k.peer_port_be)));
    auto named = [&](const char* what) {
      return std::string_view(
          name, size_t(std::snprintf(name, sizeof name, "%llu:%s", (unsigned long long)c, what)));
    };
    w.text(named("addr"), {addr, size_t(n)});
    w.text(named("state"), kState[size_t(k.wait)]);
    w.stat(named("secs_since_last_cmd"), now - std::min(now, k.last_s));
  }

  template <class Io>
  void mirror_counters(rt::Ctx<Io>& ctx) {
    kv::copy_store_counters(store_->stats(), ctx.counters);
    ctx.counters[kv::kWarmLoaded].set(warm_loaded_);
  }

  template <class Io>
  void housekeeping_start(rt::Ctx<Io>& ctx) {
    if (timer_ != rt::kNoTimer) return;
    timer_ = ctx.timer_after(kHousekeepingNs, 0);
    mirror_counters(ctx);
  }

  // --- warm restart (setup) ---

  // Loads every <file>.<i>, keeping the keys this worker owns now: a restart with another
  // worker count re-homes every item. A refused file leaves the partition empty.
  void warm_load(uint32_t now) {
    kv::LoadOptions lo;
    lo.merge = true;
    const unsigned me = worker_, n = workers_;
    lo.keep = [me, n](std::string_view key) {
      return n == 1 ||
             rt::owner_of(rt::hash_key({reinterpret_cast<const uint8_t*>(key.data()), key.size()}),
                          n) == me;
    };
    kv::LoadSummary total;
    unsigned files = 0;
    for (unsigned i = 0; i < kv::kMaxWarmFiles; ++i) {
      const std::string path = warm_path(i);
      if (::access(path.c_str(), F_OK) != 0) continue;
      auto r = store_->load_file(path, now, lo);
      if (!r) {
        std::fprintf(stderr,
                     "corewire: kv worker %u: warm restart file refused, starting empty: %s\n",
                     worker_, r.error().message.c_str());
        return;
      }
      ++files;
      total.items += r.value().items;
      total.skipped_expired += r.value().skipped_expired;
      total.dropped += r.value().dropped;
      total.not_kept += r.value().not_kept;
    }
    warm_loaded_ = total.items;
    if (files == 0) {
      if (worker_ == 0)
        std::fprintf(stderr, "corewire: kv: no warm restart file %s.*: starting empty\n",
                     opt_.warm_restart_file.c_str());
      return;
    }
    std::fprintf(stderr,
                 "corewire: kv worker %u: warm restart: %llu items from %u file(s) (%llu "
                 "expired, %llu did not fit, %llu owned by other workers)\n",
                 worker_, (unsigned long long)total.items, files,
                 (unsigned long long)total.skipped_expired, (unsigned long long)total.dropped,
                 (unsigned long long)total.not_kept);
  }

  Options opt_;
  std::shared_ptr<kv::Partitions> parts_;
  kv::Partition* part_ = nullptr;
  kv::Store* store_ = nullptr;  // part_->store: this worker's partition
  unsigned worker_ = 0, workers_ = 1;
  proto::Limits limits_;
  rt::ConnSlots<Conn> conns_;
  std::unique_ptr<rt::ReplyOrder> order_;
  std::vector<char> scratch_;        // one reply, encoded before it is written or held
  kv::TcpPeers peers_;               // this worker's recent TCP peers (UDP proof)
  std::vector<dp::ConnId> waiters_;  // paused for progress; capacity max_conns
  int64_t wall_offset_ns_ = 0;       // unix time = monotonic + this (ns)
  uint32_t started_s_ = 0;           // unix s
  uint32_t pid_ = 0;
  uint64_t warm_loaded_ = 0;
  bool udp_ok_ = false;
  rt::TimerId timer_ = rt::kNoTimer;
  // Cluster (null api_: not clustering, or not attached yet). Nodes: [0] this one, then the
  // peers, with their peer slots and (scratch for owner_node) whether each is up.
  struct Remote {
    dp::ConnId conn = 0;
    uint32_t seq = 0;
    uint8_t kind = 0;
  };
  peer::Api* api_ = nullptr;
  std::vector<uint64_t> node_ids_;
  std::vector<uint32_t> node_slot_;
  mutable std::vector<uint8_t> node_up_;
  std::vector<Remote> remote_;         // requests to other nodes, by cookie
  std::vector<uint32_t> remote_free_;  // free cookies
  std::vector<uint8_t> peer_buf_;      // one request to another node, kind byte first
  std::vector<uint8_t> held_;          // an answer to another node that waits for room
  std::optional<peer::ReplyTo> held_to_;
};

}  // namespace cw::svc
