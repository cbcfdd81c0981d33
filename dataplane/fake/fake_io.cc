#include "dataplane/fake/fake_io.hh"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

// The fake checks the ownership rules in every build type (tests run release builds too).
#define FAKE_CHECK(cond)                                                                          \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "fake backend: rule broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace cw::dp {

Result<std::unique_ptr<FakeBackend>> FakeBackend::create(const IoConfig& cfg,
                                                         std::span<const SocketSpec> specs) {
  auto b = std::make_unique<FakeBackend>();
  b->cfg_ = cfg;
  uint16_t next_port = 40000;
  for (const auto& s : specs) {
    Endpoint ep = s.bind;
    if (ep.port_be == 0) ep.port_be = htons(next_port++);
    b->bound_.push_back(ep);
  }
  return b;
}

Result<std::unique_ptr<FakeWorker>> FakeBackend::open_worker(unsigned i) {
  return std::make_unique<FakeWorker>(i, cfg_, bound_.size());
}

void FakeWorker::inject_datagram(SocketId s, Endpoint from, std::span<const uint8_t> bytes) {
  Pending p{RxItem{RxKind::datagram, CloseReason::none, s, kNoConn, from, 0, nullptr},
            std::vector<uint8_t>(bytes.begin(), bytes.end())};
  rx_.push_back(std::move(p));
}

ConnId FakeWorker::new_conn(SocketId s, Endpoint peer) {
  uint32_t slot = 0;
  while (slot < conns_.size() && conns_[slot].open) ++slot;
  FAKE_CHECK(slot < cfg_.max_conns);
  if (slot == conns_.size()) {
    conns_.emplace_back();
    gen_.push_back(0);
  }
  conns_[slot] = Conn{s, peer, true, false, false, {}, {}};
  ++gen_[slot];
  counters_.conns_open.add();
  return (ConnId(gen_[slot]) << 24) | slot;
}

FakeWorker::Conn* FakeWorker::find(ConnId c) {
  const uint32_t slot = conn_slot(c);
  if (c == kNoConn || slot >= conns_.size() || gen_[slot] != (c >> 24) || !conns_[slot].open)
    return nullptr;
  return &conns_[slot];
}

bool FakeWorker::is_open(ConnId c) const {
  return const_cast<FakeWorker*>(this)->find(c) != nullptr;
}

ConnId FakeWorker::inject_open(SocketId s, Endpoint from) {
  if (!accepting_) return kNoConn;  // the listener is closed: the kernel refuses the connect
  const ConnId c = new_conn(s, from);
  counters_.conns_accepted.add();
  rx_.push_back({RxItem{RxKind::stream_open, CloseReason::none, s, c, from, 0, nullptr}, {}});
  return c;
}

void FakeWorker::inject_stream(ConnId c, std::span<const uint8_t> bytes) {
  Conn* k = find(c);
  FAKE_CHECK(k);
  rx_.push_back({RxItem{RxKind::stream_data, CloseReason::none, k->sock, c, k->peer, 0, nullptr},
                 std::vector<uint8_t>(bytes.begin(), bytes.end())});
}

void FakeWorker::closed(ConnId c, CloseReason r) {
  Conn* k = find(c);
  if (!k) return;
  k->open = false;
  counters_.conns_closed.add();
  counters_.conns_open.set(counters_.conns_open.get() - 1);
  rx_.push_back({RxItem{RxKind::stream_closed, r, k->sock, c, k->peer, 0, nullptr}, {}});
}

void FakeWorker::inject_peer_close(ConnId c) {
  closed(c, CloseReason::peer);
}

uint32_t FakeWorker::poll(RxItem* out, uint32_t n, int64_t timeout_ns) {
  FAKE_CHECK(res_ == Res::none && "poll() with an open reservation");
  counters_.polls.add();
  last_timeout_ = timeout_ns;
  delivered_.clear();  // the previous poll's data is released here, as in real backends
  uint32_t k = 0;
  for (auto at = rx_.begin(); k < n && at != rx_.end();) {
    if (at->item.kind == RxKind::stream_data) {
      const Conn* c = find(at->item.conn);
      if (c && c->paused) {  // held until resume(), in order
        ++at;
        continue;
      }
    }
    Pending p = std::move(*at);
    at = rx_.erase(at);
    delivered_.push_back(std::move(p.bytes));
    out[k] = p.item;
    out[k].data = delivered_.back().data();
    out[k].len = uint32_t(delivered_.back().size());
    if (out[k].kind == RxKind::datagram) {
      counters_.rx_datagrams.add();
      counters_.rx_bytes.add(out[k].len);
    } else if (out[k].kind == RxKind::stream_data) {
      counters_.rx_stream_bytes.add(out[k].len);
    }
    ++k;
  }
  return k;
}

uint8_t* FakeWorker::dgram_reserve(SocketId s, Endpoint to, uint32_t n) {
  FAKE_CHECK(res_ == Res::none && "one reservation at a time");
  if (committed_.size() >= tx_capacity_ || n > cfg_.max_datagram || s >= nsock_) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  scratch_.assign(n, 0xEE);
  res_ = Res::dgram;
  res_sock_ = s;
  res_to_ = to;
  res_len_ = n;
  return scratch_.data();
}

void FakeWorker::dgram_commit(uint32_t n) {
  FAKE_CHECK(res_ == Res::dgram && n <= res_len_);
  committed_.push_back(
      {res_sock_, res_to_, std::vector<uint8_t>(scratch_.begin(), scratch_.begin() + n)});
  res_ = Res::none;
}

uint8_t* FakeWorker::stream_reserve(ConnId c, uint32_t n) {
  FAKE_CHECK(res_ == Res::none && "one reservation at a time");
  Conn* k = find(c);
  if (!k) return nullptr;
  if (k->pending.size() + k->out.size() + n > cfg_.conn_out_limit) {
    counters_.conns_overflow.add();
    closed(c, CloseReason::overflow);
    return nullptr;
  }
  scratch_.assign(n, 0xEE);
  res_ = Res::stream;
  res_conn_ = c;
  res_len_ = n;
  return scratch_.data();
}

void FakeWorker::stream_commit(ConnId c, uint32_t n) {
  FAKE_CHECK(res_ == Res::stream && c == res_conn_ && n <= res_len_);
  res_ = Res::none;
  Conn* k = find(c);
  if (!k) return;
  k->pending.insert(k->pending.end(), scratch_.begin(), scratch_.begin() + n);
}

ConnId FakeWorker::connect(SocketId s, Endpoint to) {
  if (s >= nsock_) return kNoConn;
  const ConnId c = new_conn(s, to);
  connects_.push_back({c, to});
  return c;
}

void FakeWorker::complete_connect(ConnId c) {
  Conn* k = find(c);
  FAKE_CHECK(k);
  counters_.conns_connected.add();
  rx_.push_back(
      {RxItem{RxKind::stream_open, CloseReason::none, k->sock, c, k->peer, 0, nullptr}, {}});
}

void FakeWorker::close(ConnId c) {
  Conn* k = find(c);
  if (!k) return;
  k->out.insert(k->out.end(), k->pending.begin(), k->pending.end());  // queued output goes first
  k->pending.clear();
  closed(c, CloseReason::local);
}

void FakeWorker::pause(ConnId c) {
  if (Conn* k = find(c)) k->paused = true;
}

void FakeWorker::resume(ConnId c) {
  Conn* k = find(c);
  if (!k || !k->paused) return;
  k->paused = false;
  rx_.push_front(
      {RxItem{RxKind::stream_resumed, CloseReason::none, k->sock, c, k->peer, 0, nullptr}, {}});
}

bool FakeWorker::is_paused(ConnId c) {
  Conn* k = find(c);
  return k && k->paused;
}

uint32_t FakeWorker::queued(ConnId c) const {
  const Conn* k = find(c);
  return k ? uint32_t(k->pending.size() + k->out.size()) : 0;
}

void FakeWorker::notify_writable(ConnId c) {
  if (Conn* k = find(c)) {
    k->want_writable = true;
    check_writable(c);
  }
}

void FakeWorker::check_writable(ConnId c) {
  Conn* k = find(c);
  if (!k || !k->want_writable || queued(c) > cfg_.conn_low_water) return;
  k->want_writable = false;
  rx_.push_back(
      {RxItem{RxKind::stream_writable, CloseReason::none, k->sock, c, k->peer, 0, nullptr}, {}});
}

void FakeWorker::flush() {
  FAKE_CHECK(res_ == Res::none && "flush() with an open reservation");
  for (auto& d : committed_) {
    counters_.tx_datagrams.add();
    counters_.tx_bytes.add(d.bytes.size());
    sent_.push_back(std::move(d));
  }
  committed_.clear();
  for (auto& k : conns_) {
    if (k.pending.empty()) continue;
    counters_.tx_stream_bytes.add(k.pending.size());
    k.out.insert(k.out.end(), k.pending.begin(), k.pending.end());
    k.pending.clear();
  }
}

std::vector<FakeWorker::SentDatagram> FakeWorker::take_sent() {
  return std::exchange(sent_, {});
}

std::vector<uint8_t> FakeWorker::take_stream_out(ConnId c) {
  const uint32_t slot = conn_slot(c);
  if (slot >= conns_.size() || gen_[slot] != (c >> 24)) return {};
  auto out = std::exchange(conns_[slot].out, {});
  check_writable(c);
  return out;
}

std::vector<std::pair<ConnId, Endpoint>> FakeWorker::take_connects() {
  return std::exchange(connects_, {});
}

}  // namespace cw::dp
