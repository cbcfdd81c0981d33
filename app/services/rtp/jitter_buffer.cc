// The jitter buffer of one stream (jitter_buffer.hh).
#include "app/services/rtp/jitter_buffer.hh"

#include <algorithm>

namespace cw::rtp {

PlayoutConfig playout_for(uint32_t clock_rate) {
  return {clock_rate / 50, clock_rate / 5, 4};
}

void JitterBuffer::restart() {
  n_.played += held_;  // what was held would have played: it is not lost
  held_ = 0;
  slots_ = {};
  seen_ = {};
  started_ = false;
  jit_ = 0;
  delay_ = cfg_.min_delay;
}

// A stream (re)starts at seq: nothing held, the base transit is this packet's.
void JitterBuffer::start(uint16_t seq, uint32_t transit) {
  n_.played += held_;
  held_ = 0;
  slots_ = {};
  seen_ = {};
  started_ = true;
  next_ = seq;
  highest_ = seq;
  base_ = transit;
  window_min_ = transit;
  window_n_ = 0;
  last_transit_ = transit;
}

Playout JitterBuffer::add(uint16_t seq, uint32_t ts, uint32_t arrival) {
  const uint32_t transit = arrival - ts;
  Playout verdict = Playout::held;
  if (!started_) {
    start(seq, transit);
  } else {
    release(arrival);
    const int d_high = int16_t(uint16_t(seq - highest_));
    if (d_high <= 0 && uint32_t(-d_high) >= kSeen) {
      // Older than the duplicate window: long past its playout time either way.
      ++n_.late;
      ++n_.reordered;
      return Playout::late;
    }
    if (d_high <= 0 && seen(seq)) {
      ++n_.duplicates;
      return Playout::duplicate;
    }
    const int d_next = int16_t(uint16_t(seq - next_));
    // Held packets lie in [next_, next_ + kSlots) and highest_ in [next_ - 1, next_ + kSlots),
    // so a packet ahead of highest_ yet behind next_ jumped half the sequence space.
    if (d_next >= int(kSlots) || (d_high > 0 && d_next < 0)) {
      // Further ahead than the buffer holds (a sequence jump, or a gap longer than the
      // buffer): what is held plays now, and the stream starts again here.
      ++n_.resyncs;
      // The duplicate window survives: it moves up to seq as it would have.
      for (int i = 1; i <= std::min(d_high, int(kSeen)); ++i) unmark_seen(uint16_t(highest_ + i));
      const std::array<uint64_t, kSeen / 64> seen = seen_;
      start(seq, transit);
      seen_ = seen;
      verdict = Playout::resync;
    } else {
      if (d_high > 0) {
        // The duplicate window moves up: forget what it leaves behind.
        for (int i = 1; i <= std::min(d_high, int(kSeen)); ++i) unmark_seen(uint16_t(highest_ + i));
        highest_ = seq;
      } else {
        ++n_.reordered;
      }
      mark_seen(seq);
      // A.8's estimate over every packet in arrival order (scaled by 16).
      const int32_t d = int32_t(transit - last_transit_);
      last_transit_ = transit;
      const uint32_t ad = d < 0 ? 0u - uint32_t(d) : uint32_t(d);
      jit_ += ad - ((jit_ + 8) >> 4);
      // The base transit is the least of a window of packets, so a faster path lowers it at
      // once and a slower one (or clock drift) raises it within kRebase packets.
      if (int32_t(transit - base_) < 0) base_ = transit;
      if (int32_t(transit - window_min_) < 0) window_min_ = transit;
      if (++window_n_ >= kRebase) {
        base_ = window_min_;
        window_min_ = transit;
        window_n_ = 0;
      }
      delay_ = std::clamp(cfg_.jitter_mult * jitter(), cfg_.min_delay, cfg_.max_delay);
      if (d_next < 0) {  // its slot was played past
        ++n_.late;
        return Playout::late;
      }
      const uint32_t playout = ts + base_ + delay_;
      if (int32_t(arrival - playout) > 0) {
        ++n_.late;
        return Playout::late;
      }
      Slot& s = slots_[seq % kSlots];
      s.playout = playout;
      s.full = true;
      ++held_;
      return Playout::held;
    }
  }
  // The first packet of a stream (or after a resync): held for the current delay.
  mark_seen(seq);
  Slot& s = slots_[seq % kSlots];
  s.playout = ts + base_ + delay_;
  s.full = true;
  ++held_;
  return verdict;
}

uint32_t JitterBuffer::release(uint32_t now) {
  uint32_t played = 0;
  while (held_ > 0) {
    // Held packets lie in [next_, next_ + kSlots): the scan ends within kSlots steps.
    uint32_t gap = 0;
    while (!slots_[uint16_t(next_ + gap) % kSlots].full) ++gap;
    Slot& s = slots_[uint16_t(next_ + gap) % kSlots];
    if (int32_t(now - s.playout) < 0) break;
    n_.concealed += gap;
    s.full = false;
    --held_;
    ++played;
    next_ = uint16_t(next_ + gap + 1);
  }
  n_.played += played;
  return played;
}

}  // namespace cw::rtp
