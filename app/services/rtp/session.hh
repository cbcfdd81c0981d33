// One RTP session's state and the pure parts of its behaviour: the tone source, the RTCP
// report interval (RFC 3550 6.2, A.7), NTP time and the report it sends. No I/O: the
// service (service.hh) does the sending. Owned by the session's worker; built at setup,
// nothing allocated afterwards.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "app/services/rtp/config.hh"
#include "app/services/rtp/jitter_buffer.hh"
#include "app/services/rtp/protocol.hh"
#include "app/services/rtp/receiver_stats.hh"

namespace cw::rtp {

// G.711 mu-law of a 16-bit linear sample.
uint8_t ulaw_encode(int16_t pcm);

// One second of the source's sine (tone_hz whole cycles, so it repeats exactly), encoded as
// the payload: PCMU one octet per sample, L16 two (big-endian, RFC 3551 4.5.11).
std::vector<uint8_t> make_tone(const RtpOptions& o);
// Amplitude of the tone (of full scale 32767).
inline constexpr int kToneAmplitude = 8000;

// A small fast PRNG (xorshift64*) for the report interval and fault injection.
struct Rng {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  uint32_t below(uint32_t n) { return uint32_t((next() >> 32) * n >> 32); }
};

// RFC 3550 A.7 rtcp_interval(): the deterministic interval for the session's members,
// senders and RTCP bandwidth (bytes/s), at least min_s (halved for the first report), then
// randomised over [0.5, 1.5) and divided by e - 3/2 for the reconsideration bias. Seconds.
double rtcp_interval(int members, int senders, double rtcp_bw, bool we_sent, double avg_rtcp_size,
                     bool initial, double min_s, double u01);

// NTP timestamps (RFC 3550 4): 32.32 seconds since 1900, from a monotonic time and the
// wall-clock offset taken at setup.
inline constexpr uint64_t kNtpUnixOffset = 2208988800ull;  // 1970 - 1900 in seconds
uint64_t ntp_from_unix_ns(uint64_t unix_ns);
inline uint32_t ntp_middle(uint64_t ntp) {
  return uint32_t(ntp >> 16);
}

// ns in RTP timestamp units of `rate` Hz, modulo 2^32 (split so ns * rate cannot overflow).
inline uint32_t rtp_units(uint64_t ns, uint32_t rate) {
  return uint32_t((ns / 1'000'000'000) * rate + (ns % 1'000'000'000) * rate / 1'000'000'000);
}

// What is known of the stream the peer sends us.
struct Remote {
  bool seen = false;  // a packet from the peer arrived (ssrc is set)
  uint32_t ssrc = 0;
  ReceiverStats stats;
  uint32_t last_sr = 0;     // middle 32 bits of the peer's last SR's NTP time (LSR)
  uint64_t last_sr_ns = 0;  // when it arrived (monotonic), for DLSR
  uint64_t ssrc_changes = 0;
};

// Ours, as the peer's reports see it (the last report block about our SSRC).
struct PeerView {
  uint8_t fraction_lost = 0;
  int32_t cumulative_lost = 0;
  uint32_t jitter = 0;
  uint32_t rtt_ntp = 0;  // RFC 3550 6.4.1: A - LSR - DLSR, 1/65536 s; 0 unknown
};

// The sender side of an endpoint session.
struct Sender {
  uint32_t ssrc = 0;
  uint16_t seq = 0;
  uint32_t ts = 0;  // RTP timestamp of the next packet
  uint32_t packets = 0, octets = 0;
  uint64_t next_ns = 0;  // the next packet's nominal send time
  uint64_t t0_ns = 0;    // nominal send time of ts == ts0 (for SR's RTP timestamp)
  uint32_t ts0 = 0;
  // Fault injection: one packet held back to be sent after the next (reorder).
  std::vector<uint8_t> held;  // capacity reserved at setup
  size_t held_len = 0;
};

// One endpoint session on its owner: the table's configured one or one opened at run time.
// Lives in the owner's session table (sized at start-up); a closed slot is reset for reuse.
struct Session {
  bool open = false;
  bool configured = false;  // the [[service]] table's own session (the gauges are its)
  dp::Endpoint peer{};
  dp::Endpoint peer_rtcp{};  // 0: RTCP goes to peer (RFC 5761)
  uint32_t peer_ssrc = 0;    // 0: any SSRC from peer (learned; a change restarts the stats)
  uint8_t pt = 0;
  Sender sender;
  Remote remote;
  JitterBuffer jb;
  uint64_t tx_timer = 0, rtcp_timer = 0;  // rt::TimerId (0: none)
  double avg_rtcp_size = 0;               // RFC 3550 6.3.3, bytes with UDP/IP
  uint64_t rtp_in = 0, rtcp_in = 0, rtcp_out = 0;
  uint8_t fraction_lost = 0;  // in our last report
  PeerView peer_view;         // the peer's last report block about our stream
  // Fault injection (the configured session only; docs/rtp.md).
  uint32_t loss_permille = 0, jitter_ms = 0, reorder_permille = 0;
};

// The RTCP compound an endpoint sends: SR (with one block about the peer's stream when it
// has one), SDES CNAME, and BYE when closing. Returns its size (0 if out is too small).
// `now_ntp` is the SR's NTP time, `rtp_now` the RTP timestamp of that instant.
size_t write_report(std::span<uint8_t> out, const Sender& s, Remote& r, uint64_t now_ns,
                    uint64_t now_ntp, uint32_t rtp_now, std::string_view cname, bool bye);

}  // namespace cw::rtp
