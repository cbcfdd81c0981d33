#include "app/services/peer/api.hh"

#include <algorithm>

namespace cw::peer {
namespace {

uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

}  // namespace

bool parse_api_request(std::span<const uint8_t> body, uint32_t& id,
                       std::span<const uint8_t>& payload) {
  if (body.size() < kApiRequestHeader) return false;
  id = get32(body.data());
  payload = body.subspan(kApiRequestHeader);
  return true;
}

bool parse_api_response(std::span<const uint8_t> body, uint32_t& id, ApiStatus& status,
                        std::span<const uint8_t>& payload) {
  if (body.size() < kApiResponseHeader || body[4] > uint8_t(ApiStatus::no_channel)) return false;
  id = get32(body.data());
  status = ApiStatus(body[4]);
  payload = body.subspan(kApiResponseHeader);
  return true;
}

Api::Api(QuicEndpoint& ep, const ApiConfig& cfg)
    : ep_(ep), cfg_(cfg), slots_(ep.slots()), frame_(kMaxFrameBody) {
  channels_.reserve(kMaxChannels);
  seen_closed_ = ep_.counters()[kSessionsClosed];
}

bool Api::open_channel(uint16_t number, const ChannelConfig& cfg) {
  if (number == kChannelEcho || number == kChannelSink || channel(number) ||
      channels_.size() >= kMaxChannels)
    return false;
  auto ch = std::make_unique<Channel>();
  ch->number = number;
  const uint32_t n = std::clamp<uint32_t>(cfg.max_pending, 1, 1u << 16);
  ch->pending.resize(n);
  ch->free.reserve(n);
  for (uint32_t i = n; i-- > 0;) {
    ch->pending[i].id = i;
    ch->free.push_back(i);
  }
  ch->failed.resize(n);
  // Room for two of the largest records at least; records are 8-aligned.
  const uint32_t min_cap = 2 * uint32_t(sizeof(Rec) + kMaxFrameBody + 8);
  ch->inbox_cap = std::max(cfg.inbox_bytes, min_cap) & ~7u;
  ch->inbox = std::make_unique<uint8_t[]>(ch->inbox_cap);
  channels_.push_back(std::move(ch));
  return true;
}

Api::Channel* Api::channel(uint16_t number) {
  for (auto& c : channels_)
    if (c->number == number) return c.get();
  return nullptr;
}

uint32_t Api::slot_to(dp::Endpoint addr) const {
  for (uint32_t s = 0; s < ep_.client_slots(); ++s)
    if (ep_.remote(s) == addr && ep_.state(s) != SlotState::free) return s;
  return kNone;
}

PeerState Api::state(uint32_t slot) const {
  if (slot >= slots_.size() || !ep_.is_open(slot)) return PeerState::down;
  const SlotInfo& s = slots_[slot];
  return s.session == ep_.session(slot) && s.suspect ? PeerState::suspect : PeerState::up;
}

bool Api::send(uint32_t slot, unsigned stream, uint16_t channel, const uint8_t* head, uint32_t hn,
               std::span<const uint8_t> body) {
  std::memcpy(frame_.data(), head, hn);
  if (!body.empty()) std::memcpy(frame_.data() + hn, body.data(), body.size());
  const uint32_t len = hn + uint32_t(body.size());
  const FrameKind kind = hn == kApiRequestHeader ? FrameKind::request : FrameKind::response;
  return ep_.send_frame(slot, stream, {len, kind, channel}, std::span(frame_.data(), len));
}

Send Api::request(uint32_t slot, uint16_t number, std::span<const uint8_t> body, uint64_t cookie,
                  uint64_t now) {
  if (body.size() > kMaxApiBody) return Send::too_large;
  Channel* ch = channel(number);
  if (!ch) return Send::no_channel;
  if (slot >= slots_.size() || !ep_.is_open(slot)) return Send::down;
  const int stream = request_stream(slot, *ch, body.size());
  if (stream < 0) {
    ++counts_[kApiWait];
    return Send::wait;
  }
  const SlotInfo& s = slots_[slot];
  const uint32_t i = ch->free.back();
  Pending& p = ch->pending[i];
  uint8_t head[kApiRequestHeader];
  put32(head, p.id);
  if (!send(slot, unsigned(stream), number, head, sizeof head, body)) {
    ++counts_[kApiWait];
    return Send::wait;
  }
  ch->free.pop_back();
  p.slot = slot;
  p.session = s.session;
  p.cookie = cookie;
  p.deadline = now + cfg_.timeout_ns;
  p.state = PState::live;
  p.next = kNone;
  p.prev = ch->tail;
  if (ch->tail != kNone)
    ch->pending[ch->tail].next = i;
  else
    ch->head = i;
  ch->tail = i;
  ++counts_[kApiRequests];
  return Send::ok;
}

int Api::request_stream(uint32_t slot, Channel& ch, size_t n) {
  SlotInfo& s = slots_[slot];
  if (s.session != ep_.session(slot)) s = SlotInfo{ep_.session(slot)};
  if (s.stream < 0) s.stream = ep_.open_stream(slot);
  if (s.stream < 0 || ch.free.empty() ||
      ep_.tx_room(slot, unsigned(s.stream)) < kFrameHeader + kApiRequestHeader + n)
    return -1;
  return s.stream;
}

bool Api::can_request(uint32_t slot, uint16_t number, size_t n) {
  Channel* ch = channel(number);
  return ch && n <= kMaxApiBody && slot < slots_.size() && ep_.is_open(slot) &&
         request_stream(slot, *ch, n) >= 0;
}

Send Api::respond(const ReplyTo& to, uint16_t number, std::span<const uint8_t> body,
                  ApiStatus status) {
  if (body.size() > kMaxApiBody) return Send::too_large;
  if (to.slot >= slots_.size() || !ep_.is_open(to.slot) || ep_.session(to.slot) != to.session ||
      to.stream >= kStreams) {
    ++counts_[kApiReplyDropped];
    return Send::down;
  }
  uint8_t head[kApiResponseHeader];
  put32(head, to.id);
  head[4] = uint8_t(status);
  if (!send(to.slot, to.stream, number, head, sizeof head, body)) {
    ++counts_[kApiWait];
    return Send::wait;
  }
  ++counts_[kApiAnswered];
  return Send::ok;
}

bool Api::inbox_push(Channel& ch, const Rec& r, std::span<const uint8_t> body) {
  if (ch.in_head == ch.in_tail) ch.in_head = ch.in_tail = 0;
  const uint32_t need = uint32_t((sizeof(Rec) + body.size() + 7) & ~size_t{7});
  const uint32_t at = uint32_t(ch.in_tail % ch.inbox_cap);
  const uint32_t to_end = ch.inbox_cap - at;
  const uint64_t free = ch.inbox_cap - (ch.in_tail - ch.in_head);
  const uint32_t skip = to_end < need ? to_end : 0;  // wrap: the end of the ring is left
  if (free < uint64_t(skip) + need) return false;
  if (skip && skip >= sizeof(Rec)) {
    Rec s;
    s.skip = true;
    std::memcpy(ch.inbox.get() + at, &s, sizeof s);
  }
  ch.in_tail += skip;
  uint8_t* p = ch.inbox.get() + ch.in_tail % ch.inbox_cap;
  std::memcpy(p, &r, sizeof r);
  if (!body.empty()) std::memcpy(p + sizeof r, body.data(), body.size());
  ch.in_tail += need;
  return true;
}

bool Api::on_frame(uint32_t slot, unsigned stream, const FrameHeader& h,
                   std::span<const uint8_t> body, uint64_t) {
  if (slot >= slots_.size()) return true;
  const bool ours = stream < kLocalStreams;  // streams we opened carry our requests' answers
  if (!ours && h.kind == FrameKind::request) return on_request(slot, stream, h, body);
  if (ours && h.kind == FrameKind::response) return on_response(slot, h, body);
  ++counts_[kApiBad];
  return true;
}

bool Api::on_request(uint32_t slot, unsigned stream, const FrameHeader& h,
                     std::span<const uint8_t> body) {
  uint32_t id = 0;
  std::span<const uint8_t> payload;
  if (!parse_api_request(body, id, payload)) {
    ++counts_[kApiBad];
    return true;
  }
  Channel* ch = channel(h.channel);
  if (!ch) {
    // Refused at once; a full send ring leaves the request for later.
    uint8_t head[kApiResponseHeader];
    put32(head, id);
    head[4] = uint8_t(ApiStatus::no_channel);
    if (!send(slot, stream, h.channel, head, sizeof head, {})) {
      stalled_ = true;
      return false;
    }
    ++counts_[kApiNoChannel];
    return true;
  }
  Rec r;
  r.len = uint32_t(payload.size());
  r.event = Event::request;
  r.stream = uint8_t(stream);
  r.slot = slot;
  r.session = ep_.session(slot);
  r.id = id;
  if (!inbox_push(*ch, r, payload)) {
    stalled_ = true;
    return false;
  }
  ++counts_[kApiServed];
  return true;
}

bool Api::on_response(uint32_t slot, const FrameHeader& h, std::span<const uint8_t> body) {
  uint32_t id = 0;
  ApiStatus status{};
  std::span<const uint8_t> payload;
  if (!parse_api_response(body, id, status, payload)) {
    ++counts_[kApiBad];
    return true;
  }
  Channel* ch = channel(h.channel);
  const uint32_t i = id & 0xffff;
  Pending* p = ch && i < ch->pending.size() ? &ch->pending[i] : nullptr;
  if (!p || p->id != id || p->state != PState::live || p->slot != slot ||
      p->session != ep_.session(slot)) {
    ++counts_[kApiLate];
    slots_[slot].suspect = false;  // it answers, if late
    return true;
  }
  if (status == ApiStatus::ok) {
    Rec r;
    r.len = uint32_t(payload.size());
    r.event = Event::response;
    r.slot = slot;
    r.session = p->session;
    r.id = id;
    r.cookie = p->cookie;
    if (!inbox_push(*ch, r, payload)) {
      stalled_ = true;
      return false;
    }
    ++counts_[kApiResponses];
    unlink(*ch, i);
    release(*ch, i);
  } else {
    ++counts_[kApiRefused];
    fail(*ch, i, Event::refused);
  }
  slots_[slot].suspect = false;
  return true;
}

void Api::unlink(Channel& ch, uint32_t i) {
  Pending& p = ch.pending[i];
  if (p.prev != kNone)
    ch.pending[p.prev].next = p.next;
  else
    ch.head = p.next;
  if (p.next != kNone)
    ch.pending[p.next].prev = p.prev;
  else
    ch.tail = p.prev;
  p.prev = p.next = kNone;
}

// A live entry leaves the live list and waits in the failed ring for poll(), which frees it;
// failed entries and live ones together never exceed the table, so the ring cannot overflow.
void Api::fail(Channel& ch, uint32_t i, Event why) {
  unlink(ch, i);
  Pending& p = ch.pending[i];
  p.state = PState::failed;
  p.failed = why;
  const uint32_t cap = uint32_t(ch.failed.size());
  ch.failed[(ch.failed_head + ch.failed_n) % cap] = i;
  ++ch.failed_n;
}

void Api::release(Channel& ch, uint32_t i) {
  Pending& p = ch.pending[i];
  p.state = PState::free;
  p.id = (p.id & 0xffff) | ((((p.id >> 16) + 1) & 0xffff) << 16);  // a new generation
  ch.free.push_back(i);
}

void Api::tick(uint64_t now) {
  if (ep_.counters()[kSessionsClosed] != seen_closed_) {
    seen_closed_ = ep_.counters()[kSessionsClosed];
    sessions_changed();
  }
  for (auto& c : channels_) {
    Channel& ch = *c;
    while (ch.head != kNone && ch.pending[ch.head].deadline <= now) {
      const uint32_t i = ch.head;
      SlotInfo& s = slots_[ch.pending[i].slot];
      if (s.session == ch.pending[i].session) s.suspect = true;
      ++counts_[kApiTimeouts];
      fail(ch, i, Event::timeout);
    }
  }
}

// A session ended (rare): every live request on a slot whose session is not the one it went
// on fails as down.
void Api::sessions_changed() {
  for (auto& c : channels_) {
    Channel& ch = *c;
    for (uint32_t i = ch.head; i != kNone;) {
      const Pending& p = ch.pending[i];
      const uint32_t next = p.next;
      if (!ep_.is_open(p.slot) || ep_.session(p.slot) != p.session) {
        ++counts_[kApiDown];
        fail(ch, i, Event::down);
      }
      i = next;
    }
  }
  for (uint32_t s = 0; s < slots_.size(); ++s)
    if (!ep_.is_open(s) || ep_.session(s) != slots_[s].session) slots_[s] = SlotInfo{};
}

uint64_t Api::next_deadline() const {
  uint64_t t = kNever;
  for (const auto& c : channels_)
    if (c->head != kNone) t = std::min(t, c->pending[c->head].deadline);
  return t;
}

}  // namespace cw::peer
