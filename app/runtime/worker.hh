// The per-core worker loop, instantiated once per backend type (Io) and service set
// (Services, a std::variant of service classes). Everything it touches is owned by its
// thread; other threads reach it only through the mailboxes and read its counters.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "app/runtime/clock.hh"
#include "app/runtime/control_contract.hh"
#include "app/runtime/mailbox.hh"
#include "app/runtime/service.hh"
#include "app/runtime/stats.hh"
#include "app/runtime/stream_tails.hh"
#include "app/runtime/timer_wheel.hh"
#include "dataplane/io.hh"

namespace cw::rt {

struct LoopConfig {
  uint32_t burst = 64;                  // items per poll
  bool busy_poll = false;               // never block in poll
  uint64_t max_block_ns = 100'000'000;  // interrupt mode: longest block (checks stop flag)
  uint32_t tail_small = 4096;           // stream tail buffer sizes (bytes)
  uint32_t tail_buffers = 4096;         // bound on tail buffers per worker
  uint64_t tail_bytes = 64ull << 20;    // bound on their bytes per worker
  uint32_t max_timers = 16384;          // service timers pending at once, per worker (32 B each)
  uint32_t timers_per_loop = 1024;      // timers fired per iteration at most (rest: next one)
};

// Bytes a paused connection's tail may hold beyond the largest frame: what arrives after
// the pause verdict, before the backend stops reading (one read or a few completions).
inline constexpr uint32_t kPausedSlackBytes = 256 * 1024;

inline constexpr uint16_t kNoService = 0xFFFF;
// Interrupt mode with mail parked for a full mailbox: longest block before retrying it.
inline constexpr uint64_t kParkedRetryNs = 200'000;

// Whether some alternative of the service variant V has on_tick(C&).
template <class S, class C>
inline constexpr bool kHasTick = requires(S& s, C& c) {
  s.on_tick(c);
};
template <class V, class C>
struct AnyTicks;
template <class... S, class C>
struct AnyTicks<std::variant<S...>, C> {
  static constexpr bool value = (kHasTick<S, C> || ...);
};

template <dp::WorkerIo Io, class Services>
class Worker {
 public:
  // services: this worker's own instances; sock_service[s] = index into services of the
  // service that owns SocketId s (kNoService if none). named: where the services' declared
  // counters live (sized here, at setup; the runtime passes its own to publish them).
  Worker(Io& io, std::vector<Services> services, std::vector<uint16_t> sock_service,
         const LoopConfig& cfg, uint32_t max_conns, WorkerStats& stats,
         std::span<ServiceStats> svc_stats, Mailboxes& mail, ServiceCounterBlocks* named = nullptr)
      : io_(io),
        services_(std::move(services)),
        sock_service_(std::move(sock_service)),
        cfg_(cfg),
        stats_(stats),
        svc_stats_(svc_stats),
        named_(named ? *named : own_named_),
        mail_(mail),
        tails_(max_conns, cfg.tail_small, max_frame_of_all() + kPausedSlackBytes, cfg.tail_buffers,
               cfg.tail_bytes),
        items_(cfg.burst),
        timed_(svc_stats.size(), 0),
        ctx_{io, stats, nullptr, mail, io.worker_id(), mail.workers(), kNoService, now_ns()},
        timers_(cfg.max_timers, ctx_.now_ns) {
    ctx_.timers = &timers_;
    for (size_t s = 0; s < svc_stats.size(); ++s) timed_[s] = svc_stats[s].requests.get();
    named_.size_for(services_);
  }
  Worker(const Worker&) = delete;  // ctx_ points at timers_
  Worker& operator=(const Worker&) = delete;

  // Runs until stop is set. Owner thread only.
  void run(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) run_once();
  }

  // One iteration of the loop; exposed for tests driving a fake backend.
  void run_once() {
    // 1. Receive a burst (block only in interrupt mode, and only when no mail is waiting).
    const uint32_t n = io_.poll(items_.data(), uint32_t(items_.size()), block_ns());
    // The clock is read per burst; an empty poll needs it only if a service ticks or waits
    // for a time (else the first mail reads it).
    clock_read_ = n || kTicks || ctx_.wake_by_ns || timers_.pending();
    if (clock_read_) ctx_.now_ns = now_ns();
    stats_.loops.add();
    // 2. Decode and dispatch each item to the service owning its socket.
    if (n) {
      stats_.bursts.add();
      stats_.items.add(n);
      dispatch_burst(n);
    }
    // 3. Deliver mail, fire due timers (one compare when none is), then tick services
    //    (clients originate requests here). A wake_at is dropped only once it has passed,
    //    so one asked for by a burst or mail hook survives the ticks.
    drain_mail();
    if (ctx_.now_ns >= timers_.next_ns()) drain_timers();
    if (ctx_.wake_by_ns && ctx_.now_ns >= ctx_.wake_by_ns) ctx_.wake_by_ns = 0;
    if constexpr (kTicks) {
      for (uint16_t s = 0; s < services_.size(); ++s) tick(s);
    }
    // 4. Transmit everything the handlers queued, in one batch.
    io_.flush();
    if (n) {
      const uint64_t service_ns = now_ns() - ctx_.now_ns;
      stats_.busy_ns.add(service_ns);
      record_latency(service_ns);
    }
  }

  // Once the loop has stopped (the runtime calls it on the worker's thread after run()
  // returned): each service's on_stop, e.g. to save its state. Setup-like: may do I/O.
  void stop_services() {
    ctx_.now_ns = now_ns();
    for (uint16_t s = 0; s < services_.size(); ++s)
      std::visit(
          [&](auto& svc) {
            if constexpr (requires { svc.on_stop(ctx_); }) {
              enter(s);
              svc.on_stop(ctx_);
            }
          },
          services_[s]);
  }

  Services& service(uint16_t i) { return services_[i]; }
  const StreamTails& tails() const { return tails_; }
  const ServiceCounterBlocks& counters() const { return named_; }

 private:
  // Whether any service type has on_tick (decided at compile time).
  static constexpr bool kTicks = AnyTicks<Services, Ctx<Io>>::value;

  uint32_t max_frame_of_all() const {
    uint32_t m = 0;
    for (auto& s : services_)
      m = std::max(m, std::visit([](auto& svc) { return frame_limit(svc); }, s));
    return m;
  }
  template <class S>
  static uint32_t frame_limit(const S& s) {
    if constexpr (requires { s.max_frame(); })
      return s.max_frame();
    else
      return kDefaultMaxFrame;
  }

  // Interrupt mode: until the next timer or requested tick, at most max_block_ns.
  int64_t block_ns() {
    if (cfg_.busy_poll) return 0;
    uint64_t t = cfg_.max_block_ns;
    uint64_t due = timers_.next_ns();
    if (ctx_.wake_by_ns) due = std::min(due, ctx_.wake_by_ns);
    if (due != TimerWheel::kNever) {
      const uint64_t now = now_ns();
      t = due <= now ? 0 : std::min<uint64_t>(t, due - now);
    }
    if (t == 0) return 0;
    // Parked mail is retried each loop; the receiver does not wake us when it drains.
    if (mail_.parked(ctx_.worker)) t = std::min<uint64_t>(t, kParkedRetryNs);
    mail_.set_sleeping(ctx_.worker, true);
    if (mail_.has_mail(ctx_.worker)) t = 0;
    sleeping_ = true;
    return int64_t(t);
  }

  void enter(uint16_t s) {
    ctx_.service = s;
    ctx_.svc = &svc_stats_[s];
    ctx_.counters = named_.block(s);
  }

  // Each item to the service owning its socket. The socket map lives in locals: handlers
  // write packet bytes, which the compiler must assume may alias any member it would
  // otherwise reload per item. ctx_ is re-entered only when the service changes.
  void dispatch_burst(uint32_t n) {
    if (sleeping_) {
      mail_.set_sleeping(ctx_.worker, false);
      sleeping_ = false;
    }
    const dp::RxItem* items = items_.data();
    const uint16_t* map = sock_service_.data();
    const size_t nmap = sock_service_.size();
    auto service_of = [&](const dp::RxItem& it) {
      return it.sock < nmap ? map[it.sock] : kNoService;
    };
    uint16_t cur = kNoService;
    for (uint32_t i = 0; i < n;) {
      const dp::RxItem& it = items[i];
      const uint16_t s = service_of(it);
      if (s == kNoService) {
        stats_.unknown_socket.add();
        if (it.kind == dp::RxKind::stream_open) io_.close(it.conn);
        ++i;
        continue;
      }
      if (s != cur) {
        enter(s);
        cur = s;
      }
      i = std::visit(
          [&](auto& svc) {
            // A service that takes datagrams in runs gets every consecutive datagram of
            // this burst that is its own in one call.
            if constexpr (requires { svc.on_datagrams(ctx_, std::span<const dp::RxItem>{}); }) {
              if (it.kind == dp::RxKind::datagram) {
                uint32_t j = i + 1;
                while (j < n && items[j].kind == dp::RxKind::datagram && service_of(items[j]) == s)
                  ++j;
                svc.on_datagrams(ctx_, std::span<const dp::RxItem>(items + i, j - i));
                return j;
              }
            }
            handle(svc, it);
            return i + 1;
          },
          services_[s]);
    }
  }

  template <class S>
  void handle(S& svc, const dp::RxItem& it) {
    switch (it.kind) {
      case dp::RxKind::datagram:
        if constexpr (requires { svc.on_datagram(ctx_, it); })
          svc.on_datagram(ctx_, it);
        else
          stats_.unknown_socket.add();
        break;
      case dp::RxKind::stream_open:
        if constexpr (requires { svc.on_open(ctx_, it); }) svc.on_open(ctx_, it);
        break;
      case dp::RxKind::stream_data:
        if constexpr (requires { svc.on_stream(ctx_, it.conn, std::span<const uint8_t>{}); })
          stream(svc, it.conn, it.data, it.len);
        else
          io_.close(it.conn);
        break;
      case dp::RxKind::stream_closed:
        tails_.release(tails_.at(dp::conn_slot(it.conn)));
        if constexpr (requires { svc.on_closed(ctx_, it); }) svc.on_closed(ctx_, it);
        break;
      case dp::RxKind::stream_resumed:  // parse what was kept while paused
        if constexpr (requires { svc.on_stream(ctx_, it.conn, std::span<const uint8_t>{}); }) {
          StreamTails::Tail& t = tails_.at(dp::conn_slot(it.conn));
          t.paused = false;
          parse_tail(svc, it.conn, t);
        }
        break;
      case dp::RxKind::stream_writable:
        if constexpr (requires { svc.on_writable(ctx_, it.conn); }) svc.on_writable(ctx_, it.conn);
        break;
    }
  }

  // Feed stream bytes to the service, whole frames at a time. Bytes are parsed in place
  // when no tail is pending; otherwise they are appended to the tail, which grows a step
  // when full (or straight to the service's `need`), and the service sees the tail each
  // time it filled up or the segment ran out -- not before it holds `need` bytes, and not
  // while the connection is paused.
  template <class S>
  void stream(S& svc, dp::ConnId c, const uint8_t* data, uint32_t len) {
    StreamTails::Tail& t = tails_.at(dp::conn_slot(c));
    const uint32_t limit = frame_limit(svc);
    if (t.len == 0 && !t.paused && len >= t.need) {
      const StreamVerdict v = svc.on_stream(ctx_, c, {data, len});
      if (v.close) return close_conn(c, t);
      const uint32_t used = std::min(v.consumed, len);
      if (!verdict(c, t, v, limit)) return;
      data += used;
      len -= used;
      if (len == 0) return;
      if (!t.paused && len > limit) return oversize(c, t);
      if (!tails_.reserve(t, std::max(len, t.need))) return no_buffer(c, t);
      std::memcpy(t.buf, data, len);
      t.len = len;
      return;
    }
    while (len) {
      if (t.len == t.cap) {  // full: twice the size (up to the limit), or the need at once
        const uint32_t grow = t.cap ? std::max(t.cap + 1, std::min(t.cap * 2, limit)) : 1;
        const uint32_t want = std::max(t.need, grow);
        if (!t.paused && want > limit) return oversize(c, t);
        if (!tails_.reserve(t, want)) return no_buffer(c, t);
      }
      const uint32_t take = std::min(len, t.cap - t.len);
      std::memcpy(t.buf + t.len, data, take);
      t.len += take;
      data += take;
      len -= take;
      if (!parse_tail(svc, c, t)) return;
    }
  }

  // The service sees the tail, unless paused or short of its `need`. False: closed.
  template <class S>
  bool parse_tail(S& svc, dp::ConnId c, StreamTails::Tail& t) {
    if (t.paused || t.len == 0 || t.len < t.need) return true;
    const uint32_t limit = frame_limit(svc);
    const StreamVerdict v = svc.on_stream(ctx_, c, {t.buf, t.len});
    if (v.close) {
      close_conn(c, t);
      return false;
    }
    const uint32_t used = std::min(v.consumed, t.len);
    tails_.consume(t, used);
    if (!verdict(c, t, v, limit)) return false;
    if (used == 0 && !t.paused && t.len >= limit) {
      oversize(c, t);
      return false;
    }
    return true;
  }

  // Applies a verdict's flow control (need, pause) to the connection. False: closed.
  bool verdict(dp::ConnId c, StreamTails::Tail& t, const StreamVerdict& v, uint32_t limit) {
    if (v.need > limit) {
      oversize(c, t);
      return false;
    }
    t.need = v.need;
    if (v.pause && !t.paused) {
      t.paused = true;
      io_.pause(c);
    }
    return true;
  }

  void close_conn(dp::ConnId c, StreamTails::Tail& t) {
    tails_.release(t);
    io_.close(c);
  }
  void oversize(dp::ConnId c, StreamTails::Tail& t) {
    stats_.stream_oversize.add();
    close_conn(c, t);
  }
  void no_buffer(dp::ConnId c, StreamTails::Tail& t) {
    stats_.stream_no_buffer.add();
    close_conn(c, t);
  }

  // Every request a service counted since the last call gets this burst's service time:
  // from poll() returning the burst to flush() having submitted its replies (a reply is
  // not sent before the flush). One clock read per burst, shared with busy_ns.
  void record_latency(uint64_t ns) {
    for (size_t s = 0; s < svc_stats_.size(); ++s) {
      const uint64_t r = svc_stats_[s].requests.get();
      if (r == timed_[s]) continue;
      svc_stats_[s].latency.record(ns, r - timed_[s]);
      timed_[s] = r;
    }
  }

  void worker_mail(const Mail& m) {
    if (m.kind == kMailStopAccepting && !stopped_accepting_) {
      stopped_accepting_ = true;
      io_.stop_accepting();
    }
  }

  void drain_mail() {
    if (sleeping_) {
      mail_.set_sleeping(ctx_.worker, false);
      sleeping_ = false;
    }
    // Mail parked for full mailboxes goes first, in order (mailbox.hh).
    if (mail_.flush_parked(ctx_.worker, stats_)) mail_drained();
    Mail m;
    for (unsigned f = 0; f <= mail_.workers(); ++f) {
      auto& ring = mail_.ring(f, ctx_.worker);
      // Bounded per loop so a flood of mail cannot starve the network.
      for (uint32_t k = 0; k < cfg_.burst && ring.pop(m); ++k) {
        stats_.mail_in.add();
        if (!clock_read_) {  // a handler may set a timer relative to now_ns
          ctx_.now_ns = now_ns();
          clock_read_ = true;
        }
        if (m.service == kWorkerMail) {
          worker_mail(m);
          continue;
        }
        if (m.service >= services_.size()) continue;
        enter(m.service);
        std::visit(
            [&](auto& svc) {
              if constexpr (requires { svc.on_mail(ctx_, m); }) svc.on_mail(ctx_, m);
            },
            services_[m.service]);
      }
    }
  }

  // Each due timer to the service that set it.
  void drain_timers() {
    const uint32_t fired = timers_.advance(
        ctx_.now_ns, cfg_.timers_per_loop, [&](TimerId id, uint16_t s, uint64_t user) {
          if (s >= services_.size()) return;
          enter(s);
          std::visit(
              [&](auto& svc) {
                if constexpr (requires { svc.on_timer(ctx_, id, user); })
                  svc.on_timer(ctx_, id, user);
              },
              services_[s]);
        });
    stats_.timers_fired.add(fired);
  }

  void mail_drained() {
    for (uint16_t s = 0; s < services_.size(); ++s)
      std::visit(
          [&](auto& svc) {
            if constexpr (requires { svc.on_mail_drained(ctx_); }) {
              enter(s);
              svc.on_mail_drained(ctx_);
            }
          },
          services_[s]);
  }

  void tick(uint16_t s) {
    std::visit(
        [&](auto& svc) {
          if constexpr (requires { svc.on_tick(ctx_); }) {
            enter(s);
            svc.on_tick(ctx_);
          }
        },
        services_[s]);
  }

  Io& io_;
  std::vector<Services> services_;
  std::vector<uint16_t> sock_service_;
  LoopConfig cfg_;
  WorkerStats& stats_;
  std::span<ServiceStats> svc_stats_;
  ServiceCounterBlocks own_named_;  // used when the constructor was given none
  ServiceCounterBlocks& named_;
  Mailboxes& mail_;
  StreamTails tails_;
  std::vector<dp::RxItem> items_;
  std::vector<uint64_t> timed_;  // per service: requests already given a latency sample
  Ctx<Io> ctx_;
  TimerWheel timers_;
  bool clock_read_ = false;  // ctx_.now_ns was read this iteration
  bool sleeping_ = false;
  bool stopped_accepting_ = false;
};

}  // namespace cw::rt
