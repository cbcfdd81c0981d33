// One worker's QUIC endpoint (endpoint.hh).
#include "app/services/peer/endpoint.hh"

#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace cw::peer {

namespace {

sockaddr_in to_sockaddr(dp::Endpoint ep) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = ep.addr_be;
  sa.sin_port = ep.port_be;
  return sa;
}

void random_bytes(uint8_t* p, size_t n) {
  (void)gnutls_rnd(GNUTLS_RND_NONCE, p, n);
}

// TLS alerts (RFC 8446 6.2) that say the peer's certificate was the problem: missing
// (certificate_required) or not acceptable.
bool certificate_alert(uint8_t a) {
  return (a >= 42 && a <= 46) || a == 48 || a == 116;
}

}  // namespace

// ngtcp2's callbacks: user_data is the Conn, stream_user_data unused (streams are found by
// id among the connection's few).
struct Callbacks {
  using Conn = QuicEndpoint::Conn;
  using Stream = QuicEndpoint::Stream;
  using InDatagram = QuicEndpoint::InDatagram;

  static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) {
    return static_cast<Conn*>(ref->user_data)->conn;
  }

  static void rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) { random_bytes(dest, len); }

  static int new_cid(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (cidlen != kCidLen) return NGTCP2_ERR_CALLBACK_FAILURE;
    c->ep->make_cid(*c, *cid);
    random_bytes(token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
  }

  // A session is up once the handshake is confirmed: for a server that is when it completes,
  // for a client when the server's HANDSHAKE_DONE arrives, i.e. after the server accepted
  // the client's certificate (a client completes before the server has checked it).
  static int handshake_completed(ngtcp2_conn*, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (c->client) return 0;
    return up(c);
  }
  static int handshake_confirmed(ngtcp2_conn*, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (!c->client) return 0;
    return up(c);
  }
  static int up(Conn* c) {
    c->state = SlotState::open;
    ++c->ep->counts_[kSessionsUp];
    c->ep->set_open_gauge();
    return 0;
  }

  static int stream_open(ngtcp2_conn*, int64_t id, void* user) {
    auto* c = static_cast<Conn*>(user);
    if (!ngtcp2_is_bidi_stream(id)) return 0;  // we grant no unidirectional streams
    for (unsigned i = kLocalStreams; i < kStreams; ++i)
      if (c->streams[i].id < 0) {
        c->streams[i].id = id;
        return 0;
      }
    // ngtcp2 holds the peer to kRemoteStreams open streams, and we free one per close.
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }

  static int recv_stream_data(ngtcp2_conn*, uint32_t, int64_t id, uint64_t, const uint8_t* data,
                              size_t len, void* user, void*) {
    auto* c = static_cast<Conn*>(user);
    Stream* s = c->ep->stream_by_id(*c, id);
    // Flow control keeps a peer within the window, which is the buffer's size.
    if (!s || len > c->ep->rx_bytes_ - s->rx_len) return NGTCP2_ERR_CALLBACK_FAILURE;
    std::memcpy(s->rx.get() + s->rx_len, data, len);
    s->rx_len += uint32_t(len);
    if (len && !s->rx_queued) {
      s->rx_queued = true;
      c->ep->rx_ready_.push_back(uint64_t{c->index} << 8 | uint64_t(s - c->streams.data()));
    }
    return 0;
  }

  static int acked(ngtcp2_conn*, int64_t id, uint64_t offset, uint64_t len, void* user, void*) {
    auto* c = static_cast<Conn*>(user);
    Stream* s = c->ep->stream_by_id(*c, id);
    if (!s) return 0;
    s->acked = std::max(s->acked, offset + len);
    // Ring room came back: frames left for want of it may go now.
    if (s->rx_len && !s->rx_queued) {
      s->rx_queued = true;
      c->ep->rx_ready_.push_back(uint64_t{c->index} << 8 | uint64_t(s - c->streams.data()));
    }
    return 0;
  }

  static int stream_close(ngtcp2_conn* conn, uint32_t, int64_t id, uint64_t, void* user, void*) {
    auto* c = static_cast<Conn*>(user);
    Stream* s = c->ep->stream_by_id(*c, id);
    if (!s) return 0;
    const bool remote = !ngtcp2_conn_is_local_stream(conn, id);
    QuicEndpoint::reset(*s);
    if (remote) ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    return 0;
  }

  static int extend_max_stream_data(ngtcp2_conn*, int64_t id, uint64_t, void* user, void*) {
    auto* c = static_cast<Conn*>(user);
    if (Stream* s = c->ep->stream_by_id(*c, id)) s->blocked = false;
    return 0;
  }

  static int recv_datagram(ngtcp2_conn*, uint32_t, const uint8_t* data, size_t len, void* user) {
    auto* c = static_cast<Conn*>(user);
    QuicEndpoint& ep = *c->ep;
    ++ep.counts_[kDatagramsIn];
    if (ep.dgram_in_n_ == kDatagramInbox || len > kMaxDatagram) {
      ++ep.counts_[kDatagramsDropped];
      return 0;
    }
    InDatagram& d = ep.dgram_in_[ep.dgram_in_n_++];
    d.slot = c->index;
    d.len = uint16_t(len);
    std::memcpy(d.data, data, len);
    return 0;
  }

  static ngtcp2_callbacks make(bool client) {
    ngtcp2_callbacks cb{};
    if (client) {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    } else {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.handshake_completed = handshake_completed;
    cb.handshake_confirmed = handshake_confirmed;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.recv_stream_data = recv_stream_data;
    cb.acked_stream_data_offset = acked;
    cb.stream_open = stream_open;
    cb.stream_close = stream_close;
    cb.rand = rand;
    cb.get_new_connection_id = new_cid;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.extend_max_stream_data = extend_max_stream_data;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.recv_datagram = recv_datagram;
    return cb;
  }
};

QuicEndpoint::QuicEndpoint(const EndpointConfig& cfg, const TlsContext* tls)
    : cfg_(cfg), tls_(tls) {
  cfg_.max_inbound = std::min(cfg_.max_inbound, kMaxInbound);
  rx_bytes_ = std::clamp(cfg_.stream_window, kStreamRxBytes, kMaxStreamWindow);
  tx_bytes_ = std::bit_ceil(2 * rx_bytes_);
  const size_t n = client_slots() + size_t{cfg_.max_inbound};
  slots_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto c = std::make_unique<Conn>();
    c->ep = this;
    c->index = uint32_t(i);
    c->client = i < client_slots();
    c->via = c->client ? Via::client : Via::server;
    c->assigned = i < cfg_.dial.size();
    if (c->assigned) c->remote = cfg_.dial[i];
    c->link.ref.get_conn = Callbacks::get_conn;
    c->link.ref.user_data = c.get();
    for (Stream& s : c->streams) {
      s.tx = std::make_unique<uint8_t[]>(tx_bytes_);
      s.rx = std::make_unique<uint8_t[]>(rx_bytes_);
    }
    c->dgrams = std::make_unique<uint8_t[]>(size_t{kDatagramQueue} * kMaxDatagram);
    slots_.push_back(std::move(c));
  }
  touched_.reserve(n);
  timer_changes_.reserve(n);
  rx_ready_.reserve(n * kStreams);
  rx_next_.reserve(n * kStreams);
  out_.resize(kOutboxPackets);
  dgram_in_.resize(kDatagramInbox);
}

QuicEndpoint::~QuicEndpoint() {
  for (auto& c : slots_) {
    if (c->conn) ngtcp2_conn_del(c->conn);
    if (c->tls) gnutls_deinit(c->tls);
  }
}

void QuicEndpoint::start(uint64_t now) {
  now_ = now;
  for (uint32_t i = 0; i < client_slots(); ++i)
    if (slots_[i]->state == SlotState::free && slots_[i]->assigned) dial(*slots_[i], now);
}

bool QuicEndpoint::assign(uint32_t slot, dp::Endpoint to, const Fingerprint& pin, uint64_t now) {
  if (slot < cfg_.dial.size() || slot >= client_slots() || !assignable(slot)) return false;
  Conn& c = *slots_[slot];
  c.assigned = true;
  c.remote = to;
  c.link.pinned = true;
  c.link.pin = pin;
  now_ = now;
  dial(c, now);
  return true;
}

void QuicEndpoint::unassign(uint32_t slot) {
  if (slot < cfg_.dial.size() || slot >= client_slots()) return;
  Conn& c = *slots_[slot];
  c.assigned = false;
  if (c.state == SlotState::waiting) {
    c.state = SlotState::free;
    c.deadline = kNever;
    timer_changed(c);
  } else {
    close(slot, 0);  // a session (or handshake) ends; release() then frees the slot
  }
}

void QuicEndpoint::reset(Stream& s) {
  const bool queued = s.rx_queued;  // an entry on a ready list stays valid (it is skipped)
  s.id = -1;
  s.acked = s.sent = s.written = 0;
  s.blocked = false;
  s.rx_len = 0;
  s.rx_queued = queued;
}

void QuicEndpoint::make_cid(const Conn& c, ngtcp2_cid& cid) const {
  cid.datalen = kCidLen;
  cid.data[0] = uint8_t(cfg_.worker);
  cid.data[1] = uint8_t(c.index >> 8);
  cid.data[2] = uint8_t(c.index);
  cid.data[3] = uint8_t(c.gen >> 8);
  cid.data[4] = uint8_t(c.gen);
  random_bytes(cid.data + 5, kCidLen - 5);
}

ngtcp2_path QuicEndpoint::path_of(const Conn& c, sockaddr_in& local, sockaddr_in& remote) const {
  local = to_sockaddr(c.via == Via::client ? cfg_.client_local : cfg_.server_local);
  remote = to_sockaddr(c.remote);
  ngtcp2_path p{};
  p.local.addr = reinterpret_cast<ngtcp2_sockaddr*>(&local);
  p.local.addrlen = sizeof local;
  p.remote.addr = reinterpret_cast<ngtcp2_sockaddr*>(&remote);
  p.remote.addrlen = sizeof remote;
  return p;
}

bool QuicEndpoint::init_conn(Conn& c, bool client, const ngtcp2_cid* dcid, const ngtcp2_cid* odcid,
                             uint32_t version, uint64_t now) {
  ++c.gen;
  ++c.sessions;
  ngtcp2_cid scid;
  make_cid(c, scid);
  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now;
  settings.max_tx_udp_payload_size = kMaxUdpPayload;
  settings.handshake_timeout = cfg_.handshake_timeout_ns;
  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = rx_bytes_;
  params.initial_max_stream_data_bidi_remote = rx_bytes_;
  params.initial_max_data = uint64_t{rx_bytes_} * kStreams;
  params.initial_max_streams_bidi = kRemoteStreams;
  params.initial_max_streams_uni = 0;
  params.max_idle_timeout = cfg_.idle_timeout_ns;
  params.active_connection_id_limit = 4;
  params.max_datagram_frame_size = kMaxDatagram + 3;  // the frame's type and length included
  sockaddr_in local, remote;
  const ngtcp2_path path = path_of(c, local, remote);
  const ngtcp2_callbacks cb = Callbacks::make(client);
  int rv;
  if (client) {
    rv = ngtcp2_conn_client_new(&c.conn, dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                                &params, nullptr, &c);
  } else {
    params.original_dcid = *odcid;
    params.stateless_reset_token_present = 1;
    random_bytes(params.stateless_reset_token, sizeof params.stateless_reset_token);
    rv = ngtcp2_conn_server_new(&c.conn, dcid, &scid, &path, version, &cb, &settings, &params,
                                nullptr, &c);
  }
  if (rv != 0) {
    c.conn = nullptr;
    return false;
  }
  c.tls = tls_->new_session(!client, &c.link);
  if (!c.tls) {
    ngtcp2_conn_del(c.conn);
    c.conn = nullptr;
    return false;
  }
  ngtcp2_conn_set_tls_native_handle(c.conn, c.tls);
  if (cfg_.keepalive_ns) ngtcp2_conn_set_keep_alive_timeout(c.conn, cfg_.keepalive_ns);
  c.link.verdict = CertVerdict::none;
  c.link.peer = {};
  ngtcp2_connection_close_error_default(&c.last_error);
  c.state = SlotState::handshake;
  c.deadline = kNever;
  for (Stream& s : c.streams) reset(s);
  c.dgram_head = c.dgram_count = 0;
  return true;
}

bool QuicEndpoint::dial(Conn& c, uint64_t now) {
  ngtcp2_cid dcid;
  dcid.datalen = 18;  // not kCidLen: a server's lookup never takes it for one of its own ids
  random_bytes(dcid.data, dcid.datalen);
  if (!init_conn(c, true, &dcid, nullptr, NGTCP2_PROTO_VER_V1, now)) {
    c.state = SlotState::waiting;
    c.deadline = now + cfg_.retry_ns;
    timer_changed(c);
    return false;
  }
  touch(c);
  return true;
}

QuicEndpoint::Conn* QuicEndpoint::find(const ngtcp2_version_cid& vc) {
  if (vc.dcidlen == kCidLen && vc.dcid[0] == uint8_t(cfg_.worker)) {
    const uint32_t slot = uint32_t(vc.dcid[1]) << 8 | vc.dcid[2];
    const uint16_t gen = uint16_t(vc.dcid[3] << 8 | vc.dcid[4]);
    if (slot < slots_.size()) {
      Conn& c = *slots_[slot];
      if (c.gen == gen && c.conn && c.state != SlotState::free && c.state != SlotState::waiting)
        return &c;
    }
  }
  // A client still using its original destination id (its Initial retransmitted, or sent
  // before our first answer reached it). Few slots handshake at once.
  for (uint32_t i = client_slots(); i < slots_.size(); ++i) {
    Conn& c = *slots_[i];
    if (c.state == SlotState::handshake && c.odcid.datalen == vc.dcidlen &&
        std::memcmp(c.odcid.data, vc.dcid, vc.dcidlen) == 0)
      return &c;
  }
  return nullptr;
}

void QuicEndpoint::on_datagram(Via via, dp::Endpoint from, const uint8_t* data, size_t len,
                               uint64_t now) {
  now_ = now;
  ngtcp2_version_cid vc;
  const int rv =
      len ? ngtcp2_pkt_decode_version_cid(&vc, data, len, kCidLen) : NGTCP2_ERR_INVALID_ARGUMENT;
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    ++counts_[kDropVersion];
    return;
  }
  if (rv != 0) {
    ++counts_[kDropGarbage];
    return;
  }
  Conn* c = find(vc);
  if (!c) {
    if (via == Via::server && vc.version != 0) return accept(from, data, len, now);
    const bool ours_elsewhere = vc.dcidlen == kCidLen && vc.dcid[0] != uint8_t(cfg_.worker);
    ++counts_[ours_elsewhere ? kDropWrongWorker : kDropUnknown];
    return;
  }
  if (c->state == SlotState::closing) return;  // waiting out the close; nothing to answer
  if (from != c->remote || via != c->via) {
    // No migration between peers: a packet on another path is not this connection's.
    ++counts_[kDropUnknown];
    return;
  }
  read(*c, data, len, now);
}

void QuicEndpoint::accept(dp::Endpoint from, const uint8_t* data, size_t len, uint64_t now) {
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0) {
    ++counts_[kDropUnknown];
    return;
  }
  Conn* c = nullptr;
  for (uint32_t i = client_slots(); i < slots_.size() && !c; ++i)
    if (slots_[i]->state == SlotState::free) c = slots_[i].get();
  if (!c) {
    ++counts_[kAcceptNoSlot];
    return;
  }
  c->remote = from;
  if (!init_conn(*c, false, &hd.scid, &hd.dcid, hd.version, now)) {
    ++counts_[kAcceptNoSlot];
    c->state = SlotState::free;
    return;
  }
  c->odcid = hd.dcid;
  read(*c, data, len, now);
}

void QuicEndpoint::read(Conn& c, const uint8_t* data, size_t len, uint64_t now) {
  sockaddr_in local, remote;
  const ngtcp2_path path = path_of(c, local, remote);
  ngtcp2_pkt_info pi{};
  const int r = ngtcp2_conn_read_pkt(c.conn, &path, &pi, data, len, now);
  touch(c);
  if (r != 0) fail(c, r, now);
}

void QuicEndpoint::fail(Conn& c, int liberr, uint64_t now) {
  if (c.state == SlotState::handshake) {
    ++counts_[kHandshakeFailed];
    if (c.link.verdict == CertVerdict::refused || c.link.verdict == CertVerdict::mismatch ||
        (liberr == NGTCP2_ERR_CRYPTO && certificate_alert(ngtcp2_conn_get_tls_alert(c.conn))))
      ++counts_[kPeerRefused];
    if (c.link.verdict == CertVerdict::mismatch) ++counts_[kPeerMismatch];
  }
  switch (liberr) {
    case NGTCP2_ERR_DRAINING:  // the peer closed: wait out the draining period silently
      return enter_closing(c, now, false);
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_IDLE_CLOSE:
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
      return release(c, now);
    case NGTCP2_ERR_CRYPTO:
      ngtcp2_connection_close_error_set_transport_error_tls_alert(
          &c.last_error, ngtcp2_conn_get_tls_alert(c.conn), nullptr, 0);
      break;
    default:
      ngtcp2_connection_close_error_set_transport_error_liberr(&c.last_error, liberr, nullptr, 0);
  }
  enter_closing(c, now, true);
}

void QuicEndpoint::close(uint32_t slot, uint64_t app_error) {
  Conn& c = *slots_[slot];
  if (c.state != SlotState::open && c.state != SlotState::handshake) return;
  ngtcp2_connection_close_error_set_application_error(&c.last_error, app_error, nullptr, 0);
  enter_closing(c, now_, true);
}

void QuicEndpoint::enter_closing(Conn& c, uint64_t now, bool send_close) {
  const bool was_up = c.state == SlotState::open;
  c.state = SlotState::closing;
  if (was_up) {
    ++counts_[kSessionsClosed];
    set_open_gauge();
  }
  // RFC 9000 10.2: the closing and draining periods last three PTOs.
  const uint64_t pto = c.conn ? ngtcp2_conn_get_pto(c.conn) : 0;
  c.deadline = now + 3 * pto;
  if (send_close && c.conn && out_n_ < kOutboxPackets &&
      !ngtcp2_conn_is_in_closing_period(c.conn) && !ngtcp2_conn_is_in_draining_period(c.conn)) {
    OutPacket& p = out_[out_n_];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c.conn, &ps.path, &pi, p.data,
                                                              sizeof p.data, &c.last_error, now);
    if (n > 0) {
      p.via = c.via;
      p.to = c.remote;
      p.len = uint16_t(n);
      ++out_n_;
    }
  }
  timer_changed(c);
}

void QuicEndpoint::release(Conn& c, uint64_t now) {
  if (c.state == SlotState::open) {
    ++counts_[kSessionsClosed];
    c.state = SlotState::free;
    set_open_gauge();
  }
  if (c.conn) ngtcp2_conn_del(c.conn);
  if (c.tls) gnutls_deinit(c.tls);
  c.conn = nullptr;
  c.tls = nullptr;
  c.odcid = ngtcp2_cid{};
  for (Stream& s : c.streams) reset(s);
  if (c.assigned) {
    c.state = SlotState::waiting;
    c.deadline = now + cfg_.retry_ns;
  } else {
    c.state = SlotState::free;
    c.deadline = kNever;
  }
  timer_changed(c);
}

void QuicEndpoint::on_expiry(uint32_t slot, uint64_t now) {
  now_ = now;
  Conn& c = *slots_[slot];
  switch (c.state) {
    case SlotState::free:
      return;
    case SlotState::waiting:
      if (now >= c.deadline) dial(c, now);
      return timer_changed(c);
    case SlotState::closing:
      if (now >= c.deadline) release(c, now);
      return timer_changed(c);
    case SlotState::handshake:
    case SlotState::open:
      break;
  }
  if (const int rv = ngtcp2_conn_handle_expiry(c.conn, now); rv != 0) return fail(c, rv, now);
  touch(c);
}

uint64_t QuicEndpoint::expiry(uint32_t slot) const {
  const Conn& c = *slots_[slot];
  switch (c.state) {
    case SlotState::free:
      return kNever;
    case SlotState::waiting:
    case SlotState::closing:
      return c.deadline;
    case SlotState::handshake:
    case SlotState::open:
      break;
  }
  return ngtcp2_conn_get_expiry(c.conn);
}

void QuicEndpoint::touch(Conn& c) {
  if (!c.touched) {
    c.touched = true;
    touched_.push_back(c.index);
  }
  timer_changed(c);
}

void QuicEndpoint::timer_changed(Conn& c) {
  if (!c.timer_changed) {
    c.timer_changed = true;
    timer_changes_.push_back(c.index);
  }
}

void QuicEndpoint::clear_timer_changes() {
  for (uint32_t i : timer_changes_) slots_[i]->timer_changed = false;
  timer_changes_.clear();
}

void QuicEndpoint::set_open_gauge() {
  uint64_t n = 0;
  for (const auto& c : slots_) n += c->state == SlotState::open;
  counts_[kSessionsOpen] = n;
}

void QuicEndpoint::flush(uint64_t now) {
  now_ = now;
  size_t done = 0;
  for (; done < touched_.size(); ++done) {
    if (out_n_ == kOutboxPackets) break;
    Conn& c = *slots_[touched_[done]];
    c.touched = false;
    if (c.state == SlotState::handshake || c.state == SlotState::open) write_conn(c, now);
  }
  // Connections not reached (the outbox filled) stay for the next flush, in order.
  touched_.erase(touched_.begin(), touched_.begin() + ptrdiff_t(done));
}

void QuicEndpoint::write_conn(Conn& c, uint64_t now) {
  unsigned next = 0;  // round robin over the streams with unsent bytes
  for (;;) {
    if (out_n_ == kOutboxPackets) {
      ++counts_[kOutboxFull];
      touch(c);  // the rest next flush
      break;
    }
    if (c.dgram_count) {
      const int d = write_datagram(c, out_[out_n_], now);
      if (d == 2) return;
      if (d == 0) break;
      if (d == 1) continue;
    }
    Stream* s = nullptr;
    for (unsigned k = 0; k < kStreams && !s; ++k) {
      Stream& t = c.streams[(next + k) % kStreams];
      if (t.id >= 0 && !t.blocked && t.sent < t.written) {
        s = &t;
        next = (next + k + 1) % kStreams;
      }
    }
    ngtcp2_vec v[2];
    size_t nv = 0;
    if (s) {
      // The unsent part of the ring, in at most two pieces.
      const uint64_t mask = tx_bytes_ - 1;
      const uint64_t from = s->sent & mask;
      const uint64_t n = s->written - s->sent;
      const uint64_t first = std::min(n, tx_bytes_ - from);
      v[nv++] = {s->tx.get() + from, size_t(first)};
      if (n > first) v[nv++] = {s->tx.get(), size_t(n - first)};
    }
    OutPacket& p = out_[out_n_];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize accepted = -1;
    const ngtcp2_ssize n =
        ngtcp2_conn_writev_stream(c.conn, &ps.path, &pi, p.data, sizeof p.data, &accepted,
                                  NGTCP2_WRITE_STREAM_FLAG_MORE, s ? s->id : -1, v, nv, now);
    if (n < 0) {
      if (n == NGTCP2_ERR_WRITE_MORE) {
        s->sent += uint64_t(accepted);
        continue;
      }
      if (s && (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
        s->blocked = true;
        continue;
      }
      fail(c, int(n), now);
      return;
    }
    if (s && accepted > 0) s->sent += uint64_t(accepted);
    if (n == 0) break;
    p.via = c.via;
    p.to = c.remote;
    p.len = uint16_t(n);
    ++out_n_;
  }
  for (Stream& t : c.streams) t.blocked = false;
  ngtcp2_conn_update_pkt_tx_time(c.conn, now);
}

// One datagram per packet (no FLAG_MORE): a packet is always complete when this returns.
int QuicEndpoint::write_datagram(Conn& c, OutPacket& p, uint64_t now) {
  while (c.dgram_count) {
    const uint32_t at = c.dgram_head % kDatagramQueue;
    const ngtcp2_vec v{c.dgrams.get() + size_t{at} * kMaxDatagram, c.dgram_len[at]};
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    int accepted = 0;
    const ngtcp2_ssize n =
        ngtcp2_conn_writev_datagram(c.conn, &ps.path, &pi, p.data, sizeof p.data, &accepted,
                                    NGTCP2_WRITE_DATAGRAM_FLAG_NONE, 0, &v, 1, now);
    if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
      // The peer takes no datagrams, or none this large: this one is dropped.
      ++counts_[kDatagramsDropped];
      ++c.dgram_head;
      --c.dgram_count;
      continue;
    }
    if (n < 0 && n != NGTCP2_ERR_WRITE_MORE) {
      fail(c, int(n), now);
      return 2;
    }
    if (accepted) {
      ++counts_[kDatagramsOut];
      ++c.dgram_head;
      --c.dgram_count;
    }
    if (n == NGTCP2_ERR_WRITE_MORE) return 1;
    if (n == 0) return 0;
    p.via = c.via;
    p.to = c.remote;
    p.len = uint16_t(n);
    ++out_n_;
    return 1;
  }
  return -1;
}

bool QuicEndpoint::send_datagram(uint32_t slot, std::span<const uint8_t> data) {
  Conn& c = *slots_[slot];
  if (c.state != SlotState::open || c.dgram_count == kDatagramQueue || data.size() > kMaxDatagram)
    return false;
  const uint32_t at = (c.dgram_head + c.dgram_count) % kDatagramQueue;
  std::memcpy(c.dgrams.get() + size_t{at} * kMaxDatagram, data.data(), data.size());
  c.dgram_len[at] = uint16_t(data.size());
  ++c.dgram_count;
  touch(c);
  return true;
}

QuicEndpoint::Stream* QuicEndpoint::stream_by_id(Conn& c, int64_t id) {
  for (Stream& s : c.streams)
    if (s.id == id) return &s;
  return nullptr;
}

int QuicEndpoint::open_stream(uint32_t slot) {
  Conn& c = *slots_[slot];
  if (c.state != SlotState::open) return -1;
  for (unsigned i = 0; i < kLocalStreams; ++i) {
    Stream& s = c.streams[i];
    if (s.id >= 0) continue;
    int64_t id = -1;
    if (ngtcp2_conn_open_bidi_stream(c.conn, &id, nullptr) != 0) return -1;
    reset(s);
    s.id = id;
    return int(i);
  }
  return -1;
}

uint32_t QuicEndpoint::tx_room(uint32_t slot, unsigned stream) const {
  const Stream& s = slots_[slot]->streams[stream];
  return tx_bytes_ - uint32_t(s.written - s.acked);
}

bool QuicEndpoint::send_frame(uint32_t slot, unsigned stream, const FrameHeader& h,
                              std::span<const uint8_t> body) {
  Conn& c = *slots_[slot];
  Stream& s = c.streams[stream];
  if (c.state != SlotState::open || s.id < 0 || body.size() != h.len || h.len > kMaxFrameBody)
    return false;
  if (tx_room(slot, stream) < kFrameHeader + h.len) return false;
  uint8_t hdr[kFrameHeader];
  write_frame_header(hdr, h);
  auto put = [&](const uint8_t* p, size_t n) {
    const uint64_t mask = tx_bytes_ - 1;
    const size_t at = size_t(s.written & mask);
    const size_t first = std::min(n, size_t(tx_bytes_) - at);
    std::memcpy(s.tx.get() + at, p, first);
    std::memcpy(s.tx.get(), p + first, n - first);
    s.written += n;
  };
  put(hdr, kFrameHeader);
  put(body.data(), body.size());
  ++counts_[kFramesOut];
  touch(c);
  return true;
}

void QuicEndpoint::consumed(Conn& c, Stream& s, uint32_t n) {
  std::memmove(s.rx.get(), s.rx.get() + n, s.rx_len - n);
  s.rx_len -= n;
  ngtcp2_conn_extend_max_stream_offset(c.conn, s.id, n);
  ngtcp2_conn_extend_max_offset(c.conn, n);
  touch(c);
}

}  // namespace cw::peer
