// A hierarchical timer wheel (Varghese & Lauck, scheme 7; the cascading layout of Linux's
// pre-4.8 wheel), one per worker. Owner thread only.
//
//   * Tick: 2^kTickShift ns = 262.144 us. Fine enough for 20 ms RTP pacing (1.3 % jitter),
//     RTOs (>= 1 ms) and keep-alive/expiry; coarse enough that a sleeping worker steps few
//     ticks. A timer for time t fires at the first advance() with now >= t rounded up to a
//     tick: never early, at most one tick plus one loop iteration late.
//   * Levels: kLevels wheels of 64 slots; level l holds timers 64^l .. 64^(l+1) ticks ahead
//     (level 0: 16.8 ms, 1: 1.07 s, 2: 68.7 s, 3: 73 min, 4: 78 h, 5: 208 days). A slot of
//     level l >= 1 is cascaded (its timers re-sorted into lower levels) when the wheel's
//     tick reaches it. Timers further out than level 5 reaches wait in its last slot and are
//     re-placed when it cascades.
//   * O(1) schedule, cancel and rearm: nodes come from a fixed pool sized at setup and sit on
//     intrusive doubly linked slot lists (indices, sentinels in the same array). A 64-bit
//     occupancy mask per level finds the next non-empty slot with one rotate and ctz, so
//     advance() skips empty ticks and next_ns() is exact enough to size a sleep.
//   * No allocation after construction; schedule on a full pool returns kNoTimer.
//   * TimerId = generation << 32 | node: a stale id (fired, cancelled, reused node) is
//     refused by cancel/rearm, so cancelling twice or too late is harmless.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdint>
#include <limits>
#include <vector>

namespace cw::rt {

using TimerId = uint64_t;
inline constexpr TimerId kNoTimer = 0;  // never issued (generations start at 1)

class TimerWheel {
 public:
  static constexpr unsigned kTickShift = 18;  // tick = 262'144 ns
  static constexpr unsigned kLevelBits = 6;
  static constexpr unsigned kSlots = 1u << kLevelBits;
  static constexpr unsigned kLevels = 6;
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

  // capacity: timers pending at once (setup: allocates capacity + 384 nodes of 32 bytes).
  // now_ns: the current time; timers may be scheduled from then on.
  TimerWheel(uint32_t capacity, uint64_t now_ns)
      : nodes_(size_t(capacity) + kLevels * kSlots), cap_(capacity), now_(now_ns >> kTickShift) {
    for (uint32_t s = 0; s < kLevels * kSlots; ++s) {
      Node& h = nodes_[cap_ + s];
      h.next = h.prev = cap_ + s;
    }
    // Free list in index order, chained through next.
    for (uint32_t i = 0; i < cap_; ++i) nodes_[i].next = i + 1;
    free_ = cap_ ? 0 : kNil;
    if (cap_) nodes_[cap_ - 1].next = kNil;
  }

  // A timer firing at t_ns for `owner` (the worker: a service index) carrying `user`;
  // kNoTimer when the pool is full. A time already past fires at the next advance().
  TimerId schedule(uint64_t t_ns, uint16_t owner, uint64_t user) {
    if (free_ == kNil) return kNoTimer;
    const uint32_t i = free_;
    Node& n = nodes_[i];
    free_ = n.next;
    n.owner = owner;
    n.user = user;
    ++count_;
    place(i, expiry_tick(t_ns));
    return id_of(i);
  }

  // Moves a pending timer (or the one firing now) to t_ns. False if id is stale.
  bool rearm(TimerId id, uint64_t t_ns) {
    const uint32_t i = live(id);
    if (i == kNil) return false;
    if (nodes_[i].slot != kFiring) unlink(i);
    place(i, expiry_tick(t_ns));
    return true;
  }

  // Cancels a pending timer (or the one firing now: it is not re-armed). False if stale.
  bool cancel(TimerId id) {
    const uint32_t i = live(id);
    if (i == kNil) return false;
    if (nodes_[i].slot != kFiring) unlink(i);
    release(i);
    return true;
  }

  // Fires, in deadline-tick order, every timer due at now_ns, at most `budget` of them
  // (the rest fire at the next call): fire(TimerId, owner, user). fire may schedule, cancel
  // and rearm any timer, including the one firing (rearm makes it periodic); it must not
  // call advance(). Returns how many fired.
  template <class Fire>
  uint32_t advance(uint64_t now_ns, uint32_t budget, Fire&& fire) {
    const uint64_t target = now_ns >> kTickShift;
    uint32_t fired = 0;
    for (;;) {
      fired += fire_slot(slot_of(0, now_), budget - fired, fire);
      if (fired == budget) break;
      const uint64_t t = next_tick();
      if (t > target) {
        now_ = std::max(now_, target);
        break;
      }
      now_ = t;
      // Cascade the slot of every level whose boundary this tick is, lowest level first
      // (higher levels re-place into lower ones, never into a slot already cascaded here).
      for (unsigned l = 1; l < kLevels; ++l) {
        if (now_ & ((uint64_t{1} << (kLevelBits * l)) - 1)) break;
        cascade(slot_of(l, now_ >> (kLevelBits * l)));
      }
    }
    next_ns_ = count_ ? next_tick() << kTickShift : kNever;
    return fired;
  }

  // The earliest time advance() may have work (a lower bound, kNever when nothing is
  // pending): one load for the loop's "anything due?" check and for sizing a sleep.
  uint64_t next_ns() const { return next_ns_; }
  uint32_t pending() const { return count_; }
  uint32_t capacity() const { return cap_; }

 private:
  static constexpr uint32_t kNil = ~uint32_t{0};
  static constexpr uint16_t kFree = 0xFFFF;    // Node::slot of a free node
  static constexpr uint16_t kFiring = 0xFFFE;  // of the node whose fire() is running

  struct Node {
    uint64_t expiry = 0;  // tick
    uint64_t user = 0;
    uint32_t next = kNil, prev = kNil;
    uint32_t gen = 1;
    uint16_t owner = 0;
    uint16_t slot = kFree;  // level * 64 + index while linked
  };
  static_assert(sizeof(Node) == 32);

  static uint64_t expiry_tick(uint64_t t_ns) {
    return t_ns >= kNever - ((uint64_t{1} << kTickShift) - 1)
               ? kNever >> kTickShift
               : (t_ns + (uint64_t{1} << kTickShift) - 1) >> kTickShift;  // round up
  }
  static uint32_t slot_of(unsigned level, uint64_t index) {
    return level * kSlots + uint32_t(index & (kSlots - 1));
  }
  TimerId id_of(uint32_t i) const { return (uint64_t{nodes_[i].gen} << 32) | i; }
  uint32_t live(TimerId id) const {
    const uint32_t i = uint32_t(id);
    if (i >= cap_ || nodes_[i].gen != uint32_t(id >> 32) || nodes_[i].slot == kFree) return kNil;
    return i;
  }

  // Links node i into the slot its expiry tick e belongs to, seen from now_.
  void place(uint32_t i, uint64_t e) {
    nodes_[i].expiry = e;
    const uint64_t d = e > now_ ? e - now_ : 0;
    uint32_t s;
    uint64_t event;  // tick at which the slot fires (level 0) or cascades
    if (d < kSlots) {
      s = slot_of(0, d ? e : now_);
      event = d ? e : now_;
    } else {
      unsigned l = 1;
      while (l < kLevels - 1 && d >= uint64_t{1} << (kLevelBits * (l + 1))) ++l;
      // Beyond the top level: wait in the farthest slot it has, re-placed when it cascades.
      const uint64_t span = uint64_t{1} << (kLevelBits * kLevels);
      const uint64_t at = d < span ? e : now_ + span - 1;
      s = slot_of(l, at >> (kLevelBits * l));
      event = (at >> (kLevelBits * l)) << (kLevelBits * l);
    }
    link(i, s);
    next_ns_ = std::min(next_ns_, event << kTickShift);
  }

  void link(uint32_t i, uint32_t s) {
    const uint32_t h = cap_ + s;
    Node& n = nodes_[i];
    n.slot = uint16_t(s);
    n.prev = nodes_[h].prev;
    n.next = h;
    nodes_[n.prev].next = i;
    nodes_[h].prev = i;
    mask_[s / kSlots] |= uint64_t{1} << (s % kSlots);
  }
  void unlink(uint32_t i) {
    Node& n = nodes_[i];
    nodes_[n.prev].next = n.next;
    nodes_[n.next].prev = n.prev;
    const uint32_t h = cap_ + n.slot;
    if (nodes_[h].next == h) mask_[n.slot / kSlots] &= ~(uint64_t{1} << (n.slot % kSlots));
  }
  void release(uint32_t i) {
    Node& n = nodes_[i];
    n.slot = kFree;
    if (++n.gen == 0) n.gen = 1;
    n.next = free_;
    free_ = i;
    if (--count_ == 0) next_ns_ = kNever;
  }

  // The first tick after now_ at which a non-empty slot fires or cascades, or now_ if the
  // current level-0 slot holds timers (due, or left over by a budget).
  uint64_t next_tick() const {
    if (mask_[0] >> (now_ % kSlots) & 1) return now_;
    uint64_t best = kNever;
    for (unsigned l = 0; l < kLevels; ++l) {
      if (!mask_[l]) continue;
      const uint64_t cur = now_ >> (kLevelBits * l);
      // Distance (1..64 slots) from the current index to the next occupied one, wrapping.
      const uint64_t rot = std::rotr(mask_[l], int((cur + 1) % kSlots));
      const uint64_t t = (cur + 1 + uint64_t(std::countr_zero(rot))) << (kLevelBits * l);
      best = std::min(best, t);
    }
    return best;
  }

  void cascade(uint32_t s) {
    const uint32_t h = cap_ + s;
    while (nodes_[h].next != h) {
      const uint32_t i = nodes_[h].next;
      unlink(i);
      place(i, nodes_[i].expiry);
    }
  }

  template <class Fire>
  uint32_t fire_slot(uint32_t s, uint32_t budget, Fire& fire) {
    const uint32_t h = cap_ + s;
    uint32_t fired = 0;
    while (fired < budget && nodes_[h].next != h) {
      const uint32_t i = nodes_[h].next;
      unlink(i);
      Node& n = nodes_[i];
      n.slot = kFiring;
      const uint32_t gen = n.gen;
      fire(id_of(i), n.owner, n.user);
      ++fired;
      // Not re-armed or cancelled by fire: done.
      if (nodes_[i].gen == gen && nodes_[i].slot == kFiring) release(i);
    }
    return fired;
  }

  std::vector<Node> nodes_;  // [0, cap_): timers; then one sentinel per slot
  uint32_t cap_;
  uint32_t free_ = kNil;
  uint32_t count_ = 0;
  uint64_t now_;  // tick: every timer due at or before it has fired (budget permitting)
  uint64_t next_ns_ = kNever;
  uint64_t mask_[kLevels] = {};  // occupied slots per level
};

}  // namespace cw::rt
