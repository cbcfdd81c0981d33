// The stats segment: the shared-memory contract between the dataplane (`corewire`, the
// only writer) and any number of readers (`corewirectl`, tests, ad-hoc tools). Versioned by
// kLayoutVersion; docs/management.md describes it for readers in other languages.
//
// Who writes what:
//   * SegmentHeader: written once by the dataplane before the file is renamed into place
//     (readers never see a half-built header); afterwards only the publisher thread
//     touches publish_count / publish_unix_ns / state.
//   * WorkerBlock w (and its ServiceStats that follow it): written only by the dataplane's
//     publisher thread, which copies worker w's live counters (rt::WorkerStats,
//     rt::ServiceStats, dp::IoCounters) into it every publish period under the block's
//     seqlock. Workers themselves never touch the segment, so any number of readers cost
//     them nothing.
// Readers map the file read-only, check magic, layout_version and sizes, and copy each
// block between two equal, even reads of its seq (else retry). A restart of the dataplane
// creates a new file (new epoch) renamed over the old path; a reader notices because the
// path now names another inode or the epoch differs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>

#include "app/runtime/stats.hh"
#include "dataplane/io.hh"

namespace cw::ctl {

inline constexpr uint64_t kSegmentMagic = 0x31535441'54535743;  // "CWSTATS1" little-endian
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint32_t kMaxWorkers = 256;
inline constexpr uint32_t kMaxServices = 32;
inline constexpr uint32_t kNameBytes = 32;  // NUL-terminated names (backend, services)
inline constexpr uint32_t kMaxPorts = 4;    // DPDK ports: one queue pair per worker each
inline constexpr uint32_t kDropReasons = 8;
inline constexpr uint32_t kMaxBackendCounters = 128;  // named backend totals (DPDK port stats)
inline constexpr uint32_t kBackendNameWords = 7;      // name: 56 bytes, NUL-padded

// Dataplane life cycle, published in SegmentHeader::state.
enum class State : uint64_t { starting = 0, serving = 1, draining = 2, stopped = 3 };

// Per (port, queue) packet counters and drops by reason. Room for the DPDK backend; the
// kernel backends leave them zero.
enum class DropReason : uint32_t {
  no_mbuf = 0,   // mempool empty at rx refill
  rx_ring_full,  // NIC queue overflow (imissed)
  bad_header,    // malformed L2/L3/L4
  no_listener,   // no socket for the destination port
  fragment,      // IP fragment (not reassembled)
  tx_ring_full,  // tx burst left packets behind
  reserved6,
  reserved7,
};
struct alignas(64) PortQueueCounters {
  dp::Counter rx_packets, rx_bytes, tx_packets, tx_bytes;
  dp::Counter drops[kDropReasons];
};

// Resource gauges (levels, not totals).
struct alignas(64) Gauges {
  dp::Counter mempool_in_use, mempool_size;  // DPDK mbufs (0 on kernel backends)
  dp::Counter tail_buffers_in_use;           // stream tail buffers held
  dp::Counter reserved[5];
};

struct alignas(64) SegmentHeader {
  uint64_t magic;           // kSegmentMagic
  uint32_t layout_version;  // kLayoutVersion
  uint32_t header_bytes;    // sizeof(SegmentHeader)
  uint64_t total_bytes;     // file size
  uint64_t epoch;           // nonzero, different for every dataplane start
  int64_t pid;              // the dataplane's pid
  uint64_t start_unix_ns;   // wall clock at start
  uint32_t workers, services;
  uint32_t worker_stride;       // bytes from one WorkerBlock to the next
  uint32_t worker_block_bytes;  // sizeof(WorkerBlock); ServiceStats follow at this offset
  uint32_t service_bytes;       // sizeof(rt::ServiceStats)
  uint32_t backend_entries;     // capacity of the BackendBlock (kMaxBackendCounters)
  uint64_t workers_offset;      // first WorkerBlock, from the start of the file
  uint64_t backend_offset;      // the BackendBlock, after the last WorkerBlock
  char backend[kNameBytes];
  char service_names[kMaxServices][kNameBytes];
  // Publisher-written, relaxed; on their own line so readers of the above never share it.
  alignas(64) std::atomic<uint64_t> publish_count;  // rounds completed
  std::atomic<uint64_t> publish_unix_ns;            // wall clock of the last round
  std::atomic<uint64_t> state;                      // State
};

struct alignas(64) WorkerBlock {
  std::atomic<uint64_t> seq;    // seqlock: odd while the publisher writes this block
  dp::Counter publish_unix_ns;  // when this copy was taken (wall clock, ns)
  alignas(64) rt::WorkerStats worker;
  dp::IoCounters io;
  Gauges gauges;
  PortQueueCounters ports[kMaxPorts];
  // followed by rt::ServiceStats[services] (at worker_block_bytes)
};

// Backend-specific named totals over all workers (rt::Runtime::backend_counters(): DPDK drop
// reasons "drop.<reason>" and port statistics "port.<name>"), copied by the publisher at most
// every kBackendPublishMs under the block's seqlock. Names are stored as little-endian
// 8-byte words so that every byte is read and written atomically.
struct BackendCounter {
  dp::Counter name[kBackendNameWords];
  dp::Counter value;
};
struct alignas(64) BackendBlock {
  std::atomic<uint64_t> seq;  // seqlock: odd while the publisher writes this block
  dp::Counter count;          // entries in use
  dp::Counter truncated;      // entries that did not fit
  alignas(64) BackendCounter entries[kMaxBackendCounters];
};
inline constexpr uint64_t kBackendPublishMs = 100;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters must be lock-free");
static_assert(sizeof(dp::Counter) == 8);

constexpr uint64_t round_up64(uint64_t n) {
  return (n + 63) & ~uint64_t(63);
}
constexpr uint32_t worker_stride(uint32_t services) {
  return uint32_t(round_up64(sizeof(WorkerBlock) + uint64_t(services) * sizeof(rt::ServiceStats)));
}
constexpr uint64_t workers_offset() {
  return round_up64(sizeof(SegmentHeader));
}
constexpr uint64_t backend_offset(uint32_t workers, uint32_t services) {
  return workers_offset() + uint64_t(workers) * worker_stride(services);
}
constexpr uint64_t segment_bytes(uint32_t workers, uint32_t services) {
  return backend_offset(workers, services) + sizeof(BackendBlock);
}

// Field tables: the one list of every counter's name, help text and kind, used both to copy
// counters into the segment and to name them in /metrics and the CLI.
template <class T>
struct Field {
  const char* name;
  const char* help;
  dp::Counter T::*member;
  bool gauge = false;
};

inline constexpr Field<rt::WorkerStats> kWorkerFields[] = {
    {"loops", "Poll loop iterations", &rt::WorkerStats::loops},
    {"bursts", "Loop iterations that received at least one item", &rt::WorkerStats::bursts},
    {"items", "Items received", &rt::WorkerStats::items},
    {"unknown_socket", "Items on a socket no service owns (dropped)",
     &rt::WorkerStats::unknown_socket},
    {"stream_oversize", "Connections closed: partial frame above max_frame",
     &rt::WorkerStats::stream_oversize},
    {"stream_no_buffer", "Connections closed: no tail buffer left",
     &rt::WorkerStats::stream_no_buffer},
    {"mail_in", "Mailbox messages delivered", &rt::WorkerStats::mail_in},
    {"mail_dropped", "Mailbox messages not sent: mailbox and overflow full",
     &rt::WorkerStats::mail_dropped},
    {"busy_ns", "Nanoseconds spent handling bursts", &rt::WorkerStats::busy_ns},
    {"timers_fired", "Service timers fired", &rt::WorkerStats::timers_fired},
    {"timers_full", "Timers refused: max_timers pending", &rt::WorkerStats::timers_full},
    {"mail_out", "Mailbox messages sent", &rt::WorkerStats::mail_out},
    {"mail_deferred", "Mailbox messages parked: receiver's mailbox full",
     &rt::WorkerStats::mail_deferred},
};

inline constexpr Field<dp::IoCounters> kIoFields[] = {
    {"rx_datagrams", "UDP datagrams received", &dp::IoCounters::rx_datagrams},
    {"rx_bytes", "UDP payload bytes received", &dp::IoCounters::rx_bytes},
    {"tx_datagrams", "UDP datagrams sent", &dp::IoCounters::tx_datagrams},
    {"tx_bytes", "UDP payload bytes sent", &dp::IoCounters::tx_bytes},
    {"rx_stream_bytes", "TCP bytes received", &dp::IoCounters::rx_stream_bytes},
    {"tx_stream_bytes", "TCP bytes sent", &dp::IoCounters::tx_stream_bytes},
    {"tx_no_buffer", "Replies dropped: transmit pool exhausted", &dp::IoCounters::tx_no_buffer},
    {"rx_no_buffer", "Receives without a buffer (ENOBUFS)", &dp::IoCounters::rx_no_buffer},
    {"rx_truncated", "Datagrams above max_datagram (dropped)", &dp::IoCounters::rx_truncated},
    {"tx_errors", "Sends completed with an error", &dp::IoCounters::tx_errors},
    {"conns_accepted", "TCP connections accepted", &dp::IoCounters::conns_accepted},
    {"conns_connected", "TCP connections opened outward", &dp::IoCounters::conns_connected},
    {"conns_closed", "TCP connections closed", &dp::IoCounters::conns_closed},
    {"conns_rejected", "TCP connections refused beyond max_conns", &dp::IoCounters::conns_rejected},
    {"conns_overflow", "TCP connections closed at conn_out_limit", &dp::IoCounters::conns_overflow},
    {"conns_idle", "TCP connections closed by idle timeout", &dp::IoCounters::conns_idle},
    {"conns_open", "TCP connections open", &dp::IoCounters::conns_open, true},
    {"polls", "Backend poll calls", &dp::IoCounters::polls},
    {"wakeups", "Polls that blocked and were woken", &dp::IoCounters::wakeups},
    {"tx_gso_sends", "Sends that carried several datagrams (UDP GSO)",
     &dp::IoCounters::tx_gso_sends},
};

inline constexpr Field<rt::ServiceStats> kServiceFields[] = {
    {"requests", "Well-formed requests handled", &rt::ServiceStats::requests},
    {"responses", "Replies queued", &rt::ServiceStats::responses},
    {"errors", "Protocol error replies sent", &rt::ServiceStats::errors},
    {"malformed", "Input dropped as malformed", &rt::ServiceStats::malformed},
    {"dropped", "Replies not sent (no buffer, connection gone)", &rt::ServiceStats::dropped},
};

inline constexpr Field<Gauges> kGaugeFields[] = {
    {"mempool_in_use", "Mempool buffers in use", &Gauges::mempool_in_use, true},
    {"mempool_size", "Mempool buffers in total", &Gauges::mempool_size, true},
    {"tail_buffers_in_use", "Stream tail buffers in use", &Gauges::tail_buffers_in_use, true},
};

inline constexpr const char* kDropReasonNames[kDropReasons] = {
    "no_mbuf",  "rx_ring_full", "bad_header", "no_listener",
    "fragment", "tx_ring_full", "reserved6",  "reserved7"};

// The segment embeds the runtime's counter structs. If one of them changes size, the layout
// changed: bump kLayoutVersion and update the field tables above.
static_assert(sizeof(rt::WorkerStats) == 128 && sizeof(dp::IoCounters) == 192 &&
                  sizeof(rt::ServiceStats) == 256,
              "a counter struct changed: update the field tables and bump kLayoutVersion");
}  // namespace cw::ctl
