// An in-memory backend for unit tests: tests inject datagrams and stream bytes, run the
// worker loop, and read back what the services sent. It follows the same ownership rules as
// the real backends (rx data valid until the next poll; one open reservation; nothing is
// "sent" before flush), and checks them with assertions so misuse fails tests loudly.
#pragma once

#include <cassert>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/io.hh"

namespace cw::dp {

class FakeBackend;

class FakeWorker {
 public:
  struct SentDatagram {
    SocketId sock;
    Endpoint to;
    std::vector<uint8_t> bytes;
  };

  FakeWorker(unsigned id, const IoConfig& cfg, size_t sockets)
      : id_(id), cfg_(cfg), nsock_(sockets) {}

  // ---- test side -------------------------------------------------------------------
  void inject_datagram(SocketId s, Endpoint from, std::span<const uint8_t> bytes);
  // A connection accepted on s; kNoConn (refused, nothing counted) after stop_accepting().
  ConnId inject_open(SocketId s, Endpoint from);
  void inject_stream(ConnId c, std::span<const uint8_t> bytes);
  void inject_peer_close(ConnId c);
  // Limit on bytes a connection may have queued (simulates a peer that stops reading).
  void set_conn_out_limit(uint32_t n) { cfg_.conn_out_limit = n; }
  void set_tx_capacity(size_t n) { tx_capacity_ = n; }  // datagrams per flush

  std::vector<SentDatagram> take_sent();  // datagrams flushed so far
  // Stream bytes flushed so far: the peer reads them (queued() drops by as many; a
  // stream_writable asked for is queued once it reaches conn_low_water).
  std::vector<uint8_t> take_stream_out(ConnId c);
  bool is_paused(ConnId c);
  bool is_open(ConnId c) const;
  std::vector<std::pair<ConnId, Endpoint>> take_connects();  // connect() calls made
  void complete_connect(ConnId c);                           // deliver stream_open

  // ---- WorkerIo --------------------------------------------------------------------
  uint32_t poll(RxItem* out, uint32_t n, int64_t timeout_ns);
  uint8_t* dgram_reserve(SocketId s, Endpoint to, uint32_t n);
  void dgram_commit(uint32_t n);
  uint8_t* stream_reserve(ConnId c, uint32_t n);
  void stream_commit(ConnId c, uint32_t n);
  ConnId connect(SocketId s, Endpoint to);
  void close(ConnId c);
  // Paused: injected stream_data for c stays queued (in order) until resume(), which
  // delivers stream_resumed first.
  void pause(ConnId c);
  void resume(ConnId c);
  uint32_t queued(ConnId c) const;
  void notify_writable(ConnId c);
  void flush();
  void wake() { woken_ = true; }
  void stop_accepting() { accepting_ = false; }
  bool accepting() const { return accepting_; }
  const IoCounters& counters() const { return counters_; }
  unsigned worker_id() const { return id_; }

  bool woken() const { return woken_; }
  int64_t last_timeout_ns() const { return last_timeout_; }

 private:
  struct Conn {
    SocketId sock = 0;
    Endpoint peer;
    bool open = false;
    bool paused = false;
    bool want_writable = false;
    std::vector<uint8_t> pending;  // committed, not flushed
    std::vector<uint8_t> out;      // flushed ("on the wire")
  };
  struct Pending {
    RxItem item;
    std::vector<uint8_t> bytes;
  };
  Conn* find(ConnId c);
  const Conn* find(ConnId c) const { return const_cast<FakeWorker*>(this)->find(c); }
  void check_writable(ConnId c);
  ConnId new_conn(SocketId s, Endpoint peer);
  void closed(ConnId c, CloseReason r);

  unsigned id_;
  IoConfig cfg_;
  size_t nsock_;
  IoCounters counters_;
  std::deque<Pending> rx_;
  std::vector<std::vector<uint8_t>> delivered_;  // backing store of the last poll's items
  std::vector<Conn> conns_;
  std::vector<uint8_t> gen_;
  std::vector<uint8_t> scratch_;
  enum class Res { none, dgram, stream } res_ = Res::none;
  SocketId res_sock_ = 0;
  Endpoint res_to_;
  ConnId res_conn_ = kNoConn;
  uint32_t res_len_ = 0;
  std::vector<SentDatagram> committed_, sent_;
  std::vector<std::pair<ConnId, Endpoint>> connects_;
  size_t tx_capacity_ = ~size_t{0};
  bool woken_ = false;
  bool accepting_ = true;
  int64_t last_timeout_ = 0;
};

class FakeBackend {
 public:
  using Worker = FakeWorker;
  static Result<std::unique_ptr<FakeBackend>> create(const IoConfig& cfg,
                                                     std::span<const SocketSpec> specs);
  Result<std::unique_ptr<FakeWorker>> open_worker(unsigned i);
  Endpoint bound(SocketId s) const { return bound_.at(s); }
  static const char* name() { return "fake"; }

 private:
  IoConfig cfg_;
  std::vector<Endpoint> bound_;
};

static_assert(Backend<FakeBackend>);

}  // namespace cw::dp
