// The peer API for services (docs/cluster.md#the-peer-api): request/response between a
// service on this node and the same channel's service on a peer node, over the sessions of
// this worker's QuicEndpoint. Owner-worker only; one Api per endpoint, owned by the peer
// service, reached by the other services of its worker through local_api() (api_local.hh).
//
// A service opens a channel (a u16, not 0: echo) once, then
//   - request(slot, ch, body, cookie, now) sends a request on the session held in `slot`;
//     exactly one event comes back for it: its response, a timeout, the peer down, or
//     refused (the peer has no such channel);
//   - poll(ch, f) hands it those events and the requests peers sent on its channel;
//     respond(to, body) answers one of those (in any order: responses carry the request's
//     id, so nothing waits for an earlier answer);
//   - state(slot) says whether the peer is up, suspect (a request to it timed out and
//     nothing came back since) or down (no session).
// Backpressure: request/respond return Send::wait when the stream's send ring or the
// channel's pending table is full (retry after the next poll); a channel whose inbox is full
// leaves frames on their stream, so QUIC flow control slows the sender.
//
// Wire (inside a frame of channel ch, frame.hh): a request's body is [id u32 BE][payload];
// a response's is [id u32 BE][status u8][payload]. Requests go on the session's first local
// stream the Api opens; responses come back on the stream the request arrived on.
//
// Memory: every table and ring is allocated when the Api or a channel is made (setup); per
// message one copy into the channel's inbox, one into the send ring. Timeouts: one per Api
// (timeout_ns), so each channel's live requests, kept in send order, are also in deadline
// order and tick() only looks at the oldest.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "app/services/peer/endpoint.hh"
#include "app/services/peer/frame.hh"

namespace cw::peer {

inline constexpr uint32_t kApiRequestHeader = 4;   // id
inline constexpr uint32_t kApiResponseHeader = 5;  // id, status
inline constexpr uint32_t kMaxApiBody = kMaxFrameBody - kApiResponseHeader;
inline constexpr uint32_t kMaxChannels = 8;  // opened per Api

enum class PeerState : uint8_t { down, suspect, up };
// What became of a request or respond call.
enum class Send : uint8_t {
  ok,
  wait,       // no room now (send ring, pending table, or no stream yet): try again later
  down,       // no session in that slot (or, for respond, not the one the request came on)
  too_large,  // body above kMaxApiBody
  no_channel  // the channel was not opened
};
enum class Event : uint8_t {
  request,   // a peer's request on this channel: answer with respond(msg.to, ...)
  response,  // the answer to request(cookie)
  timeout,   // no answer within timeout_ns (a late one is dropped, counted)
  down,      // the session ended before the answer came
  refused,   // the peer has no service on this channel
};
// A response's status byte.
enum class ApiStatus : uint8_t { ok = 0, no_channel = 1 };

// Where a request came from: what respond() needs to answer it.
struct ReplyTo {
  uint32_t slot = 0;
  uint32_t session = 0;
  uint32_t id = 0;
  uint8_t stream = 0;
};

struct ApiMessage {
  Event event = Event::request;
  uint32_t slot = 0;              // the session's slot (the peer)
  uint64_t cookie = 0;            // events of a request we sent: what request() was given
  ReplyTo to{};                   // Event::request: where the answer goes
  std::span<const uint8_t> body;  // request or response payload; valid during the call
};

// Parses an Api frame's body (pure; fuzzed through the Api, tests/fuzz/peer_api_fuzz.cc).
// False: too short (a malformed frame, counted by the caller).
bool parse_api_request(std::span<const uint8_t> body, uint32_t& id,
                       std::span<const uint8_t>& payload);
bool parse_api_response(std::span<const uint8_t> body, uint32_t& id, ApiStatus& status,
                        std::span<const uint8_t>& payload);

enum ApiCounter : uint32_t {
  kApiRequests,      // requests sent
  kApiResponses,     // responses to them received
  kApiTimeouts,      // requests that timed out
  kApiDown,          // requests failed because their session ended
  kApiRefused,       // requests the peer refused (no such channel there)
  kApiServed,        // peers' requests handed to a channel
  kApiAnswered,      // responses sent
  kApiWait,          // request/respond calls told to wait (backpressure)
  kApiLate,          // responses for no pending request (timed out, or unknown id)
  kApiBad,           // malformed Api frames (dropped)
  kApiNoChannel,     // peers' requests for a channel nobody opened here (refused)
  kApiReplyDropped,  // respond() to a session that had ended
  kApiCounters
};

struct ApiConfig {
  uint64_t timeout_ns = 1'000'000'000;
  // The static membership, for services that place data on nodes (kv): this node's address
  // as its peers dial it, and the peers configured (the same list on every node).
  dp::Endpoint self{};
  std::vector<dp::Endpoint> peers;
};
struct ChannelConfig {
  uint32_t max_pending = 1024;       // own requests in flight at once (at most 65536)
  uint32_t inbox_bytes = 256 << 10;  // received requests and responses not yet polled
};

class Api {
 public:
  Api(QuicEndpoint& ep, const ApiConfig& cfg);
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Setup (allocates): a channel's tables; false for channel 0 or kChannelSink (the peer
  // service's own), one already open, or more than kMaxChannels.
  bool open_channel(uint16_t channel, const ChannelConfig& cfg = {});

  // The client slot that dials addr (a configured peer, or a member assigned to a slot), or
  // UINT32_MAX: this worker holds no dialed session to it (docs/cluster.md, which worker
  // dials whom). O(client slots): look it up once, not per request.
  uint32_t slot_to(dp::Endpoint addr) const;
  PeerState state(uint32_t slot) const;
  const ApiConfig& config() const { return cfg_; }
  // Whether request(slot, channel, n bytes) would be taken now (not Send::wait or an error).
  bool can_request(uint32_t slot, uint16_t channel, size_t n);
  Send request(uint32_t slot, uint16_t channel, std::span<const uint8_t> body, uint64_t cookie,
               uint64_t now);
  Send respond(const ReplyTo& to, uint16_t channel, std::span<const uint8_t> body,
               ApiStatus status = ApiStatus::ok);
  // Calls f(const ApiMessage&) for each event of the channel, at most max of them; returns
  // how many. Requests and responses in arrival order, then timeouts and downs.
  template <class F>
  uint32_t poll(uint16_t channel, F&& f, uint32_t max = UINT32_MAX);

  // The peer service's side. A frame of channel != 0 (kind and stream as received): false
  // leaves it on its stream for later (the channel's inbox or the send ring is full).
  bool on_frame(uint32_t slot, unsigned stream, const FrameHeader& h, std::span<const uint8_t> body,
                uint64_t now);
  // Whether on_frame left a frame since the last call (clears it): drain the endpoint's
  // frames again once the channel's user has polled.
  bool take_stalled() { return std::exchange(stalled_, false); }
  bool stalled() const { return stalled_; }
  // Timeouts due by now, and requests on sessions that ended. Call once per loop iteration.
  void tick(uint64_t now);
  // The earliest timeout pending (kNever: none).
  uint64_t next_deadline() const;
  const std::array<uint64_t, kApiCounters>& counters() const { return counts_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  enum class PState : uint8_t { free, live, failed };
  struct Pending {
    uint32_t id = 0;  // generation << 16 | index
    uint32_t slot = 0, session = 0;
    uint64_t cookie = 0;
    uint64_t deadline = 0;
    uint32_t prev = kNone, next = kNone;  // live list, in send (= deadline) order
    PState state = PState::free;
    Event failed = Event::timeout;
  };
  // One record in an inbox: this header, then len bytes, padded to 8.
  struct Rec {
    uint32_t len = 0;
    Event event = Event::request;
    uint8_t stream = 0;
    bool skip = false;  // the rest of the ring to its end is unused
    uint32_t slot = 0, session = 0, id = 0;
    uint64_t cookie = 0;
  };
  struct Channel {
    uint16_t number = 0;
    std::vector<Pending> pending;
    std::vector<uint32_t> free;  // indices of free pending entries
    uint32_t head = kNone, tail = kNone;
    std::vector<uint32_t> failed;  // ring of failed entries' indices (capacity max_pending)
    uint32_t failed_head = 0, failed_n = 0;
    std::unique_ptr<uint8_t[]> inbox;
    uint32_t inbox_cap = 0;
    uint64_t in_head = 0, in_tail = 0;  // byte offsets, ever increasing
  };
  struct SlotInfo {
    uint32_t session = 0;  // the session stream and suspect belong to (0: none seen)
    int stream = -1;       // the local stream requests go on
    bool suspect = false;
  };

  Channel* channel(uint16_t number);
  // The stream requests to slot go on (opened if need be), if one of n bytes fits now; -1 not.
  int request_stream(uint32_t slot, Channel& ch, size_t n);
  bool inbox_push(Channel& ch, const Rec& r, std::span<const uint8_t> body);
  void unlink(Channel& ch, uint32_t i);
  void fail(Channel& ch, uint32_t i, Event why);
  void release(Channel& ch, uint32_t i);
  bool on_request(uint32_t slot, unsigned stream, const FrameHeader& h,
                  std::span<const uint8_t> body);
  bool on_response(uint32_t slot, const FrameHeader& h, std::span<const uint8_t> body);
  bool send(uint32_t slot, unsigned stream, uint16_t channel, const uint8_t* head, uint32_t hn,
            std::span<const uint8_t> body);
  void sessions_changed();

  QuicEndpoint& ep_;
  ApiConfig cfg_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<SlotInfo> slots_;
  std::vector<uint8_t> frame_;  // one outgoing frame body, assembled (kMaxFrameBody)
  uint64_t seen_closed_ = 0;    // the endpoint's kSessionsClosed when last looked at
  bool stalled_ = false;
  std::array<uint64_t, kApiCounters> counts_{};
};

template <class F>
uint32_t Api::poll(uint16_t number, F&& f, uint32_t max) {
  Channel* ch = channel(number);
  if (!ch) return 0;
  uint32_t n = 0;
  while (n < max && ch->in_head != ch->in_tail) {
    const uint32_t at = uint32_t(ch->in_head % ch->inbox_cap);
    const uint32_t to_end = ch->inbox_cap - at;
    Rec r;
    if (to_end < sizeof(Rec) || (std::memcpy(&r, ch->inbox.get() + at, sizeof r), r.skip)) {
      ch->in_head += to_end;
      continue;
    }
    ApiMessage m;
    m.event = r.event;
    m.slot = r.slot;
    m.cookie = r.cookie;
    m.to = ReplyTo{r.slot, r.session, r.id, r.stream};
    m.body = std::span<const uint8_t>(ch->inbox.get() + at + sizeof(Rec), r.len);
    // Consumed first: f may call request/respond, which never touch this inbox.
    ch->in_head += (sizeof(Rec) + r.len + 7) & ~uint64_t{7};
    ++n;
    f(static_cast<const ApiMessage&>(m));
  }
  while (n < max && ch->failed_n) {
    const uint32_t i = ch->failed[ch->failed_head];
    ch->failed_head = (ch->failed_head + 1) % uint32_t(ch->failed.size());
    --ch->failed_n;
    const Pending p = ch->pending[i];
    release(*ch, i);
    ApiMessage m;
    m.event = p.failed;
    m.slot = p.slot;
    m.cookie = p.cookie;
    ++n;
    f(static_cast<const ApiMessage&>(m));
  }
  return n;
}

}  // namespace cw::peer
