#include "app/services/rtp/receiver_stats.hh"

#include <algorithm>

namespace cw::rtp {

void ReceiverStats::init_seq(uint16_t seq) {
  base_seq_ = seq;
  max_seq_ = seq;
  bad_seq_ = kSeqMod + 1;
  cycles_ = 0;
  received_ = 0;
  received_prior_ = 0;
  expected_prior_ = 0;
}

void ReceiverStats::start(uint16_t seq) {
  init_seq(seq);
  max_seq_ = static_cast<uint16_t>(seq - 1);
  probation_ = kMinSequential;
  have_transit_ = false;
  jitter_ = 0;
}

SeqResult ReceiverStats::update(uint16_t seq) {
  const uint16_t udelta = static_cast<uint16_t>(seq - max_seq_);
  if (probation_ != 0) {
    // A.1 compares seq with max_seq + 1 in int; the successor is taken modulo 2^16 here so a
    // source whose first packets straddle 65535 -> 0 is not held in probation.
    if (seq == static_cast<uint16_t>(max_seq_ + 1)) {
      --probation_;
      max_seq_ = seq;
      if (probation_ == 0) {
        init_seq(seq);
        ++received_;
        return SeqResult::valid;
      }
    } else {
      probation_ = kMinSequential - 1;
      max_seq_ = seq;
    }
    return SeqResult::probation;
  }
  if (udelta < kMaxDropout) {
    // In order, with a permissible gap; a smaller number means the sequence wrapped.
    if (seq < max_seq_) cycles_ += kSeqMod;
    max_seq_ = seq;
  } else if (udelta <= kSeqMod - kMaxMisorder) {
    // A very large jump: the source restarted if the next packet follows this one.
    if (seq == bad_seq_) {
      init_seq(seq);
    } else {
      bad_seq_ = (seq + 1u) & (kSeqMod - 1);
      return SeqResult::bad;
    }
  }
  // Otherwise a duplicate or a reordered packet: counted, max_seq unchanged.
  ++received_;
  return SeqResult::valid;
}

void ReceiverStats::update_jitter(uint32_t arrival, uint32_t rtp_ts) {
  // A.8: D = difference of transit times (mod 2^32, read as signed), J += (|D| - J) / 16,
  // kept scaled by 16 in integers.
  const uint32_t transit = arrival - rtp_ts;
  if (!have_transit_) {
    transit_ = transit;
    have_transit_ = true;
    return;
  }
  int32_t d = static_cast<int32_t>(transit - transit_);
  transit_ = transit;
  const uint32_t ad = d < 0 ? 0u - static_cast<uint32_t>(d) : static_cast<uint32_t>(d);
  jitter_ += ad - ((jitter_ + 8) >> 4);
}

LossReport ReceiverStats::report() {
  LossReport r;
  r.ext_highest_seq = ext_max();
  r.expected = expected();
  // A.3: lost may be negative with duplicates; the wire field is 24-bit signed.
  int64_t lost = int64_t{r.expected} - received_;
  if (lost > 0x7fffff) lost = 0x7fffff;
  if (lost < -0x800000) lost = -0x800000;
  r.cumulative_lost = static_cast<int32_t>(lost);
  const uint32_t expected_interval = r.expected - expected_prior_;
  expected_prior_ = r.expected;
  const uint32_t received_interval = received_ - received_prior_;
  received_prior_ = received_;
  const int64_t lost_interval = int64_t{expected_interval} - received_interval;
  // A.3's 8-bit fraction is 256 when the whole interval was lost; 255 keeps it nonzero.
  if (expected_interval != 0 && lost_interval > 0)
    r.fraction_lost =
        static_cast<uint8_t>(std::min<int64_t>((lost_interval << 8) / expected_interval, 255));
  return r;
}

}  // namespace cw::rtp
