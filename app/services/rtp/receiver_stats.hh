// Reception statistics of one RTP source, exactly as RFC 3550 appendix A: sequence number
// validation with probation, wrap-around and restarts (A.1), expected / lost / fraction lost
// for a reception report (A.3) and the interarrival jitter estimate (A.8). No I/O, no
// allocation; owned by the worker that owns the session.
#pragma once

#include <cstdint>

namespace cw::rtp {

inline constexpr uint32_t kSeqMod = 1u << 16;
inline constexpr uint16_t kMaxDropout = 3000;  // A.1: a jump ahead below this is accepted
inline constexpr uint16_t kMaxMisorder = 100;  // ...and one back below this is a reorder
inline constexpr uint8_t kMinSequential = 2;   // packets in sequence before a source is valid

// What update() made of a packet.
enum class SeqResult : uint8_t {
  valid,      // counted in received (in order, after a gap, reordered or a duplicate)
  probation,  // the source is not yet valid (A.1 probation); not counted
  bad,        // a large jump: not counted unless the next packet follows it (a restart)
};

// The fields of a reception report block A.3 derives; the interval fields are since the
// previous call to report().
struct LossReport {
  uint32_t ext_highest_seq = 0;
  int32_t cumulative_lost = 0;  // clamped to the 24-bit signed range of the wire field
  uint8_t fraction_lost = 0;
  uint32_t expected = 0;
};

class ReceiverStats {
 public:
  // A.1: the first packet of a new source starts probation.
  void start(uint16_t seq);
  // A.1 update_seq().
  SeqResult update(uint16_t seq);
  // A.8: arrival and the packet's RTP timestamp, both in RTP timestamp units. Call for each
  // packet update() counted. The first call only records the transit time.
  void update_jitter(uint32_t arrival, uint32_t rtp_ts);
  // A.3, for one report (advances the interval).
  LossReport report();

  uint32_t jitter() const { return jitter_ >> 4; }  // A.8's integer form: scaled by 16
  uint32_t received() const { return received_; }
  uint32_t ext_max() const { return cycles_ + max_seq_; }
  uint32_t expected() const { return ext_max() - base_seq_ + 1; }
  bool valid() const { return probation_ == 0; }

 private:
  void init_seq(uint16_t seq);

  uint16_t max_seq_ = 0;
  uint32_t cycles_ = 0;  // count of wraps, shifted left 16
  uint32_t base_seq_ = 0;
  uint32_t bad_seq_ = kSeqMod + 1;  // no packet can match it
  uint32_t probation_ = 0;
  uint32_t received_ = 0;
  uint32_t expected_prior_ = 0;
  uint32_t received_prior_ = 0;
  uint32_t transit_ = 0;
  uint32_t jitter_ = 0;
  bool have_transit_ = false;
};

}  // namespace cw::rtp
