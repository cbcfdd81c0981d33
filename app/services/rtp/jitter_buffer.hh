// The receive side's jitter buffer of one RTP stream: each packet gets a playout time, its
// RTP timestamp plus the stream's base transit plus an adaptive playout delay, and is held
// until then; what arrives after its playout time (or after its slot was played past) is
// late. The delay tracks a multiple of the RFC 3550 A.8 jitter estimate, bounded. Counts
// late packets, duplicates, reorders, and the slots that had nothing to play (concealed).
//
// The endpoint has no audio sink, so the buffer holds each packet's playout time and not its
// payload (nothing is copied): what it decides, and counts, is what a player holding the
// payload would do. All times are in RTP timestamp units of the stream's clock, modulo 2^32
// (differences read as signed). No I/O, no allocation; owned by the session's worker.
#pragma once

#include <array>
#include <cstdint>

namespace cw::rtp {

struct PlayoutConfig {
  uint32_t min_delay = 160;   // RTP units (20 ms at 8 kHz)
  uint32_t max_delay = 1600;  // RTP units (200 ms at 8 kHz)
  uint32_t jitter_mult = 4;   // target delay = jitter_mult * the A.8 jitter estimate
};
// The bounds for a clock rate: 20 ms .. 200 ms, 4 x jitter.
PlayoutConfig playout_for(uint32_t clock_rate);

enum class Playout : uint8_t {
  held,       // on time: held until its playout time
  late,       // arrived after its playout time, or after its slot was played past: dropped
  duplicate,  // its sequence number was already received: dropped
  resync,     // too far ahead of the buffer: it restarts at this packet (which is held)
};

struct JitterCounts {
  uint64_t played = 0;      // packets released at their playout time
  uint64_t late = 0;        // Playout::late
  uint64_t duplicates = 0;  // Playout::duplicate
  uint64_t reordered = 0;   // held or late, but behind a higher sequence number seen before
  uint64_t concealed = 0;   // sequence numbers with nothing to play when their turn came
  uint64_t resyncs = 0;     // Playout::resync
};

class JitterBuffer {
 public:
  static constexpr uint32_t kSlots = 64;    // packets held at most (1.28 s of 20 ms packets)
  static constexpr uint32_t kSeen = 256;    // duplicate window, sequence numbers
  static constexpr uint32_t kRebase = 512;  // packets between refreshes of the base transit

  JitterBuffer() : JitterBuffer(PlayoutConfig{}) {}
  explicit JitterBuffer(PlayoutConfig c) : cfg_(c), delay_(c.min_delay) {}

  // Forget the stream (a new SSRC): the next packet starts it again. Counts stay.
  void restart();
  // One packet: sequence number, RTP timestamp, arrival. Releases what is due by `arrival`
  // first, so a packet is late exactly when its slot's time has passed.
  Playout add(uint16_t seq, uint32_t ts, uint32_t arrival);
  // Releases, in sequence order, the held packets whose playout time is at or before now;
  // the missing sequence numbers before each are concealed. Returns how many played.
  uint32_t release(uint32_t now);

  uint32_t delay() const { return delay_; }      // current playout delay, RTP units
  uint32_t jitter() const { return jit_ >> 4; }  // its A.8 estimate, RTP units
  uint32_t held() const { return held_; }
  const JitterCounts& counts() const { return n_; }

 private:
  struct Slot {
    uint32_t playout = 0;
    bool full = false;
  };
  bool seen(uint16_t seq) const { return seen_[(seq % kSeen) / 64] >> (seq % 64) & 1; }
  void mark_seen(uint16_t seq) { seen_[(seq % kSeen) / 64] |= uint64_t{1} << (seq % 64); }
  void unmark_seen(uint16_t seq) { seen_[(seq % kSeen) / 64] &= ~(uint64_t{1} << (seq % 64)); }
  void start(uint16_t seq, uint32_t transit);

  PlayoutConfig cfg_;
  bool started_ = false;
  uint16_t next_ = 0;     // the next sequence number to play
  uint16_t highest_ = 0;  // highest sequence number received
  uint32_t base_ = 0;     // base transit (arrival - ts): the least seen this window
  uint32_t window_min_ = 0;
  uint32_t window_n_ = 0;
  uint32_t last_transit_ = 0;
  uint32_t jit_ = 0;  // A.8's estimate scaled by 16
  uint32_t delay_ = 0;
  uint32_t held_ = 0;
  std::array<Slot, kSlots> slots_{};
  std::array<uint64_t, kSeen / 64> seen_{};
  JitterCounts n_;
};

}  // namespace cw::rtp
