// Per-worker TCP connection slots, shared by the kernel backends. Owner thread only.
//
// A slot is named outside by a ConnId (io.hh): low 24 bits the slot index, high 8 bits the
// slot's generation, bumped on every allocation, so a handle kept after its connection
// closed no longer finds the slot (up to 256 reuses of the same slot).
//
// Life of a slot (the backend drives the transitions):
//   free -> connecting -> open      connect() ... completion
//   free -> open                    accepted
//   open -> draining                close() or peer EOF: output is still sent, no reads
//   any  -> zombie                  fd closed; a stream_closed item is owed (notify list)
//   zombie -> free                  after that item was handed to the caller
// Only free slots are reused, so a ConnId stays unique until its stream_closed is seen.
//
// Items a live slot owes (stream_open after an immediate connect, stream_resumed, bytes held
// while paused, stream_writable) ride the same notify list as the zombies' stream_closed;
// drain_owed() hands them out in that order, one slot at a time, so both backends deliver
// the life cycle the same way. The flow-control rules (io.hh: pause, resume, queued,
// notify_writable) that do not touch a socket are here too: the backends only start and
// stop their reads.
//
// All memory is allocated by the constructor (setup); nothing here allocates afterwards.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>

#include "dataplane/io.hh"

namespace cw::dp::kernel {

// Largest slot count a ConnId can name (slot 0xFFFFFF would collide with kNoConn).
inline constexpr uint32_t kMaxConnSlots = 0xFFFFFFu;
// Idle sweep: slots examined per sweep step, and the bounds on the time between rounds.
inline constexpr uint32_t kIdleSweepSlots = 1024;
inline constexpr uint64_t kIdleSweepMinIntervalNs = 1'000'000;      // 1 ms
inline constexpr uint64_t kIdleSweepMaxIntervalNs = 1'000'000'000;  // 1 s
inline constexpr uint32_t kNilSlot = ~uint32_t{0};

enum class ConnState : uint8_t { free, connecting, open, draining, zombie };

// Items owed by a live slot (ConnSlot::owed), delivered in this order by drain_owed().
enum : uint8_t { kOwedOpen = 1, kOwedResumed = 2, kOwedHeld = 4, kOwedWritable = 8 };

// Extra: the backend's own per-connection state (output buffer, in-flight ops, ...).
template <class Extra>
struct ConnSlot {
  int fd = -1;  // owned by the slot while not free/zombie
  uint8_t gen = 0;
  ConnState state = ConnState::free;
  CloseReason reason = CloseReason::none;  // draining/zombie: what stream_closed will say
  bool notify_queued = false;              // on the notify list
  bool paused = false;                     // pause(): no reads until resume()
  bool want_writable = false;              // notify_writable() asked; not yet owed
  uint8_t owed = 0;                        // kOwed* bits (on the notify list while non-zero)
  SocketId sock = 0;
  Endpoint peer;
  uint64_t last_ns = 0;      // last traffic (monotonic ns), for the idle timeout
  uint32_t next = kNilSlot;  // free-list / notify-list link
  Extra x{};
};

template <class Extra>
class ConnTable {
 public:
  using Slot = ConnSlot<Extra>;

  // Setup: all max_conns slots (1 .. kMaxConnSlots) are allocated here.
  explicit ConnTable(uint32_t max_conns)
      : cap_(max_conns), slots_(std::make_unique<Slot[]>(max_conns)) {
    assert(max_conns >= 1 && max_conns <= kMaxConnSlots);
    for (uint32_t i = 0; i < cap_; ++i) slots_[i].next = i + 1 < cap_ ? i + 1 : kNilSlot;
    free_head_ = 0;
  }
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  uint32_t capacity() const { return cap_; }
  uint32_t in_use() const { return used_; }
  bool full() const { return free_head_ == kNilSlot; }
  // Slots [0, high_water()) have ever been used; scans stop there.
  uint32_t high_water() const { return hwm_; }

  // Takes a free slot (lowest indices first, so scans stay short); kNilSlot when full.
  uint32_t alloc(int fd, SocketId sock, Endpoint peer, ConnState state, uint64_t now_ns) {
    const uint32_t i = free_head_;
    if (i == kNilSlot) return kNilSlot;
    Slot& s = slots_[i];
    free_head_ = s.next;
    const uint8_t gen = uint8_t(s.gen + 1);
    s = Slot{};
    s.gen = gen;
    s.fd = fd;
    s.state = state;
    s.sock = sock;
    s.peer = peer;
    s.last_ns = now_ns;
    ++used_;
    if (i >= hwm_) hwm_ = i + 1;
    return i;
  }

  // Returns a slot to the free list. The caller closed its fd and released its Extra.
  void release(uint32_t i) {
    Slot& s = slots_[i];
    assert(s.state != ConnState::free && !s.notify_queued);
    s.state = ConnState::free;
    s.fd = -1;
    s.next = free_head_;
    free_head_ = i;
    --used_;
  }

  ConnId id(uint32_t i) const { return (ConnId(slots_[i].gen) << 24) | i; }
  Slot& at(uint32_t i) { return slots_[i]; }
  const Slot& at(uint32_t i) const { return slots_[i]; }

  // The slot a handle names, or nullptr when the handle is stale or free. Zombies are
  // returned (their stream_closed is still owed); callers check state.
  Slot* find(ConnId c) {
    const uint32_t i = conn_slot(c);
    if (c == kNoConn || i >= cap_) return nullptr;
    Slot& s = slots_[i];
    if (s.state == ConnState::free || s.gen != uint8_t(c >> 24)) return nullptr;
    return &s;
  }
  const Slot* find(ConnId c) const { return const_cast<ConnTable*>(this)->find(c); }

  // ---- notify list: slots owing an item (FIFO, each slot at most once) -----------------
  void notify(uint32_t i) {
    Slot& s = slots_[i];
    if (s.notify_queued) return;
    s.notify_queued = true;
    s.next = kNilSlot;
    if (notify_tail_ == kNilSlot)
      notify_head_ = i;
    else
      slots_[notify_tail_].next = i;
    notify_tail_ = i;
  }
  bool has_notify() const { return notify_head_ != kNilSlot; }
  uint32_t pop_notify() {
    const uint32_t i = notify_head_;
    if (i == kNilSlot) return kNilSlot;
    Slot& s = slots_[i];
    notify_head_ = s.next;
    if (notify_head_ == kNilSlot) notify_tail_ = kNilSlot;
    s.next = kNilSlot;
    s.notify_queued = false;
    return i;
  }

  // ---- life cycle shared by the kernel backends -------------------------------------------
  // Whether output may be queued: open, connecting (sent once connected), or half-closed by
  // the peer (replies to what it sent still go out).
  static bool takes_output(const Slot& s) {
    return s.state == ConnState::open || s.state == ConnState::connecting ||
           (s.state == ConnState::draining && s.reason == CloseReason::peer);
  }
  // What an idle timeout closes a slot with: a connect that never completed failed.
  static CloseReason idle_reason(const Slot& s) {
    return s.state == ConnState::connecting ? CloseReason::connect_failed : CloseReason::idle;
  }

  void owe(uint32_t i, uint8_t bits) {
    slots_[i].owed |= bits;
    notify(i);
  }
  // pause(): true when the slot was reading (the backend stops its reads).
  bool pause(uint32_t i) {
    Slot& s = slots_[i];
    if (s.paused || s.state == ConnState::zombie) return false;
    s.paused = true;
    return true;
  }
  // resume(): true when the slot was paused (the backend restarts its reads); stream_resumed
  // is owed either way it was paused.
  bool resume(uint32_t i) {
    Slot& s = slots_[i];
    if (!s.paused || s.state == ConnState::zombie) return false;
    s.paused = false;
    owe(i, kOwedResumed);
    return true;
  }
  // notify_writable(): owed now when already at or under the low-water mark, else armed
  // for sent().
  void want_writable(uint32_t i, uint32_t queued, uint32_t low_water) {
    Slot& s = slots_[i];
    if (s.state == ConnState::zombie || (s.owed & kOwedWritable)) return;
    if (queued <= low_water) {
      s.want_writable = false;
      owe(i, kOwedWritable);
    } else {
      s.want_writable = true;
    }
  }
  // Output was acknowledged by the kernel; queued bytes remain.
  void sent(uint32_t i, uint32_t queued, uint32_t low_water) {
    Slot& s = slots_[i];
    if (s.want_writable && queued <= low_water) {
      s.want_writable = false;
      owe(i, kOwedWritable);
    }
  }

  // Hands out what the notify list owes, at most `room` items: a zombie's stream_closed
  // (its slot is freed here, so the ConnId is dead from now on), else a live slot's owed
  // items in kOwed* order. held(slot, item) fills one stream_data item of bytes held while
  // paused and says whether more remain (backends that hold nothing never owe kOwedHeld).
  template <class Held>
  uint32_t drain_owed(RxItem* out, uint32_t room, Held&& held) {
    uint32_t k = 0;
    while (k < room && notify_head_ != kNilSlot) {
      const uint32_t i = notify_head_;
      Slot& s = slots_[i];
      RxItem& it = out[k++];
      it = RxItem{RxKind::stream_closed, CloseReason::none, s.sock, id(i), s.peer, 0, nullptr};
      if (s.state == ConnState::zombie) {
        it.reason = s.reason;
        pop_notify();
        release(i);
        continue;
      }
      // Held bytes wait while the slot is paused again (resume() owes them anew).
      const uint8_t due = s.paused ? uint8_t(s.owed & ~kOwedHeld) : s.owed;
      if (due & kOwedOpen) {
        it.kind = RxKind::stream_open;
        s.owed &= uint8_t(~kOwedOpen);
      } else if (due & kOwedResumed) {
        it.kind = RxKind::stream_resumed;
        s.owed &= uint8_t(~kOwedResumed);
      } else if (due & kOwedHeld) {
        it.kind = RxKind::stream_data;
        if (!held(i, it)) s.owed &= uint8_t(~kOwedHeld);
      } else if (due & kOwedWritable) {
        it.kind = RxKind::stream_writable;
        s.owed &= uint8_t(~kOwedWritable);
      } else {
        --k;  // nothing due now
      }
      if (!(s.paused ? uint8_t(s.owed & ~kOwedHeld) : s.owed)) pop_notify();
    }
    return k;
  }

  // ---- idle sweep ------------------------------------------------------------------------
  // Calls on_idle(slot) for live slots (connecting/open/draining) without traffic for
  // timeout_ns. Cheap: once per interval (timeout/4, clamped to 1 ms..1 s) a round starts
  // and each call examines at most kIdleSweepSlots slots, so the cost per poll is bounded
  // and a connection is closed within about timeout * 1.25 (plus the caller's poll period).
  template <class F>
  void sweep_idle(uint64_t now_ns, uint64_t timeout_ns, F&& on_idle) {
    if (timeout_ns == 0 || now_ns < next_sweep_ns_) return;
    const uint32_t end = cursor_ + kIdleSweepSlots < hwm_ ? cursor_ + kIdleSweepSlots : hwm_;
    for (uint32_t i = cursor_; i < end; ++i) {
      Slot& s = slots_[i];
      if (s.state == ConnState::free || s.state == ConnState::zombie) continue;
      if (now_ns - s.last_ns >= timeout_ns) on_idle(i);
    }
    cursor_ = end;
    if (cursor_ >= hwm_) {
      cursor_ = 0;
      uint64_t iv = timeout_ns / 4;
      if (iv < kIdleSweepMinIntervalNs) iv = kIdleSweepMinIntervalNs;
      if (iv > kIdleSweepMaxIntervalNs) iv = kIdleSweepMaxIntervalNs;
      next_sweep_ns_ = now_ns + iv;
    }
  }
  // When the next sweep step is due (a blocking poll should not sleep past it while
  // connections are open). 0 = now.
  uint64_t next_sweep_ns() const { return next_sweep_ns_; }

 private:
  uint32_t cap_;
  std::unique_ptr<Slot[]> slots_;
  uint32_t free_head_ = kNilSlot;
  uint32_t used_ = 0;
  uint32_t hwm_ = 0;
  uint32_t notify_head_ = kNilSlot, notify_tail_ = kNilSlot;
  uint32_t cursor_ = 0;
  uint64_t next_sweep_ns_ = 0;
};

}  // namespace cw::dp::kernel
