// The dataplane contract: what every packet-I/O backend (io_uring, epoll, DPDK, fake)
// offers to a worker. Backends are chosen once at start-up (app/runtime/launch.hh) and the
// worker loop is instantiated for the concrete type, so nothing here is virtual.
//
// Shape
//   Backend         one per process; setup only. Opens sockets/ports for every worker,
//                   then hands each worker thread its own WorkerIo.
//   WorkerIo        one per worker thread; datapath only, owner-thread-only (`_st` rule:
//                   every method except wake() must be called from the owning worker).
//
// Buffer ownership (the rules every backend and caller follow)
//   * poll() fills RxItems whose `data` points into backend-owned receive buffers. They
//     stay valid until the next poll() on the same WorkerIo; the caller copies what it keeps.
//   * dgram_reserve()/stream_reserve() hand out a writable backend-owned tx buffer. The
//     caller writes at most the reserved length, then commits the length it wrote. At most
//     one reservation is open at a time; a reservation is not sent until flush().
//   * After commit the buffer belongs to the backend until the send completes; the caller
//     never touches it again. flush() submits every committed buffer in one batch.
//   * A reserve that fails returns nullptr and counts the drop (IoCounters); nothing to undo.
//   * Replies in place (optional; see reserve_reply below): a backend that can send from its
//     receive buffers offers dgram_reserve_reply(item, n), which may hand back the request's
//     own buffer, so the returned bytes may overlap item.data: copy with memmove semantics,
//     never read item.data after writing the reply. A second reply to the same item gets an
//     ordinary buffer.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/result.hh"

namespace cw::dp {

// IPv4 endpoint; both fields in network byte order, as on the wire.
struct Endpoint {
  uint32_t addr_be = 0;
  uint16_t port_be = 0;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

std::string to_string(const Endpoint& ep);                      // "127.0.0.1:11111"
Result<Endpoint> parse_endpoint(const std::string& host_port);  // "a.b.c.d:port"

// An IPv4 prefix as written, "a.b.c.d/len" (len 0..32; without "/len", one address). The
// host bits are kept: an interface address "10.0.0.2/24" is both an address and its subnet.
struct Prefix {
  uint32_t addr_be = 0;
  uint8_t len = 32;
};
Result<Prefix> parse_prefix(const std::string& s);

enum class Transport : uint8_t { udp, tcp };

// A socket every worker has, declared before start. The index of a spec in the list passed
// to the backend is its SocketId, the same on every worker.
//   server = true:  all workers share the port (SO_REUSEPORT / RSS). Port 0 means "any":
//                   the first worker's bind picks it and the others join it.
//   server = false: a client socket; every worker binds its own (port 0 = ephemeral).
//                   For tcp it is the group that connect() attaches connections to.
struct SocketSpec {
  Transport transport = Transport::udp;
  Endpoint bind;
  bool server = true;
};
using SocketId = uint16_t;

// Worker-local TCP connection handle. Low 24 bits: a slot < IoConfig::max_conns, so callers
// may index per-connection arrays by conn_slot(); high 8 bits: generation, so a stale
// handle never names a newer connection.
using ConnId = uint32_t;
inline constexpr ConnId kNoConn = ~ConnId{0};
inline constexpr uint32_t conn_slot(ConnId c) {
  return c & 0xFFFFFFu;
}

enum class RxKind : uint8_t {
  datagram,         // one UDP datagram from `peer` on socket `sock`
  stream_data,      // bytes of TCP connection `conn` (any segmentation)
  stream_open,      // `conn` was accepted on server socket `sock`, or connect() succeeded
  stream_closed,    // `conn` is gone (see `reason`); its ConnId is invalid from now on
  stream_writable,  // `conn`'s queued output fell to the low-water mark (notify_writable)
  stream_resumed,   // resume(conn) took effect: bytes held while paused follow (if any)
};

enum class CloseReason : uint8_t {
  none,
  peer,            // orderly close or reset by the peer
  error,           // socket error
  idle,            // no traffic for IoConfig::idle_timeout_ms
  overflow,        // output buffer reached IoConfig::conn_out_limit (peer stopped reading)
  local,           // close() was called
  connect_failed,  // connect() did not complete
};

struct RxItem {
  RxKind kind;
  CloseReason reason;  // stream_closed only
  SocketId sock;       // socket the item belongs to
  ConnId conn;         // stream kinds; kNoConn for datagrams
  Endpoint peer;
  uint32_t len;         // bytes at data (0 for open/closed)
  const uint8_t* data;  // backend-owned; valid until the next poll()
  uint32_t token = 0;   // backend-private (DPDK: which receive buffer holds data)
};

// Sizes and modes, fixed at start-up (from the [runtime] config section).
struct IoConfig {
  unsigned workers = 1;
  std::vector<int> cores;              // cores[i] is worker i's CPU; empty = unpinned
  bool busy_poll = false;              // spin on completions instead of blocking
  uint32_t max_conns = 16384;          // per worker
  uint32_t conn_out_limit = 4u << 20;  // bytes queued per connection before it is closed
  // Stream output memory per worker (bytes held in output chunks, all connections). A
  // reservation that would pass it fails (tx_no_buffer) and closes its connection (error).
  uint64_t worker_out_limit = 256ull << 20;
  // stream_writable is owed once queued(c) <= this (see notify_writable).
  uint32_t conn_low_water = 64u << 10;
  uint32_t idle_timeout_ms = 300000;  // 0 = never
  uint32_t rx_buffers = 4096;         // per worker, power of two
  uint32_t rx_buffer_size = 2048;     // bytes; datagrams above this use the large path
  uint32_t tx_buffers = 4096;         // per worker
  uint32_t max_datagram = 65535;      // largest UDP payload accepted/sent
  // Interrupt mode only: once arrivals cluster (a wake-up finds two or more items, or
  // lone items keep arriving less than this apart), wait up to this long for a batch
  // before waking, like a NIC's adaptive interrupt moderation. Fewer wake-ups and sends
  // per message, at most this much added latency; 0 = wake on the first item. Ping-pong
  // traffic is delayed only on rare, exponentially backed-off trials
  // (dataplane/uring/moderation.hh). io_uring backend only.
  uint32_t coalesce_us = 0;
  // Send consecutive datagrams to one destination as one UDP GSO send (UDP_SEGMENT) when
  // the kernel offers it: kernel backends only (dataplane/kernel/udp_gso.hh).
  bool udp_gso = true;
  // Receive runs of same-size datagrams from one source (a sender's GSO train, or what the
  // kernel's UDP GRO merged) as one buffer and split them here (UDP_GRO): one pass through
  // the kernel's receive path per run instead of per datagram. io_uring backend only, and
  // only while max_datagram holds the largest run (65,507 bytes).
  bool udp_gro = true;
};

// Per-worker counters the backend maintains. Single writer (the worker), read from other
// threads with relaxed loads: see Counter.
struct Counter {
  // The owner bumps with a plain load+store (no lock prefix); readers get a torn-free value.
  void add(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
  std::atomic<uint64_t> v{0};
};

struct alignas(64) IoCounters {
  Counter rx_datagrams, rx_bytes, tx_datagrams, tx_bytes;
  Counter rx_stream_bytes, tx_stream_bytes;
  Counter tx_no_buffer;  // reserve failed: tx pool exhausted
  // Kernel/NIC had no receive buffer (ENOBUFS, re-armed) or dropped datagrams for want of
  // socket buffer space. Kernel backends sample each UDP socket's drop count every ~100 ms
  // (kernel::kDropSamplePeriodNs), so kernel drops show up here up to ~100 ms late.
  Counter rx_no_buffer;
  Counter rx_truncated;  // datagram larger than max_datagram
  Counter tx_errors;     // send completed with an error
  Counter conns_accepted, conns_connected, conns_closed;
  Counter conns_rejected;  // accept beyond max_conns
  Counter conns_overflow;  // closed at conn_out_limit
  Counter conns_idle;      // closed by idle timeout
  Counter conns_open;      // gauge
  Counter polls, wakeups;  // poll() calls; polls that blocked and were woken
  Counter tx_gso_sends;    // sends that carried two or more datagrams (UDP GSO)
  // TCP sends (io_uring SQEs, epoll syscalls), each of one connection's queued output.
  Counter tx_stream_sends;
};

// A buffer for the one datagram answering `it` (to it.peer from it.sock): the request's own
// receive buffer where the backend can transmit it (dgram_reserve_reply, DPDK: no
// allocation, and an echo's copy becomes a no-op), else an ordinary dgram_reserve. Commit
// with dgram_commit as usual. See "Replies in place" above for the overlap rule.
template <class W>
uint8_t* reserve_reply(W& w, const RxItem& it, uint32_t n) {
  if constexpr (requires { w.dgram_reserve_reply(it, n); })
    return w.dgram_reserve_reply(it, n);
  else
    return w.dgram_reserve(it.sock, it.peer, n);
}

// A reply written over its request with a few bytes changed (an echo clearing a flag):
// reserve_reply handed back the request's own buffer, and the reply is exactly it.len bytes
// at it.data, all the request's except those the service notes in a ReplyEdits<W>
// (edits.byte(offset, was, now) per changed payload byte). Committed with commit_reply(),
// the backend may then derive what it computed over the request (DPDK: the UDP checksum)
// instead of going over the reply's bytes again; any other reply commits as usual. A
// backend that can use the notes defines W::ReplyEdits and dgram_commit_edited(n, edits);
// for the others ReplyEdits<W> keeps nothing and commit_reply is dgram_commit.
struct NoReplyEdits {
  void byte(uint32_t, uint8_t, uint8_t) {}
};
namespace detail {
template <class W>
struct ReplyEditsOf {
  using type = NoReplyEdits;
};
template <class W>
requires requires {
  typename W::ReplyEdits;
}
struct ReplyEditsOf<W> {
  using type = typename W::ReplyEdits;
};
}  // namespace detail
template <class W>
using ReplyEdits = typename detail::ReplyEditsOf<W>::type;

// Commits the reply to `it` reserved at `out` with n bytes (see ReplyEdits).
template <class W>
void commit_reply(W& w, const RxItem& it, const uint8_t* out, uint32_t n, const ReplyEdits<W>& e) {
  if constexpr (requires { w.dgram_commit_edited(n, e); }) {
    if (out == it.data && n == it.len) return w.dgram_commit_edited(n, e);
  }
  w.dgram_commit(n);
}

// What a per-worker datapath object offers. Every backend's WorkerIo satisfies this.
template <class W>
concept WorkerIo = requires(W w, const W cw, RxItem* items, uint32_t n, int64_t ns, SocketId s,
                            ConnId c, Endpoint ep) {
  // Receive a burst: fills at most n items, returns how many. When nothing is ready it
  // blocks up to ns nanoseconds (0 = return at once; busy-poll callers always pass 0).
  { w.poll(items, n, ns) } -> std::same_as<uint32_t>;
  // Datagram tx on socket s to ep: a buffer of at least n bytes, or nullptr (counted).
  { w.dgram_reserve(s, ep, n) } -> std::same_as<uint8_t*>;
  { w.dgram_commit(n) } -> std::same_as<void>;
  // Stream tx on connection c: nullptr if c is gone (or closing), or the reservation
  // failed; a failed reservation closes the connection (a byte stream missing a reply is
  // unusable) and a stream_closed item follows: reason overflow when queued(c) + n would
  // pass conn_out_limit (counted conns_overflow), error when output memory ran out
  // (worker_out_limit or malloc; counted tx_no_buffer).
  { w.stream_reserve(c, n) } -> std::same_as<uint8_t*>;
  { w.stream_commit(c, n) } -> std::same_as<void>;
  // Open a TCP connection from client socket s. kNoConn when it failed at once (not a
  // client socket, no slot or no descriptor: the last two counted conns_rejected);
  // otherwise stream_open or stream_closed(connect_failed) follows, also when the connect
  // outlives idle_timeout_ms (counted conns_idle).
  { w.connect(s, ep) } -> std::same_as<ConnId>;
  // Close after queued output is sent; a stream_closed(local) item follows.
  { w.close(c) } -> std::same_as<void>;
  // Stream flow control (no-ops on a stale handle):
  //   pause(c)   stop reading c: no stream_data for c from the next poll() on (items
  //              already handed out stay valid). Bytes the backend had received but not
  //              delivered are held, the rest stays in the kernel (the peer's window
  //              closes). A paused connection still sends, still closes on resets, errors,
  //              overflow and idle timeout; the peer's FIN is seen after resume (it follows
  //              the unread bytes).
  //   resume(c)  read again: a stream_resumed item comes first (the caller may parse what
  //              it kept), then held bytes and new ones, in stream order, none lost.
  //              Resuming a connection that is not paused does nothing.
  //   queued(c)  bytes of c's output not yet acknowledged by the kernel (committed,
  //              including sends in flight); 0 for a stale handle.
  //   notify_writable(c)  one stream_writable item once queued(c) <= conn_low_water
  //              (at the next poll() if it already is). Asking again before it arrived
  //              changes nothing; a closed connection gets stream_closed instead.
  { w.pause(c) } -> std::same_as<void>;
  { w.resume(c) } -> std::same_as<void>;
  { cw.queued(c) } -> std::same_as<uint32_t>;
  { w.notify_writable(c) } -> std::same_as<void>;
  // Submit everything committed since the last flush.
  { w.flush() } -> std::same_as<void>;
  // Drain: stop taking new TCP connections on this worker's server sockets. Its listeners
  // are closed (once every worker has stopped, a connect is refused; connections still in
  // a closed listener's backlog are reset by the kernel). Connections already accepted and
  // UDP sockets keep being served. Idempotent; there is no way back (restart to accept).
  { w.stop_accepting() } -> std::same_as<void>;
  // Thread-safe: make a blocked poll() on this worker return soon.
  { w.wake() } -> std::same_as<void>;
  { cw.counters() } -> std::same_as<const IoCounters&>;
  { cw.worker_id() } -> std::same_as<unsigned>;
};

// What a backend (setup object) offers. Created on the main thread by its own factory,
//   static Result<std::unique_ptr<B>> create(const IoConfig&, std::span<const SocketSpec>);
// which opens every socket/port (so bind errors surface before any thread starts);
// open_worker(i) is then called on worker thread i (rings and queues belong to the thread
// that uses them).
template <class B>
concept Backend = requires(B b, const B cb, unsigned i) {
  typename B::Worker;
  requires WorkerIo<typename B::Worker>;
  { b.open_worker(i) } -> std::same_as<Result<std::unique_ptr<typename B::Worker>>>;
  // The endpoint socket `s` is actually bound to (port resolved when the spec said 0).
  { cb.bound(SocketId{}) } -> std::same_as<Endpoint>;
  { B::name() } -> std::convertible_to<const char*>;
};

}  // namespace cw::dp
