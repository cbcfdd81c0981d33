// The load-generator client service: one instance per worker, driven by the runtime's worker
// loop like any server-side service (on_tick originates requests; on_datagram / on_stream
// match replies). It speaks the native or the sockperf dialect, or memcached's text or meta
// protocol (a get/set workload: "memcached" below), over UDP (one client socket per flow)
// or TCP (one connection per flow).
//
// Timing (ns, the worker's monotonic ctx.now_ns, read once per burst):
//   closed loop: each flow keeps `window` requests outstanding; latency = reply - send.
//   open loop:   requests follow a schedule (fixed or Poisson inter-arrival times) that does
//                not wait for replies. Each request carries its *intended* send time, and
//                latency = reply - intended, so a stalled client or server shows up in the
//                latency instead of being hidden (no coordinated omission). A request that is
//                late because of the client (no tx buffer) keeps its intended time.
// Outstanding requests live in a fixed per-flow ring (max_outstanding, power of two); a
// request not answered within `timeout_ns` of its intended time is counted as lost, and so
// is the oldest one when a flow's ring is full and a new request is due.
//
// memcached: a request's kind (get or set) and value length are a hash of (flow, seq), so a
// reply can be followed without storing anything per request: TCP replies come in request
// order (Flow::rx_seq), UDP replies carry the low 16 bits of seq as request id. Keys are
// drawn from a KeyDist shared read-only by the workers.
//
// Ownership: the service is owned by its worker thread. Results (counters, histogram) live
// in a ClientResults owned by the caller (main / tests) and outlive the worker; the worker
// is the only writer, others read the Counters while it runs and the histogram after done.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "app/protocol/native.hh"
#include "app/protocol/sockperf.hh"
#include "app/runtime/conn_slots.hh"
#include "app/runtime/service.hh"
#include "app/services/kv/protocol.hh"
#include "bench/corewire_bench/key_dist.hh"
#include "bench/corewire_bench/kv_codec.hh"
#include "bench/corewire_bench/kv_udp.hh"
#include "bench/hist/histogram.hh"
#include "dataplane/io.hh"

namespace cw::bench {

enum class Dialect : uint8_t { native, sockperf, memcached, nats };  // nats: NatsClient
enum class LoopMode : uint8_t { closed, open };
enum class Arrival : uint8_t { fixed, poisson };

inline constexpr uint32_t kMaxSendsPerTick = 256;  // default bound of one tick's sends (then flush)
inline constexpr uint32_t kConnectsPerTick = 256;  // tcp connects issued per tick
inline constexpr uint32_t kRunBytes = 16384;       // tcp: bytes per top-up reservation at most

// The memcached workload (Dialect::memcached).
struct KvConfig {
  kv::KvProto proto = kv::KvProto::text;
  double get_ratio = 0.9;                     // share of requests that are gets (the rest are sets)
  uint32_t key_size = 32;                     // bytes, >= kv::min_key_size(keys)
  uint32_t value_min = 100, value_max = 100;  // set value length, uniform in [min, max]
  uint32_t multiget = 1;                      // keys per get
  std::shared_ptr<const kv::KeyDist> keys;    // the key space; read-only, shared by workers
  bool preload = false;        // sets only, key preload_first + i for the i-th request
  uint64_t preload_first = 0;  // this worker's first key
  uint32_t udp_slots = 4;      // replies reassembled at once per flow
};

// What a worker's client does; fixed for the run. Per-worker shares (rate, count) are
// computed by the caller (see share()).
struct ClientConfig {
  Dialect dialect = Dialect::native;
  dp::Transport transport = dp::Transport::udp;
  dp::Endpoint target;
  uint32_t msg_size = 64;  // bytes per message, header included
  uint32_t flows = 1;      // UDP sockets or TCP connections
  // The client sockets the service declared (ServiceCtx::sockets): UDP one per flow; TCP
  // one, the group connect() attaches the connections to.
  std::vector<dp::SocketId> sockets;
  LoopMode mode = LoopMode::closed;
  uint32_t window = 1;  // closed loop: outstanding per flow
  double rate = 0;      // open loop: this worker's requests per second
  Arrival arrival = Arrival::fixed;
  uint64_t seed = 1;
  uint64_t count = 0;        // measured requests this worker sends (0 = no bound)
  uint64_t duration_ns = 0;  // measured phase length (0 = no bound)
  uint64_t warmup_ns = 0;    // sent but not measured, before the measured phase
  uint64_t timeout_ns = 1'000'000'000;
  uint64_t connect_timeout_ns = 5'000'000'000;
  uint64_t scan_ns = 1'000'000;    // how often expired requests are swept (bounds the cost)
  uint32_t max_outstanding = 256;  // per flow, rounded up to a power of two
  // Requests sent per tick at most; the rest of a closed loop's top-up (or an open loop's
  // due requests) goes out in the next ticks, each its own flush. A bound below a closed
  // loop's flows x window splits its requests into several bursts in flight at once, so
  // the server and the client can work at the same time instead of taking turns with one
  // burst (docs/BENCHMARKS.md, "TCP echo on DPDK").
  uint32_t sends_per_tick = kMaxSendsPerTick;
  uint16_t service_id = 0;     // native: service field of requests
  bool check = false;          // verify reply payloads
  uint32_t max_conns = 16384;  // the backend's per-worker connection slots (tcp)
  KvConfig kv;                 // memcached only
};

enum class Phase : uint8_t { connecting, running, draining, done };

// One worker's results. Counters count measured requests only, except where noted.
struct alignas(64) ClientResults {
  dp::Counter sent, received, lost, errors;
  dp::Counter late;          // replies after their request was counted lost (or unknown)
  dp::Counter warmup_sent;   // all phases: not in the counters above
  dp::Counter send_blocked;  // ticks that found no tx buffer (requests sent late)
  dp::Counter conns_open, conns_failed, conns_closed;  // tcp; open is a gauge
  // memcached, measured requests: gets, sets, keys asked by gets, values received, keys
  // missed; error and not-stored lines (in `errors` too). Whole run: replies that could not
  // be parsed (in `errors` too), UDP reassemblies given up for a newer request.
  dp::Counter kv_gets, kv_sets, kv_keys, kv_hits, kv_misses, kv_error_replies;
  dp::Counter kv_bad_replies, kv_udp_evicted;
  // nats (nats_client.hh), whole run: -ERR lines, bytes that are not the NATS server
  // protocol (the connection is closed), MSGs without a stamp, MSGs that came before an
  // earlier one of the same publisher, warm-up MSGs (not in received).
  dp::Counter nats_err_lines, nats_bad, nats_unstamped, nats_out_of_order, nats_warmup_msgs;
  std::atomic<uint8_t> phase{uint8_t(Phase::connecting)};
  // Written by the worker; read by others only once phase == done (or the thread exited).
  uint64_t measure_start_ns = 0;  // start of the measured phase
  uint64_t last_rx_ns = 0;        // last measured reply
  uint64_t last_tx_ns = 0;        // last measured request's intended time
  Histogram hist;
  bool done() const { return phase.load(std::memory_order_acquire) == uint8_t(Phase::done); }
};

// Payload byte j of request seq (so replies can be checked without keeping what was sent).
inline uint8_t pattern_byte(uint64_t seq, uint32_t j) {
  return uint8_t(seq * 131 + j * 7 + 1);
}

class Client {
 public:
  // Setup: sizes every table (allocation happens here, never afterwards).
  Client(const ClientConfig& cfg, ClientResults* res) : cfg_(cfg), res_(res) {
    cap_ = 2;
    while (cap_ < std::max(cfg_.max_outstanding, cfg_.window)) cap_ <<= 1;
    // UDP request ids are seq's low 16 bits: fewer outstanding keeps the mapping unique.
    if (kv_udp()) cap_ = std::min(cap_, kMaxKvUdpOutstanding);
    cfg_.msg_size = std::max(cfg_.msg_size, header_size());
    run_max_ = std::max(1u, kRunBytes / cfg_.msg_size);
    flows_.resize(cfg_.flows);
    if (cfg_.transport == dp::Transport::udp) {
      // One socket per flow; sock_flow_ maps a reply's socket back to its flow.
      for (uint32_t f = 0; f < cfg_.flows && f < cfg_.sockets.size(); ++f) {
        const dp::SocketId s = cfg_.sockets[f];
        flows_[f].sock = s;
        if (s >= sock_flow_.size()) sock_flow_.resize(s + 1u, kNoFlow);
        sock_flow_[s] = f;
      }
    } else {
      conn_flow_ = rt::ConnSlots<ConnFlow>(cfg_.max_conns);
    }
    entries_.resize(size_t(cfg_.flows) * cap_);
    rng_ = cfg_.seed * 0x9E3779B97F4A7C15ull + 1;
    if (cfg_.mode == LoopMode::open && cfg_.rate > 0) period_ns_ = 1e9 / cfg_.rate;
    if (cfg_.dialect == Dialect::memcached) kv_setup();
  }

  // memcached over UDP: at most this many outstanding requests per flow.
  static constexpr uint32_t kMaxKvUdpOutstanding = 1u << 15;
  // memcached over UDP: a reply may hold at least this many bytes (per reassembly slot).
  static constexpr uint32_t kUdpMinReply = 64 * 1024;

  uint32_t header_size() const {
    if (cfg_.dialect == Dialect::memcached) return 0;
    return cfg_.dialect == Dialect::native ? proto::native::kHeaderSize
                                           : proto::sockperf::kHeaderSize;
  }
  Phase phase() const { return Phase(res_->phase.load(std::memory_order_relaxed)); }

  // ---- service API --------------------------------------------------------------------
  template <class Io>
  void on_tick(rt::Ctx<Io>& ctx) {
    const uint64_t now = ctx.now_ns;
    if (phase() == Phase::done) return;
    if (phase() == Phase::connecting) {
      if (connects_issued_ < cfg_.flows) start_connects(ctx);
      if (connected_ + failed_ == cfg_.flows || now >= connect_deadline_) start_running(now);
    }
    if (phase() == Phase::running) {
      if (cfg_.mode == LoopMode::open)
        send_open(ctx);
      else
        send_closed(ctx);
      if (sending_over(now)) set_phase(Phase::draining);
    }
    if (now >= next_scan_ns_) {
      next_scan_ns_ = now + cfg_.scan_ns;
      expire(now);
    }
    if (phase() == Phase::draining && (total_outstanding_ == 0 || alive_ == 0))
      set_phase(Phase::done);
    if (phase() != Phase::done) ctx.wake_at(next_wake(now));
  }

  template <class Io>
  void on_datagram(rt::Ctx<Io>& ctx, const dp::RxItem& it) {
    if (it.sock >= sock_flow_.size() || sock_flow_[it.sock] == kNoFlow) return;
    if (cfg_.dialect == Dialect::memcached)
      return kv_datagram(ctx.now_ns, sock_flow_[it.sock], {it.data, it.len});
    const uint32_t used = on_bytes(ctx.now_ns, sock_flow_[it.sock], {it.data, it.len});
    if (used != it.len) res_->errors.add();  // truncated or trailing bytes
  }

  template <class Io>
  rt::StreamVerdict on_stream(rt::Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    const uint32_t f = flow_of(c);
    if (f == kNoFlow) return {uint32_t(b.size()), true};
    if (cfg_.dialect == Dialect::memcached) return kv_stream(ctx.now_ns, f, b);
    uint32_t used = 0;
    for (;;) {
      const uint32_t n = on_bytes(ctx.now_ns, f, b.subspan(used));
      if (n == 0) break;
      if (n == kBadFrame) {
        res_->errors.add();
        return {used, true};
      }
      used += n;
    }
    return {used, false};
  }

  template <class Io>
  void on_open(rt::Ctx<Io>&, const dp::RxItem& it) {
    const uint32_t f = flow_of(it.conn);
    if (f == kNoFlow || flows_[f].open) return;
    flows_[f].open = true;
    ++connected_;
    ++alive_;
    res_->conns_open.add();
  }

  template <class Io>
  void on_closed(rt::Ctx<Io>&, const dp::RxItem& it) {
    const uint32_t f = flow_of(it.conn);
    if (f == kNoFlow) return;
    conn_flow_.close(it.conn);
    Flow& fl = flows_[f];
    fl.conn = dp::kNoConn;
    if (!fl.open) {  // never connected
      ++failed_;
      res_->conns_failed.add();
      fl.dead = true;
      return;
    }
    fl.open = false;
    fl.dead = true;
    --alive_;
    res_->conns_open.set(res_->conns_open.get() - 1);
    res_->conns_closed.add();
    while (fl.oldest != fl.next_seq) retire(fl, entry(f, fl.oldest), /*lost=*/true);
  }

  // ---- test hooks -----------------------------------------------------------------------
  uint32_t outstanding() const { return total_outstanding_; }

 private:
  static constexpr uint32_t kNoFlow = ~uint32_t{0};
  static constexpr uint32_t kBadFrame = ~uint32_t{0};
  enum class State : uint8_t { free, waiting, done };
  struct Entry {
    uint64_t seq = 0;
    uint64_t intended_ns = 0;
    State state = State::free;
    bool measured = false;
  };
  struct Flow {
    dp::SocketId sock = 0;
    dp::ConnId conn = dp::kNoConn;
    bool open = false;  // tcp: connected; udp: always usable
    bool dead = false;  // tcp: failed or closed
    uint64_t next_seq = 0;
    uint64_t oldest = 0;  // oldest seq still holding an entry
    uint32_t outstanding = 0;
    uint64_t rx_seq = 0;      // memcached tcp: the request the next reply element answers
    kv::ReplyState rx;        // ... and what its reply held so far
    uint32_t skip = 0;        // ... bytes of a long value still to pass unbuffered
    bool value_tail = false;  // ... then its CRLF
  };

  struct ConnFlow {
    uint32_t flow = kNoFlow;
  };

  Entry& entry(uint32_t f, uint64_t seq) { return entries_[size_t(f) * cap_ + (seq & (cap_ - 1))]; }
  uint32_t flow_of(dp::ConnId c) {
    const ConnFlow* cf = conn_flow_.find(c);
    return cf && cf->flow < flows_.size() ? cf->flow : kNoFlow;
  }
  void set_phase(Phase p) { res_->phase.store(uint8_t(p), std::memory_order_release); }

  // TCP connects are issued kConnectsPerTick at a time so a large --conns run does not
  // flood the backend's submission queue in one tick.
  template <class Io>
  void start_connects(rt::Ctx<Io>& ctx) {
    if (connects_issued_ == 0) connect_deadline_ = ctx.now_ns + cfg_.connect_timeout_ns;
    if (cfg_.transport == dp::Transport::udp) {
      for (auto& f : flows_) f.open = true;
      connected_ = alive_ = cfg_.flows;
      connects_issued_ = cfg_.flows;
      return;
    }
    const uint32_t end = std::min(cfg_.flows, connects_issued_ + kConnectsPerTick);
    for (uint32_t f = connects_issued_; f < end; ++f) {
      const dp::ConnId c =
          cfg_.sockets.empty() ? dp::kNoConn : ctx.io.connect(cfg_.sockets[0], cfg_.target);
      ConnFlow* cf = conn_flow_.open(c);
      if (!cf) {
        ++failed_;
        res_->conns_failed.add();
        flows_[f].dead = true;
        continue;
      }
      flows_[f].conn = c;
      cf->flow = f;
    }
    connects_issued_ = end;
  }

  void start_running(uint64_t now) {
    start_ns_ = now;
    next_intended_ns_ = now;
    res_->measure_start_ns = now + cfg_.warmup_ns;
    set_phase(alive_ ? Phase::running : Phase::done);
  }

  bool in_warmup(uint64_t t) const { return t < start_ns_ + cfg_.warmup_ns; }
  // Whether a request intended at t may still be sent.
  bool may_send(uint64_t t) const {
    if (in_warmup(t)) return true;
    if (cfg_.count && measured_sent_ >= cfg_.count) return false;
    if (cfg_.duration_ns && t >= start_ns_ + cfg_.warmup_ns + cfg_.duration_ns) return false;
    return cfg_.count || cfg_.duration_ns;  // unbounded runs are refused by the caller
  }
  bool sending_over(uint64_t now) const {
    if (alive_ == 0) return true;
    const uint64_t t = cfg_.mode == LoopMode::open ? next_intended_ns_ : now;
    return !may_send(t);
  }

  // Open loop: send every request whose intended time has come, round-robin over flows.
  template <class Io>
  void send_open(rt::Ctx<Io>& ctx) {
    for (uint32_t k = 0; k < cfg_.sends_per_tick && next_intended_ns_ <= ctx.now_ns; ++k) {
      if (!may_send(next_intended_ns_)) return;
      const uint32_t f = next_live_flow();
      if (f == kNoFlow) return;
      if (!send(ctx, f, next_intended_ns_)) return;  // retried next tick, intended time kept
      rr_ = f + 1;
      next_intended_ns_ += next_gap_ns();
    }
  }

  // Closed loop: top every flow up to its window.
  template <class Io>
  void send_closed(rt::Ctx<Io>& ctx) {
    // Starts where the last tick's budget ran out, so a budget below the flows' deficit
    // still serves every flow in turn.
    uint32_t budget = cfg_.sends_per_tick;
    const auto nf = uint32_t(flows_.size());
    for (uint32_t i = 0; i < nf && budget; ++i) {
      const uint32_t f = closed_rr_ + i < nf ? closed_rr_ + i : closed_rr_ + i - nf;
      Flow& fl = flows_[f];
      while (fl.open && fl.outstanding < cfg_.window && budget && may_send(ctx.now_ns)) {
        uint32_t sent;
        if (stream_runs()) {
          const uint32_t k = std::min({cfg_.window - fl.outstanding, budget, run_max_});
          sent = send_run(ctx, f, k, ctx.now_ns);
        } else {
          sent = send(ctx, f, ctx.now_ns) ? 1 : 0;
        }
        if (sent == 0) return;
        budget -= sent;
        if (budget == 0) closed_rr_ = f;
      }
    }
  }

  // TCP with fixed-size requests (native, sockperf): a flow's top-up is one reservation
  // (send_run), not one per request; the bytes on the wire are the same.
  bool stream_runs() const {
    return cfg_.transport == dp::Transport::tcp && cfg_.dialect != Dialect::memcached;
  }

  uint32_t next_live_flow() const {
    for (uint32_t i = 0; i < flows_.size(); ++i) {
      const uint32_t f = (rr_ + i) % uint32_t(flows_.size());
      if (flows_[f].open) return f;
    }
    return kNoFlow;
  }

  uint64_t next_gap_ns() {
    if (cfg_.arrival == Arrival::fixed) {
      // Carry the fraction so the long-run rate is exact even when period is not integral.
      gap_carry_ += period_ns_;
      const uint64_t g = uint64_t(gap_carry_);
      gap_carry_ -= double(g);
      return g;
    }
    // Exponential inter-arrival (Poisson process), mean period_ns_.
    const double u = (double(xorshift() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    gap_carry_ += -std::log(u) * period_ns_;
    const uint64_t g = uint64_t(gap_carry_);
    gap_carry_ -= double(g);
    return g;
  }
  uint64_t xorshift() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  // Up to k requests of flow f (TCP, fixed size: stream_runs) in one reservation, as many
  // as may_send allows; returns how many were queued (0: no tx buffer).
  template <class Io>
  uint32_t send_run(rt::Ctx<Io>& ctx, uint32_t f, uint32_t k, uint64_t intended) {
    Flow& fl = flows_[f];
    const uint32_t n = cfg_.msg_size;
    uint8_t* out = ctx.io.stream_reserve(fl.conn, k * n);
    if (!out) {
      res_->send_blocked.add();
      return 0;
    }
    uint32_t done = 0;
    for (; done < k && may_send(intended); ++done) {
      if (fl.next_seq - fl.oldest == cap_) retire(fl, entry(f, fl.oldest), /*lost=*/true);
      const uint64_t seq = fl.next_seq++;
      encode(out + size_t(done) * n, seq);
      note_sent(fl, f, seq, intended);
    }
    ctx.io.stream_commit(fl.conn, done * n);
    return done;
  }

  // Builds and queues one request on flow f; false when no tx buffer was available.
  template <class Io>
  bool send(rt::Ctx<Io>& ctx, uint32_t f, uint64_t intended) {
    Flow& fl = flows_[f];
    if (fl.next_seq - fl.oldest == cap_) retire(fl, entry(f, fl.oldest), /*lost=*/true);
    const uint32_t n = cfg_.dialect == Dialect::memcached ? kv_size(f, fl.next_seq) : cfg_.msg_size;
    uint8_t* out = cfg_.transport == dp::Transport::udp
                       ? ctx.io.dgram_reserve(fl.sock, cfg_.target, n)
                       : ctx.io.stream_reserve(fl.conn, n);
    if (!out) {
      res_->send_blocked.add();
      return false;
    }
    const uint64_t seq = fl.next_seq++;
    if (cfg_.dialect == Dialect::memcached)
      kv_encode(out, f, seq);
    else
      encode(out, seq);
    if (cfg_.transport == dp::Transport::udp)
      ctx.io.dgram_commit(n);
    else
      ctx.io.stream_commit(fl.conn, n);
    note_sent(fl, f, seq, intended);
    return true;
  }

  // The bookkeeping of request seq of flow f, just queued.
  void note_sent(Flow& fl, uint32_t f, uint64_t seq, uint64_t intended) {
    Entry& e = entry(f, seq);
    e = Entry{seq, intended, State::waiting, !in_warmup(intended)};
    ++fl.outstanding;
    ++total_outstanding_;
    if (e.measured) {
      ++measured_sent_;
      res_->sent.add();
      res_->last_tx_ns = intended;
      if (cfg_.dialect == Dialect::memcached) {
        if (kv_is_get(f, seq)) {
          res_->kv_gets.add();
          res_->kv_keys.add(cfg_.kv.multiget);
        } else {
          res_->kv_sets.add();
        }
      }
    } else {
      res_->warmup_sent.add();
    }
  }

  void encode(uint8_t* out, uint64_t seq) const {
    const uint32_t n = cfg_.msg_size;
    if (cfg_.dialect == Dialect::native) {
      proto::native::Header h;
      h.kind = proto::native::Kind::request;
      h.service = cfg_.service_id;
      h.request_id = seq;
      h.payload_len = n - proto::native::kHeaderSize;
      proto::native::encode_header(out, h);
    } else {
      proto::sockperf::encode_header(
          out, {seq, uint16_t(proto::sockperf::kClient | proto::sockperf::kPongRequest), n});
    }
    if (cfg_.check)
      for (uint32_t j = header_size(); j < n; ++j) out[j] = pattern_byte(seq, j);
  }

  // Parses one reply at the start of b for flow f and accounts it. Returns the bytes it
  // used: 0 = need more (stream) / truncated (datagram), kBadFrame = not this protocol.
  uint32_t on_bytes(uint64_t now, uint32_t f, std::span<const uint8_t> b) {
    uint64_t seq;
    uint32_t len;
    bool ok;
    if (cfg_.dialect == Dialect::native) {
      const auto d = proto::native::decode(b);
      if (d.status == proto::native::Status::need_more) return 0;
      if (d.status != proto::native::Status::ok) return kBadFrame;
      seq = d.header.request_id;
      len = d.frame_len;
      ok = d.header.kind == proto::native::Kind::response;
    } else {
      const auto p = proto::sockperf::parse(b);
      if (p.status == proto::sockperf::Status::need_more) return 0;
      if (p.status != proto::sockperf::Status::ok) return kBadFrame;
      seq = p.header.seq;
      len = p.frame_len;
      ok = (p.header.flags & (proto::sockperf::kClient | proto::sockperf::kPongRequest)) ==
           proto::sockperf::kPongRequest;
    }
    if (ok && cfg_.check) ok = len == cfg_.msg_size && payload_ok(seq, b.first(len));
    match(now, f, seq, ok);
    return len;
  }
  bool payload_ok(uint64_t seq, std::span<const uint8_t> msg) const {
    for (uint32_t j = header_size(); j < msg.size(); ++j)
      if (msg[j] != pattern_byte(seq, j)) return false;
    return true;
  }

  // ---- memcached ------------------------------------------------------------------------
  bool kv_udp() const {
    return cfg_.dialect == Dialect::memcached && cfg_.transport == dp::Transport::udp;
  }
  void kv_setup() {
    KvConfig& k = cfg_.kv;
    k.multiget = std::clamp<uint32_t>(k.multiget, 1, kv::kMaxMultiget);
    k.value_max = std::min(std::max(k.value_max, k.value_min), kv::kMaxValue);
    k.value_min = std::min(k.value_min, k.value_max);
    if (!k.keys) k.keys = std::make_shared<const kv::KeyDist>(1, 0.0);
    k.key_size = std::clamp<uint32_t>(k.key_size, kv::min_key_size(k.keys->size()),
                                      uint32_t(cw::kv::proto::kMaxKeyLen));
    value_.assign(k.value_max, 'v');
    for (uint32_t i = 0; i < k.value_max; ++i) value_[i] = char('a' + i % 26);
    keybuf_.resize(k.multiget);
    op_seed_ = kv::mix64(cfg_.seed ^ 0x6b76u);
    get_threshold_ = uint64_t(std::clamp(k.get_ratio, 0.0, 1.0) * 9007199254740992.0);
    if (cfg_.transport != dp::Transport::udp) return;
    // A get's reply: per key a value line (< 320 B), the value and CRLF; then END or MN. At
    // least kUdpMinReply, for values stored by runs with larger ones.
    const uint32_t reply = std::max(k.multiget * (k.value_max + 320) + 64, kUdpMinReply);
    udp_max_value_ = reply;
    reasm_.reserve(cfg_.flows);
    for (uint32_t f = 0; f < cfg_.flows; ++f)
      reasm_.emplace_back(k.udp_slots, reply + uint32_t(cw::kv::proto::kUdpMaxPayload));
  }
  // Whether request seq of flow f is a get (else a set): a hash, so replies need no table.
  bool kv_is_get(uint32_t f, uint64_t seq) const {
    if (cfg_.kv.preload) return false;
    return kv::mix64(op_seed_ ^ (uint64_t(f) << 40) ^ seq) >> 11 < get_threshold_;
  }
  uint32_t kv_value_len(uint32_t f, uint64_t seq) const {
    const KvConfig& k = cfg_.kv;
    if (k.value_min == k.value_max) return k.value_min;
    const uint64_t h = kv::mix64(~op_seed_ ^ (uint64_t(f) << 40) ^ seq);
    return k.value_min + uint32_t(h % (k.value_max - k.value_min + 1));
  }
  uint32_t kv_size(uint32_t f, uint64_t seq) const {
    const KvConfig& k = cfg_.kv;
    const uint32_t hdr = kv_udp() ? uint32_t(cw::kv::proto::kUdpHeaderSize) : 0;
    if (kv_is_get(f, seq)) return hdr + kv::get_size(k.proto, k.key_size, k.multiget);
    return hdr + kv::set_size(k.proto, k.key_size, kv_value_len(f, seq));
  }
  uint64_t kv_key() { return cfg_.kv.keys->sample(xorshift(), xorshift()); }
  void kv_encode(uint8_t* out, uint32_t f, uint64_t seq) {
    const KvConfig& k = cfg_.kv;
    if (kv_udp()) {
      cw::kv::proto::encode_udp_header(out, {uint16_t(seq), 0, 1, 0});
      out += cw::kv::proto::kUdpHeaderSize;
    }
    char* o = reinterpret_cast<char*>(out);
    if (kv_is_get(f, seq)) {
      for (auto& key : keybuf_) key = kv_key();
      kv::encode_get(k.proto, o, k.key_size, keybuf_);
      return;
    }
    const uint64_t key = k.preload ? k.preload_first + preload_next_++ : kv_key();
    kv::encode_set(k.proto, o, k.key_size, key, {value_.data(), kv_value_len(f, seq)});
  }

  // The reply to request seq of flow f ended (st: what it held).
  void kv_complete(uint64_t now, uint32_t f, uint64_t seq, const kv::ReplyState& st) {
    const Entry& e = entry(f, seq);
    if (e.seq == seq && e.state == State::waiting && e.measured) {
      if (st.error) {
        res_->kv_error_replies.add();
      } else if (kv_is_get(f, seq)) {
        res_->kv_hits.add(st.hits);
        res_->kv_misses.add(cfg_.kv.multiget - st.hits);
      }
    }
    match(now, f, seq, !st.error);
  }
  // A reply to seq that cannot be parsed: the request ends as an error.
  void kv_bad(uint64_t now, uint32_t f, uint64_t seq) {
    res_->kv_bad_replies.add();
    match(now, f, seq, false);
  }

  // TCP: replies come in request order; each element moves the reply of rx_seq on. A value
  // that fits the runtime's frame limit is parsed whole; a longer one (stored by another
  // run) is passed through as it arrives. A reply that cannot be parsed (or answers
  // nothing) closes the connection: the stream is lost.
  rt::StreamVerdict kv_stream(uint64_t now, uint32_t f, std::span<const uint8_t> b) {
    Flow& fl = flows_[f];
    const KvConfig& k = cfg_.kv;
    uint32_t used = 0;
    while (used < b.size()) {
      const std::span<const uint8_t> rest = b.subspan(used);
      kv::Elem kind = kv::Elem::bad;
      if (fl.skip) {
        const uint32_t n = uint32_t(std::min<size_t>(fl.skip, rest.size()));
        used += n;
        fl.skip -= n;
        continue;
      }
      if (fl.value_tail) {
        if (rest.size() < 2) return {used, false, false, 2};
        fl.value_tail = false;
        if (rest[0] == '\r' && rest[1] == '\n') kind = kv::Elem::value;
        used += 2;
      } else {
        const kv::Element e = kv::parse_element(rest, cw::kv::proto::kMaxDataLen);
        if (e.kind == kv::Elem::need_more && e.need > rt::kDefaultMaxFrame) {
          used += e.line;
          fl.skip = e.need - e.line - 2;
          fl.value_tail = true;
          continue;
        }
        if (e.kind == kv::Elem::need_more) return {used, false, false, e.need};
        kind = e.kind;
        used += e.consumed;
      }
      const kv::Step step =
          kind == kv::Elem::bad || fl.rx_seq == fl.next_seq
              ? kv::Step::bad
              : kv::follow(k.proto, kv_is_get(f, fl.rx_seq), k.multiget, fl.rx, kind);
      if (step == kv::Step::bad) {
        res_->kv_bad_replies.add();
        res_->errors.add();
        return {used, true};
      }
      if (step == kv::Step::done) {
        kv_complete(now, f, fl.rx_seq++, fl.rx);
        fl.rx = {};
      }
    }
    return {used, false};
  }

  // UDP: the request id names the request (the newest seq with those low 16 bits); its
  // datagrams are reassembled into messages, and whole messages parsed as they complete.
  void kv_datagram(uint64_t now, uint32_t f, std::span<const uint8_t> d) {
    const kv::UdpReply r = kv::parse_udp_reply(d);
    if (!r.ok) {
      res_->kv_bad_replies.add();
      res_->errors.add();
      return;
    }
    Flow& fl = flows_[f];
    uint64_t seq = (fl.next_seq & ~uint64_t{0xffff}) | r.request_id;
    if (seq >= fl.next_seq) seq = seq >= 0x10000 ? seq - 0x10000 : fl.next_seq;
    if (seq >= fl.next_seq || seq < fl.oldest || entry(f, seq).seq != seq ||
        entry(f, seq).state != State::waiting) {
      res_->late.add();  // a datagram for a request already counted lost (or unknown)
      return;
    }
    kv::UdpReassembly& ra = reasm_[f];
    bool evicted = false;
    kv::UdpReassembly::Slot& s = ra.slot_for(seq, evicted);
    if (evicted) res_->kv_udp_evicted.add();
    const auto added = ra.add(s, r);
    if (added == kv::UdpReassembly::Add::partial) return;
    uint32_t used = 0;
    kv::Step step = kv::Step::more;
    while (added == kv::UdpReassembly::Add::message && step == kv::Step::more) {
      const kv::Element e = kv::parse_element({s.buf.data() + used, s.have - used}, udp_max_value_);
      if (e.kind == kv::Elem::need_more) break;
      step = e.kind == kv::Elem::bad
                 ? kv::Step::bad
                 : kv::follow(cfg_.kv.proto, kv_is_get(f, seq), cfg_.kv.multiget, s.st, e.kind);
      used += e.consumed;
    }
    if (added == kv::UdpReassembly::Add::bad || step == kv::Step::bad ||
        (step == kv::Step::done && used != s.have)) {
      kv_bad(now, f, seq);  // the request ends as an error; its reply is dropped
      ra.release(s);
    } else if (step == kv::Step::done) {
      kv_complete(now, f, seq, s.st);
      ra.release(s);
    } else {
      ra.consume(s, used);
    }
  }

  // Accounts the reply for seq on flow f (ok = well-formed and, with --check, intact).
  void match(uint64_t now, uint32_t f, uint64_t seq, bool ok) {
    Flow& fl = flows_[f];
    Entry& e = entry(f, seq);
    if (seq < fl.oldest || seq >= fl.next_seq || e.seq != seq || e.state != State::waiting) {
      res_->late.add();
      return;
    }
    if (e.measured) {
      if (ok) {
        res_->received.add();
        res_->hist.record(now >= e.intended_ns ? now - e.intended_ns : 0);
        res_->last_rx_ns = now;
      } else {
        res_->errors.add();
      }
    }
    retire(fl, e, /*lost=*/false);
  }

  // Ends entry e of flow fl (answered, or lost), then frees the answered prefix of the ring.
  void retire(Flow& fl, Entry& e, bool lost) {
    if (e.state == State::waiting) {
      if (lost && e.measured) res_->lost.add();
      e.state = State::done;
      --fl.outstanding;
      --total_outstanding_;
    }
    const uint32_t f = uint32_t(&fl - flows_.data());
    while (fl.oldest != fl.next_seq && entry(f, fl.oldest).state != State::waiting) {
      entry(f, fl.oldest).state = State::free;
      ++fl.oldest;
    }
  }

  // Counts as lost every request older than the timeout (intended times grow per flow, so
  // only the oldest ones can have expired).
  void expire(uint64_t now) {
    if (total_outstanding_ == 0) return;
    for (uint32_t f = 0; f < flows_.size(); ++f) {
      Flow& fl = flows_[f];
      while (fl.oldest != fl.next_seq) {
        Entry& e = entry(f, fl.oldest);
        if (now - std::min(now, e.intended_ns) < cfg_.timeout_ns) break;
        retire(fl, e, /*lost=*/true);
      }
    }
  }

  uint64_t next_wake(uint64_t now) const {
    uint64_t t = now + std::max<uint64_t>(cfg_.scan_ns, 1000);
    if (phase() == Phase::connecting) t = std::min(t, connect_deadline_);
    if (phase() == Phase::running && cfg_.mode == LoopMode::open)
      t = std::min(t, std::max(now, next_intended_ns_));
    return t;
  }

  ClientConfig cfg_;
  ClientResults* res_;
  uint32_t cap_ = 0;
  uint32_t run_max_ = 1;  // requests per send_run: kRunBytes of them, at least one
  std::vector<Flow> flows_;
  std::vector<Entry> entries_;         // flows * cap_
  rt::ConnSlots<ConnFlow> conn_flow_;  // tcp: connection -> flow
  std::vector<uint32_t> sock_flow_;    // udp: SocketId -> flow (kNoFlow: not ours)
  uint32_t connects_issued_ = 0;
  uint64_t connect_deadline_ = 0;
  uint32_t connected_ = 0, failed_ = 0, alive_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t next_intended_ns_ = 0;
  double period_ns_ = 0;
  double gap_carry_ = 0;
  uint64_t rng_ = 1;
  uint32_t rr_ = 0;
  uint32_t closed_rr_ = 0;  // closed loop: the flow the next tick's top-up starts with
  uint64_t measured_sent_ = 0;
  uint32_t total_outstanding_ = 0;
  uint64_t next_scan_ns_ = 0;
  // memcached (setup-sized): value bytes, keys of one get, per-flow UDP reassembly.
  std::vector<char> value_;
  std::vector<uint64_t> keybuf_;
  std::vector<kv::UdpReassembly> reasm_;
  uint64_t op_seed_ = 0, get_threshold_ = 0, preload_next_ = 0;
  uint32_t udp_max_value_ = 0;  // longest value a UDP reply may carry (its slot's size)
};

}  // namespace cw::bench
