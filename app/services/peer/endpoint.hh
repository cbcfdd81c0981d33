// One worker's QUIC endpoint for peer sessions (docs/cluster.md): ngtcp2 connections, fed the
// datagrams the worker received and writing what they send into an outbox the service copies
// into the worker's send batch. ngtcp2 does no I/O and reads no clock here: every call takes
// the worker's now (ns, monotonic; ngtcp2 timestamps are ns too), and each connection's next
// deadline (expiry) is for the service to put on the runtime's timer wheel. Owner-worker only.
//
// Connections sit in a fixed table sized at setup: one slot per configured peer this worker
// dials, then member_slots slots for peers given at run time (assign(), from etcd
// membership), together the client slots; then max_inbound slots for peers that dial it
// (server slots). The
// connection ids we issue name the slot: [0] worker, [1..2] slot, [3..4] the slot's
// generation, then random bytes, so a packet finds its connection without a map and a
// stale id (an old connection in a reused slot) finds none. Before the client learns our id
// it uses its own (the original destination id), matched by a scan of the handshaking slots.
//
// Each connection has kStreams bidirectional streams (kLocalStreams we open, the rest the
// peer opens) carrying frames (frame.hh). A stream's send side is a ring the frames are
// copied into; ngtcp2 keeps pointing at sent bytes until they are acknowledged, so ring space
// comes back on acknowledgement. The receive side is a buffer as large as the flow-control
// window we grant, so a peer can never overrun it; the window moves as frames are consumed.
//
// Memory: everything but ngtcp2's and GnuTLS's own per-connection state is allocated at
// setup. Per packet nothing is allocated here; ngtcp2 allocates internally (its frame chains
// and acknowledgement ranges) as it needs.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "app/services/peer/frame.hh"
#include "app/services/peer/tls.hh"
#include "dataplane/io.hh"

namespace cw::peer {

inline constexpr size_t kCidLen = 16;
inline constexpr size_t kMaxUdpPayload = 1452;  // NGTCP2_MAX_PMTUD_UDP_PAYLOAD_SIZE
inline constexpr unsigned kLocalStreams = 2;    // streams a connection opens itself
inline constexpr unsigned kRemoteStreams = 2;   // streams the peer may have open at once
inline constexpr unsigned kStreams = kLocalStreams + kRemoteStreams;
// Receive window per stream, by default and at least (EndpointConfig::stream_window), and
// the send ring that goes with it: the power of two at least twice the window.
inline constexpr uint32_t kStreamRxBytes = 32 * 1024;
inline constexpr uint32_t kMaxStreamWindow = 16 * 1024 * 1024;
inline constexpr uint32_t kOutboxPackets = 256;
// RFC 9221 datagrams: the largest we send or take (it fits a 1200-byte packet, QUIC's
// smallest, with header, frame and tag, so it never waits for path MTU discovery), and how
// many wait to be sent per connection and to be drained per endpoint (a full queue refuses
// or drops, counted).
inline constexpr uint32_t kMaxDatagram = 1100;
inline constexpr uint32_t kDatagramQueue = 64;
inline constexpr uint32_t kDatagramInbox = 64;
inline constexpr uint32_t kMaxInbound = 1024;
inline constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
static_assert(kStreamRxBytes >= kFrameHeader + kMaxFrameBody);

// Which of the service's two sockets a datagram came in on or leaves by: the shared server
// port (peers dial it) or this worker's own client port (we dial from it, so the answers
// come back to this worker).
enum class Via : uint8_t { server, client };

// What the endpoint counts; the service exports them (its kCounters, same order).
enum EpCounter : uint32_t {
  kSessionsUp,        // handshakes completed (both roles)
  kSessionsClosed,    // sessions that ended after being up
  kHandshakeFailed,   // handshakes that failed or timed out
  kPeerRefused,       // of those: the peer's certificate was missing or not the CA's
  kAcceptNoSlot,      // new inbound connections refused for want of a slot
  kDropGarbage,       // datagrams that are not QUIC (ngtcp2 could not decode them)
  kDropUnknown,       // QUIC packets for no connection of this worker (no new Initial)
  kDropWrongWorker,   // packets naming a connection of another worker (not forwarded yet)
  kDropVersion,       // packets of a QUIC version we do not speak
  kOutboxFull,        // times a connection had more to send than the outbox held
  kFramesIn,          // frames received
  kFramesOut,         // frames queued to send
  kBadFrames,         // malformed frames (the connection is closed)
  kDatagramsIn,       // RFC 9221 datagrams received
  kDatagramsOut,      // datagrams sent
  kDatagramsDropped,  // datagrams not sent (the peer takes none) or not kept (inbox full)
  kSessionsOpen,      // gauge: connections up now
  kPeerMismatch,      // of kPeerRefused: a member's certificate not the one it registered
  kEpCounters
};

struct EndpointConfig {
  unsigned worker = 0;
  uint32_t max_inbound = 16;       // server slots
  std::vector<dp::Endpoint> dial;  // client slots: the peers this worker connects to
  uint32_t member_slots = 0;       // more client slots, given a peer at run time (assign)
  dp::Endpoint server_local{};     // where the server socket is bound
  dp::Endpoint client_local{};     // where this worker's client socket is bound
  uint64_t idle_timeout_ns = 30'000'000'000;
  uint64_t keepalive_ns = 5'000'000'000;
  uint64_t handshake_timeout_ns = 10'000'000'000;
  uint64_t retry_ns = 1'000'000'000;  // a client slot redials this long after it closed
  // Receive window and buffer per stream (kStreamRxBytes .. kMaxStreamWindow); a session
  // can have this much per stream in flight, so bulk goodput is at most the window per
  // round trip. Memory per slot: kStreams x (window + send ring).
  uint32_t stream_window = kStreamRxBytes;
};

struct OutPacket {
  Via via = Via::server;
  dp::Endpoint to{};
  uint16_t len = 0;
  uint8_t data[kMaxUdpPayload];
};

enum class SlotState : uint8_t { free, handshake, open, closing, waiting };

class QuicEndpoint {
 public:
  // tls must outlive the endpoint. Setup: allocates every slot's buffers.
  QuicEndpoint(const EndpointConfig& cfg, const TlsContext* tls);
  ~QuicEndpoint();
  QuicEndpoint(const QuicEndpoint&) = delete;
  QuicEndpoint& operator=(const QuicEndpoint&) = delete;

  // Client slots start dialing.
  void start(uint64_t now);
  // One received datagram. Anything that is not a packet of ours is counted and dropped.
  void on_datagram(Via via, dp::Endpoint from, const uint8_t* data, size_t len, uint64_t now);
  // The slot's deadline (expiry(slot)) has come.
  void on_expiry(uint32_t slot, uint64_t now);
  // Writes what touched connections have to send into the outbox (until it is full; then
  // pending() stays true). Call after the calls above, then drain outbox().
  void flush(uint64_t now);
  bool pending() const { return !touched_.empty(); }
  std::span<const OutPacket> outbox() const { return {out_.data(), out_n_}; }
  void clear_outbox() { out_n_ = 0; }
  // Slots whose deadline may have moved since the last take (each once).
  std::span<const uint32_t> timer_changes() const { return timer_changes_; }
  void clear_timer_changes();
  uint64_t expiry(uint32_t slot) const;

  // Streams of an open connection. open_stream: a local stream index, or -1 (none free or
  // the peer's stream limit). send_frame copies the frame into the stream's ring: false when
  // it does not fit now (room comes back as the peer acknowledges).
  int open_stream(uint32_t slot);
  bool send_frame(uint32_t slot, unsigned stream, const FrameHeader& h,
                  std::span<const uint8_t> body);
  uint32_t tx_room(uint32_t slot, unsigned stream) const;
  // Calls f(slot, stream, header, body) -> bool for every whole frame received, in order per
  // stream; f returns false to leave the frame (and the rest of its stream) for a later
  // call, e.g. when its reply does not fit. A malformed frame closes the connection.
  template <class F>
  void drain_frames(F&& f);
  // RFC 9221 datagrams (best effort: lost packets are not resent). send_datagram queues one
  // (at most kMaxDatagram bytes) for the next flush: false when the connection's queue is
  // full or it is not open. drain_datagrams calls f(slot, bytes) for each one received.
  bool send_datagram(uint32_t slot, std::span<const uint8_t> data);
  template <class F>
  void drain_datagrams(F&& f);
  // Closes a connection with an application error (sends CONNECTION_CLOSE).
  void close(uint32_t slot, uint64_t app_error);

  // Member slots (member_slot(0) .. member_slot(member_slots - 1)). assign gives an idle one
  // (assignable) a peer to dial now, whose certificate must have fingerprint pin (else the
  // handshake fails, counted kPeerRefused and kPeerMismatch); it is redialed after `retry`
  // like a configured peer until unassign, which closes its session and stops dialing. The
  // slot is assignable again once the close is done (state free).
  bool assign(uint32_t slot, dp::Endpoint to, const Fingerprint& pin, uint64_t now);
  void unassign(uint32_t slot);
  bool assignable(uint32_t slot) const {
    const Conn& c = *slots_[slot];
    return !c.assigned && c.state == SlotState::free;
  }
  uint32_t member_slot(uint32_t i) const { return uint32_t(cfg_.dial.size()) + i; }
  // The certificate fingerprint of an open session's peer; nullptr if it is not open.
  const Fingerprint* peer_fingerprint(uint32_t slot) const {
    const Conn& c = *slots_[slot];
    return c.state == SlotState::open ? &c.link.peer : nullptr;
  }

  uint32_t slots() const { return uint32_t(slots_.size()); }
  uint32_t client_slots() const { return uint32_t(cfg_.dial.size()) + cfg_.member_slots; }
  SlotState state(uint32_t slot) const { return slots_[slot]->state; }
  bool is_open(uint32_t slot) const { return slots_[slot]->state == SlotState::open; }
  // Bumped each time the slot starts a new connection (a redial is a new session).
  uint32_t session(uint32_t slot) const { return slots_[slot]->sessions; }
  dp::Endpoint remote(uint32_t slot) const { return slots_[slot]->remote; }
  const std::array<uint64_t, kEpCounters>& counters() const { return counts_; }

 private:
  struct Stream {
    int64_t id = -1;  // -1: unused
    // Send ring: [acked, sent) is in flight (ngtcp2 points at it), [sent, written) unsent.
    uint64_t acked = 0, sent = 0, written = 0;
    bool blocked = false;    // flow control: skip for the rest of this flush
    bool rx_queued = false;  // on rx_ready_
    uint32_t rx_len = 0;     // bytes received, not yet consumed as frames
    std::unique_ptr<uint8_t[]> tx, rx;
  };
  struct Conn {
    TlsLink link;  // first: GnuTLS's session pointer is &link.ref
    QuicEndpoint* ep = nullptr;
    uint32_t index = 0;
    uint16_t gen = 0;
    uint32_t sessions = 0;
    SlotState state = SlotState::free;
    bool client = false;
    bool assigned = false;  // client slots: has a peer to dial
    bool touched = false;
    bool timer_changed = false;
    Via via = Via::server;
    dp::Endpoint remote{};
    ngtcp2_cid odcid{};          // server: the client's original destination id, until it is open
    uint64_t deadline = kNever;  // closing: when the slot is freed; waiting: when it redials
    ngtcp2_conn* conn = nullptr;
    gnutls_session_t tls = nullptr;
    ngtcp2_connection_close_error last_error{};
    std::array<Stream, kStreams> streams;
    // Datagrams waiting to be sent: kDatagramQueue slots of kMaxDatagram bytes.
    std::unique_ptr<uint8_t[]> dgrams;
    std::array<uint16_t, kDatagramQueue> dgram_len{};
    uint32_t dgram_head = 0, dgram_count = 0;
  };
  struct InDatagram {
    uint32_t slot = 0;
    uint16_t len = 0;
    uint8_t data[kMaxDatagram];
  };

  friend struct Callbacks;

  static void reset(Stream& s);
  Conn* find(const ngtcp2_version_cid& vc);
  void accept(dp::Endpoint from, const uint8_t* data, size_t len, uint64_t now);
  bool dial(Conn& c, uint64_t now);
  bool init_conn(Conn& c, bool client, const ngtcp2_cid* dcid, const ngtcp2_cid* scid,
                 uint32_t version, uint64_t now);
  void make_cid(const Conn& c, ngtcp2_cid& cid) const;
  void read(Conn& c, const uint8_t* data, size_t len, uint64_t now);
  void fail(Conn& c, int liberr, uint64_t now);
  void enter_closing(Conn& c, uint64_t now, bool send_close);
  void release(Conn& c, uint64_t now);
  void write_conn(Conn& c, uint64_t now);
  // One packet with the connection's next queued datagram, if any: -1 none queued (or the
  // queue was emptied of ones the peer cannot take), 0 congestion-limited, 1 went on (a
  // packet may have been completed), 2 the connection failed.
  int write_datagram(Conn& c, OutPacket& p, uint64_t now);
  void touch(Conn& c);
  void timer_changed(Conn& c);
  ngtcp2_path path_of(const Conn& c, sockaddr_in& local, sockaddr_in& remote) const;
  Stream* stream_by_id(Conn& c, int64_t id);
  void consumed(Conn& c, Stream& s, uint32_t n);
  void set_open_gauge();

  EndpointConfig cfg_;
  const TlsContext* tls_;
  std::vector<std::unique_ptr<Conn>> slots_;
  std::vector<uint32_t> touched_;        // slots to flush
  std::vector<uint32_t> timer_changes_;  // slots whose expiry may have moved
  std::vector<uint64_t> rx_ready_;       // slot << 8 | stream with frames to drain
  std::vector<uint64_t> rx_next_;        // drain_frames' second list (frames left for later)
  std::vector<OutPacket> out_;
  std::vector<InDatagram> dgram_in_;  // received, not yet drained (kDatagramInbox)
  uint32_t dgram_in_n_ = 0;
  uint32_t out_n_ = 0;
  uint64_t now_ = 0;                    // the latest time a call gave (close() takes none)
  uint32_t rx_bytes_ = kStreamRxBytes;  // each stream's receive buffer and window
  uint32_t tx_bytes_ = 0;               // each stream's send ring (a power of two)
  std::array<uint64_t, kEpCounters> counts_{};
};

template <class F>
void QuicEndpoint::drain_frames(F&& f) {
  // A stream left with a frame f did not take waits on rx_next_, tried again next call (and
  // meanwhile not queued twice: rx_queued stays set). Both lists hold each stream at most
  // once and were reserved for all of them at setup.
  for (size_t i = 0; i < rx_ready_.size(); ++i) {
    const uint32_t slot = uint32_t(rx_ready_[i] >> 8);
    const unsigned st = unsigned(rx_ready_[i] & 0xff);
    Conn& c = *slots_[slot];
    Stream& s = c.streams[st];
    s.rx_queued = false;
    if (c.state != SlotState::open || s.id < 0) continue;
    uint32_t used = 0;
    bool left = false;
    for (;;) {
      const std::span<const uint8_t> in(s.rx.get() + used, s.rx_len - used);
      FrameHeader h;
      const FrameStatus fs = parse_frame(in, h);
      if (fs == FrameStatus::partial) break;
      if (fs == FrameStatus::bad) {
        ++counts_[kBadFrames];
        close(slot, 1);
        break;
      }
      if (!f(slot, st, h, in.subspan(kFrameHeader, h.len))) {
        left = true;
        break;
      }
      ++counts_[kFramesIn];
      used += kFrameHeader + h.len;
    }
    if (c.state != SlotState::open) continue;
    if (used) consumed(c, s, used);
    if (left) {
      s.rx_queued = true;
      rx_next_.push_back(rx_ready_[i]);
    }
  }
  rx_ready_.swap(rx_next_);
  rx_next_.clear();
}

template <class F>
void QuicEndpoint::drain_datagrams(F&& f) {
  for (uint32_t i = 0; i < dgram_in_n_; ++i) {
    const InDatagram& d = dgram_in_[i];
    if (slots_[d.slot]->state == SlotState::open) f(d.slot, std::span(d.data, d.len));
  }
  dgram_in_n_ = 0;
}

}  // namespace cw::peer
