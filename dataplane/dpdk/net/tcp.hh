// A per-worker TCP engine (RFC 9293) for the user-space stack. Pure code like the IPv4/UDP
// codecs: segments in (an IPv4 payload already checked by parse_frame, with its addresses),
// segments out through the caller's emit function, time passed in (no clock reads), no
// allocation after construction, no locks: one engine per worker, owner-thread only.
//
// What it does (docs/dpdk.md, "TCP"): passive and active three-way handshake with MSS,
// window scaling, timestamps with PAWS (RFC 7323) and SACK-permitted; SACK blocks on
// receive from a bounded out-of-order range list (RFC 2018); RTO per RFC 6298 (SRTT/RTTVAR,
// backoff, Karn); NewReno fast retransmit and recovery (RFC 6582) for peers without SACK,
// SACK-based recovery (RFC 6675) for the others; delayed ACK (every second
// segment or 40 ms); zero-window probes; orderly close both ways including simultaneous
// close; a short, configurable TIME_WAIT; RST/SYN/ACK checks per RFC 5961 (challenge ACKs);
// ISNs per RFC 6528; with a SACK peer, loss recovery per RFC 6675 from a scoreboard of the
// peer's SACK blocks (IsLost, pipe, NextSeg), with lost retransmissions found by time as
// RACK does (RFC 8985). Every segment not accepted is counted under one DropReason (drop.hh).
//
// Buffers: each connection slot owns a send ring and a receive ring (sizes from TcpConfig,
// rounded up to powers of two), carved from one allocation made at construction.
// Ownership of connections: the application owns a ConnId from its accepted/connected event
// until it calls close() (or abort()); after that the engine finishes the protocol (FIN,
// TIME_WAIT) and frees the slot itself. A connection that is reset or times out stays in
// the table (state closed, event `closed`) until the application calls close().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/dpdk/net/drop.hh"
#include "dataplane/io.hh"

namespace cw::dp::net {

inline constexpr uint32_t kTcpHdrLen = 20;
inline constexpr uint32_t kTcpMaxHdrLen = 60;
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                         kTcpAck = 0x10, kTcpUrg = 0x20;

struct TcpConfig {
  uint32_t max_conns = 1024;     // table capacity (listeners' half-open connections included)
  uint32_t snd_buf = 64 * 1024;  // bytes per connection, rounded up to a power of two
  uint32_t rcv_buf = 64 * 1024;  // bytes per connection, rounded up to a power of two
  uint16_t mss = 1460;           // our receive MSS (MTU - 40)
  uint8_t ooo_ranges = 8;        // out-of-order ranges kept per connection (1..16)
  bool timestamps = true;        // offer RFC 7323 timestamps
  bool window_scaling = true;    // offer RFC 7323 window scaling
  bool sack = true;              // offer SACK-permitted (we send SACK blocks)
  int64_t rto_initial_ns = 1'000'000'000;  // RFC 6298 2.1
  int64_t rto_min_ns = 200'000'000;        // RFC 6298 says 1 s; Linux uses 200 ms
  int64_t rto_max_ns = 60'000'000'000;
  uint32_t max_retries = 8;  // RTO expiries in a row before the abort
  uint32_t syn_retries = 5;
  int64_t delack_ns = 40'000'000;         // delayed-ACK timer
  int64_t time_wait_ns = 1'000'000'000;   // TIME_WAIT (2 MSL would be 60 s or more)
  int64_t fin_wait2_ns = 30'000'000'000;  // FIN_WAIT_2 after close(): then freed
  uint8_t initial_cwnd_segs = 10;         // RFC 6928
  bool tail_loss_probe = true;            // RFC 8985 7 and a recovery timer, with SACK peers
  uint32_t challenge_ack_limit = 1000;    // challenge ACKs per second, engine-wide (RFC 5961 7)
  // Keep-alive (0: off): probe after this long without a segment from the peer.
  int64_t keepalive_idle_ns = 0;
  int64_t keepalive_interval_ns = 75'000'000'000;
  uint32_t keepalive_probes = 9;  // unanswered probes before the connection is reset
  // SYN cookies (RFC 4987) once this many passive connections are half open (0: half of
  // max_conns) or the table is full; without them such SYNs are dropped (tcp_table_full).
  bool syn_cookies = true;
  uint32_t syn_backlog = 0;
  // RFC 6528 secret (16 bytes). All zero: drawn from getrandom() at construction.
  std::array<uint8_t, 16> isn_key{};
  // Batched output: send() only queues, and the every-second-segment ACK waits, until
  // flush(), which the caller runs once per burst. Replies written while a burst is handled
  // then leave as few full segments as the windows allow, carrying that ACK. Off: send()
  // and the ACK go out at once.
  bool batch_output = false;
};

enum class TcpState : uint8_t {
  free,  // slot unused
  syn_sent,
  syn_rcvd,
  established,
  fin_wait1,
  fin_wait2,
  close_wait,
  closing,
  last_ack,
  time_wait,
  closed,  // reset or timed out; waits for the application's close()
};
const char* tcp_state_name(TcpState s);

enum class TcpEventKind : uint8_t {
  accepted,   // a passive connection reached ESTABLISHED
  connected,  // an active connection reached ESTABLISHED
  readable,   // new in-order data, or the peer's FIN (eof())
  writable,   // send space freed after a short send()
  closed,     // reset, refused or timed out: call close() to release the handle
};
struct TcpEvent {
  TcpEventKind kind;
  ConnId conn;
};

// One segment to send: the TCP header (checksum filled in, software) and up to two payload
// pieces (the send ring may wrap). The caller prepends IPv4 (+ Ethernet) headers.
struct TcpSegmentOut {
  uint32_t src_be = 0, dst_be = 0;
  const uint8_t* hdr = nullptr;
  uint32_t hdr_len = 0;
  const uint8_t* p1 = nullptr;
  uint32_t n1 = 0;
  const uint8_t* p2 = nullptr;
  uint32_t n2 = 0;
  uint32_t len() const { return hdr_len + n1 + n2; }
};
// Called once per segment, synchronously, from inside the engine's calls; the pointers are
// valid only during the call.
using TcpEmitFn = void (*)(void* ctx, const TcpSegmentOut& seg);

// Counters beyond the drops (single writer, the owning worker).
struct TcpStats {
  uint64_t segs_in = 0, segs_out = 0;
  uint64_t retransmits = 0;           // segments sent again (any reason)
  uint64_t rto_expiries = 0;          // retransmission timeouts
  uint64_t fast_retransmits = 0;      // recoveries entered (three dup ACKs or IsLost)
  uint64_t sack_retransmits = 0;      // holes beyond SND.UNA sent again in SACK recovery
  uint64_t lost_retransmits = 0;      // retransmissions found lost by time (RFC 8985 inference)
  uint64_t sack_blocks_bogus = 0;     // received SACK blocks ignored: empty, unsent, too old
  uint64_t sack_scoreboard_full = 0;  // SACK ranges forgotten: more than the scoreboard holds
  uint64_t tlp_probes = 0;            // tail loss probes sent (RFC 8985 7)
  uint64_t challenge_acks = 0;        // RFC 5961
  uint64_t challenge_acks_suppressed = 0;  // over challenge_ack_limit
  uint64_t rst_sent = 0;
  uint64_t conns_accepted = 0, conns_connected = 0, conns_reset = 0, conns_timed_out = 0;
  uint64_t ooo_segments = 0;  // segments queued out of order
  uint64_t window_probes = 0;
  uint64_t keepalive_probes = 0;
  uint64_t syn_cookies_sent = 0, syn_cookies_accepted = 0;
  uint64_t events_lost = 0;  // event ring full (cannot happen within its sizing)
};

class TcpEngine {
 public:
  // Setup: allocates the table and every buffer. drops is the worker's drop counters.
  TcpEngine(const TcpConfig& cfg, DropCounters* drops, TcpEmitFn emit, void* emit_ctx);
  ~TcpEngine();
  TcpEngine(const TcpEngine&) = delete;
  TcpEngine& operator=(const TcpEngine&) = delete;

  // Accept connections to addr:port (network order; addr 0 = any of ours). False when the
  // listener table (16) is full or the port is taken.
  bool listen(uint32_t addr_be, uint16_t port_be);
  void stop_listening();  // no new connections; existing ones go on

  // One received segment: the IPv4 payload (TCP header onward, `len` bytes) with its
  // addresses. csum_ok: the NIC verified the checksum (else it is checked here).
  void input(uint32_t src_be, uint32_t dst_be, const uint8_t* seg, uint32_t len, int64_t now_ns,
             bool csum_ok = false);

  // Timers (RTO, delayed ACK, probes, TIME_WAIT): call at least every few milliseconds.
  void advance(int64_t now_ns);
  // The earliest time advance() has work to do (INT64_MAX: none).
  int64_t next_deadline() const { return next_deadline_; }

  // Active open from local to remote. kNoConn if the table is full or the 4-tuple is used.
  ConnId connect(uint32_t local_be, uint16_t lport_be, uint32_t remote_be, uint16_t rport_be,
                 int64_t now_ns);

  // Queue bytes to send (ESTABLISHED or CLOSE_WAIT); returns how many fit in the send ring.
  // Sends what the windows allow (Nagle off): at once, or at flush() with batch_output.
  uint32_t send(ConnId c, const uint8_t* p, uint32_t n, int64_t now_ns);
  // batch_output: sends what send() queued and the ACKs held since the last flush().
  void flush(int64_t now_ns);
  uint32_t send_space(ConnId c) const;
  uint32_t send_queued(ConnId c) const;  // bytes in the send ring (sent or not, unacked)
  // In-order received bytes: the first contiguous piece (the ring may wrap; call again
  // after consume()). consume() frees n bytes and may send a window update.
  std::span<const uint8_t> readable(ConnId c) const;
  void consume(ConnId c, uint32_t n, int64_t now_ns);
  uint32_t recv(ConnId c, uint8_t* out, uint32_t max, int64_t now_ns);  // readable+consume
  uint32_t readable_bytes(ConnId c) const;
  bool eof(ConnId c) const;  // peer's FIN received and every byte read

  // No more sending: a FIN follows the queued data. The connection stays readable.
  void shutdown(ConnId c, int64_t now_ns);
  // Release the handle: shutdown(), then the engine finishes and frees the slot. Unread
  // data (or data arriving later) resets the connection instead (RFC 9293 3.6 / RFC 2525).
  void close(ConnId c, int64_t now_ns);
  // Reset at once and release the handle.
  void abort(ConnId c, int64_t now_ns);

  std::span<const TcpEvent> events() const;
  void clear_events();

  TcpState state(ConnId c) const;
  // The connection's addresses and ports (network order); false for a stale handle.
  bool endpoints(ConnId c, uint32_t* laddr, uint16_t* lport, uint32_t* raddr,
                 uint16_t* rport) const;
  bool valid(ConnId c) const;
  uint32_t live_conns() const { return uint32_t(live_.size()); }  // slots not free
  const TcpStats& stats() const { return stats_; }
  const TcpConfig& config() const { return cfg_; }

  // Read-only view of a connection's negotiated options and RTT state (tests, metrics).
  struct Info {
    TcpState state;
    uint16_t snd_mss;
    uint8_t snd_wscale, rcv_wscale;  // 0xFF: not negotiated
    bool ts, sack;
    int64_t srtt_ns, rttvar_ns, rto_ns;
    uint32_t cwnd, ssthresh, snd_wnd;
    bool in_recovery;
    uint8_t sacked_ranges;  // ranges in the SACK scoreboard
    uint32_t sacked_bytes;  // bytes they cover
  };
  Info info(ConnId c) const;

 private:
  struct Conn;
  struct SegIn;
  struct Listener {
    uint32_t addr_be;
    uint16_t port_be;
    bool used;
  };

  Conn* lookup(ConnId c) const;
  Conn* find(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport) const;
  Conn* alloc(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);
  void release(Conn& c);
  void table_insert(uint32_t slot);
  void table_erase(uint32_t slot);
  size_t hash(uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport) const;
  uint32_t make_isn(const Conn& c, int64_t now) const;

  void drop(DropReason r) { drops_->add(r); }
  void on_listen(const SegIn& s, int64_t now);
  void on_syn_sent(Conn& c, const SegIn& s, int64_t now);
  void on_segment(Conn& c, const SegIn& s, int64_t now);
  bool process_ack(Conn& c, const SegIn& s, int64_t now);
  void process_data(Conn& c, const SegIn& s, int64_t now);
  void process_fin(Conn& c, int64_t now);
  void apply_options(Conn& c, const SegIn& s);
  void establish(Conn& c, int64_t now);
  uint32_t cookie_hash(const SegIn& s, uint32_t peer_isn, uint32_t t) const;
  void send_cookie(const SegIn& s, int64_t now);
  bool cookie_ack(const SegIn& s, int64_t now);
  ConnId id_of(const Conn& c) const;
  void rtt_sample(Conn& c, int64_t rtt);
  void reset_conn(Conn& c, bool count_reset);
  void enter_time_wait(Conn& c, int64_t now);

  void output(Conn& c, int64_t now);  // send what the windows allow
  void defer(Conn& c);                // batch_output: on the list flush() works through
  void send_segment(Conn& c, uint32_t seq, uint32_t len, uint8_t flags, int64_t now);
  void send_ack(Conn& c, int64_t now);
  void send_syn(Conn& c, uint8_t flags, int64_t now);
  void send_challenge_ack(Conn& c, int64_t now);
  void send_rst_for(const SegIn& s);
  uint32_t retransmit_una(Conn& c, int64_t now);
  bool send_again(Conn& c, uint32_t seq, uint32_t len, int64_t now);
  void enter_recovery(Conn& c, int64_t now);
  // The SACK scoreboard (RFC 6675).
  bool sack_update(Conn& c, const SegIn& s);
  void sack_trim(Conn& c);
  bool sack_is_lost(const Conn& c, uint32_t seq) const;
  uint32_t sack_pipe(const Conn& c) const;
  bool sack_next(const Conn& c, bool lost_only, uint32_t* seq, uint32_t* len) const;
  void sack_lost_retransmits(Conn& c, int64_t now);
  void on_timer(Conn& c, int64_t now);
  void keepalive(Conn& c, int64_t now);
  void arm_rto(Conn& c, int64_t now);
  void arm_timer(Conn& c, int64_t now);
  void tail_loss_probe(Conn& c, int64_t now);
  void arm_recovery_timer(Conn& c, int64_t now);
  void set_deadline(Conn& c);
  void emit_event(Conn& c, TcpEventKind k);
  uint32_t rcv_window(const Conn& c) const;
  uint32_t effective_mss(const Conn& c) const;

  TcpConfig cfg_;
  DropCounters* drops_;
  TcpEmitFn emit_;
  void* emit_ctx_;
  uint32_t snd_size_, rcv_size_;
  uint8_t rcv_wscale_;  // the scale we offer (from rcv_buf)
  std::array<uint64_t, 2> key_{};
  std::unique_ptr<Conn[]> conns_;
  std::unique_ptr<uint8_t[]> bufs_;
  std::vector<uint32_t> table_;  // open addressing, slot+1 (0 empty), linear probing
  size_t table_mask_ = 0;
  std::vector<uint32_t> free_;      // free slots (stack)
  std::vector<uint32_t> live_;      // used slots (timer scan), Conn::live_pos indexes it
  std::vector<uint32_t> deferred_;  // slots with Conn::deferred set (batch_output)
  std::vector<TcpEvent> ev_;
  size_t ev_len_ = 0;
  std::array<Listener, 16> listeners_{};
  int64_t next_deadline_ = INT64_MAX;
  int64_t challenge_window_start_ = INT64_MIN / 2;  // RFC 5961 7 rate limit
  uint32_t challenge_sent_ = 0;
  uint32_t half_open_ = 0;                  // passive connections in SYN-RECEIVED
  int64_t last_cookie_ns_ = INT64_MIN / 2;  // cookies are checked only after one was sent
  TcpStats stats_;
  uint8_t hdr_[kTcpMaxHdrLen];  // scratch for the segment being emitted
};

}  // namespace cw::dp::net
