// The service API: what a handler (echo, key-value, pub/sub, load-generator client, peer)
// implements and what it gets from the runtime. Services are plain classes, one instance
// per worker (shared-nothing), held in a std::variant the worker dispatches on once per
// item; nothing is virtual.
//
// A service S may implement any of these (all optional, detected at compile time):
//
//   template <class Io> void on_datagram(Ctx<Io>&, const dp::RxItem&);
//       One UDP datagram. Reply with ctx.io.dgram_reserve/commit (to item.peer on item.sock).
//   template <class Io> void on_datagrams(Ctx<Io>&, std::span<const dp::RxItem>);
//       A run of consecutive datagrams of one burst that are all this service's, in order;
//       when present, the runtime calls it instead of on_datagram for every run (a run may
//       be a single datagram). What it saves per datagram: the dispatch, the call, and
//       counters kept in locals and added once per run (SockperfEcho).
//   template <class Io> StreamVerdict on_stream(Ctx<Io>&, dp::ConnId, std::span<const uint8_t>);
//       Bytes of a TCP connection, starting at a frame boundary. Consume whole frames only and
//       say how many bytes were consumed; the runtime keeps the unconsumed tail and calls
//       again, with the tail first, when more bytes arrive. Set close to drop the connection
//       (after queued replies are sent). Flow control (StreamVerdict): `need` says how many
//       bytes the next frame needs (the runtime grows the tail straight to it and does not
//       call again before it holds them); `pause` stops reading the connection (the rest of
//       what arrived is kept, unparsed) until the service calls ctx.io.resume(conn), e.g.
//       when the answer from another core came in; the kept bytes are parsed then.
//   template <class Io> void on_writable(Ctx<Io>&, dp::ConnId);
//       The connection's queued output fell to the low-water mark after the service asked
//       with ctx.io.notify_writable(conn) (a slow reader caught up: resume the fan-out).
//   template <class Io> void on_open(Ctx<Io>&, const dp::RxItem&);    // stream_open
//   template <class Io> void on_closed(Ctx<Io>&, const dp::RxItem&);  // stream_closed
//   template <class Io> void on_tick(Ctx<Io>&);
//       Once per loop iteration, after the burst (clients send due requests here).
//   template <class Io> void on_mail(Ctx<Io>&, const Mail&);
//       A mailbox message addressed to this service on this worker.
//   template <class Io> void on_timer(Ctx<Io>&, TimerId, uint64_t user);
//       A timer this service set (ctx.timer_at/timer_after) is due; `user` is what it gave.
//       Rearming the id here (ctx.timer_rearm) makes it periodic.
//   template <class Io> void on_mail_drained(Ctx<Io>&);
//       Mail this worker had parked for full mailboxes has all been delivered (mailbox.hh):
//       resume what backpressured() stopped.
//   template <class Io> void on_stop(Ctx<Io>&);
//       The worker's loop has stopped (after a drain, or at stop): save state. Runs on the
//       worker's thread, like the factory; may do I/O and allocate.
//   uint32_t max_frame() const;
//       Largest stream frame the protocol accepts; a partial frame beyond it closes the
//       connection (counted as stream_oversize). Default kDefaultMaxFrame.
//   static constexpr rt::CounterDecl kCounters[];
//       Counters the service declares by name (counters.hh); it bumps them through
//       ctx.counters, and they reach the stats segment, corewirectl and /metrics.
//
// Handlers run on their worker only and must not block, allocate per message or throw.
#pragma once

#include <cstdint>
#include <span>

#include "app/runtime/counters.hh"
#include "app/runtime/mail.hh"
#include "app/runtime/router.hh"
#include "app/runtime/stats.hh"
#include "app/runtime/timer_wheel.hh"
#include "dataplane/io.hh"

namespace cw::rt {

inline constexpr uint32_t kDefaultMaxFrame = 64 * 1024 + 64;

struct StreamVerdict {
  uint32_t consumed = 0;  // bytes of whole frames handled
  bool close = false;     // close the connection after queued output
  bool pause = false;     // pause the connection until ctx.io.resume(conn)
  uint32_t need = 0;      // call again once this many unconsumed bytes are buffered (0: any)
};

// What became of a post. sent and deferred both mean the mail will arrive, in order after
// earlier mail to the same worker; deferred means it is parked on this worker because that
// mailbox is full. failed: not taken (mailbox and overflow full), counted in mail_dropped.
// local: post_local_or_remote ran it here instead.
enum class Post : uint8_t { sent, deferred, failed, local };

class Mailboxes;

// What a handler sees of its worker. Owner-worker only.
template <class Io>
struct Ctx {
  Io& io;
  WorkerStats& stats;  // this worker's runtime counters
  ServiceStats* svc;   // counters of the service being called (set per dispatch)
  Mailboxes& mail;
  unsigned worker;          // this worker's index
  unsigned workers;         // how many workers there are
  uint16_t service;         // index of the service being called
  uint64_t now_ns;          // monotonic, refreshed once per burst
  uint64_t wake_by_ns = 0;  // a handler lowers this to be called (on_tick) by then

  TimerWheel* timers = nullptr;  // the worker's (set by it)

  // The called service's declared counters, by index in its kCounters (counters.hh).
  Counter* counters = nullptr;

  // Ask to be ticked no later than t (interrupt mode would otherwise block longer). Kept
  // until the loop has passed t, whichever hook asked.
  void wake_at(uint64_t t) {
    if (wake_by_ns == 0 || t < wake_by_ns) wake_by_ns = t;
  }

  // Timers of the service being called: on_timer(ctx, id, user) runs once the monotonic
  // time (now_ns's clock) reaches t_ns, never earlier, about a tick (262 us) later at most
  // when the loop is idle. kNoTimer when the worker's pool (LoopConfig::max_timers) is
  // full, counted in stats.timers_full. O(1), no allocation.
  TimerId timer_at(uint64_t t_ns, uint64_t user) {
    const TimerId id = timers->schedule(t_ns, service, user);
    if (id == kNoTimer) stats.timers_full.add();
    return id;
  }
  TimerId timer_after(uint64_t ns, uint64_t user) { return timer_at(now_ns + ns, user); }
  // Both return false (and do nothing) for a timer that already fired or was cancelled; a
  // timer may be rearmed or cancelled from its own on_timer.
  bool timer_rearm(TimerId id, uint64_t t_ns) { return timers->rearm(id, t_ns); }
  bool timer_cancel(TimerId id) { return timers->cancel(id); }
  // Mail (mailbox.hh). Send to service to_service on to_worker (this worker included).
  Post post(unsigned to_worker, uint16_t to_service, Mail m);
  // To the same service on to_worker.
  Post post(unsigned to_worker, Mail m) { return post(to_worker, service, m); }
  // To the same service on every worker (this one only if include_self); returns how many
  // posts failed (those receivers got nothing).
  unsigned broadcast(Mail m, bool include_self);
  // Whether mail to to_worker is parked because its mailbox is full: stop taking work that
  // mails it until on_mail_drained (or until this turns false).
  bool backpressured(unsigned to_worker) const;

  // The worker that owns a key (router.hh), and the local fast path: run local() here when
  // this worker owns key_hash, otherwise post m to the owner's instance of this service.
  unsigned owner_of(uint64_t key_hash) const { return rt::owner_of(key_hash, workers); }
  template <class Local>
  Post post_local_or_remote(uint64_t key_hash, Mail m, Local&& local) {
    const unsigned owner = owner_of(key_hash);
    if (owner == worker) {
      local();
      return Post::local;
    }
    return post(owner, m);
  }
};

}  // namespace cw::rt
