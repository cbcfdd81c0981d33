// The stats segment: the shared-memory contract between the dataplane (`corewire`, the
// only writer) and any number of readers (`corewirectl`, tests, ad-hoc tools). Versioned by
// kLayoutVersion; docs/management.md describes it for readers in other languages.
//
// Who writes what:
//   * SegmentHeader: written once by the dataplane before the file is renamed into place
//     (readers never see a half-built header); afterwards only the publisher thread
//     touches publish_count / publish_unix_ns / state.
//   * CounterName table (the services' declared counters: names, help, kind): written once
//     with the header, never changed.
//   * WorkerBlock w (and the ServiceStats and declared counter values that follow it):
//     written only by the dataplane's publisher thread, which copies worker w's live
//     counters (rt::WorkerStats, dp::IoCounters, rt::ServiceStats, the declared counters)
//     into it every publish period under the block's seqlock. Workers themselves never touch
//     the segment, so any number of readers cost them nothing.
// Readers map the file read-only, check magic, layout_version and sizes, and copy each
// block between two equal, even reads of its seq (else retry). A restart of the dataplane
// creates a new file (new epoch) renamed over the old path; a reader notices because the
// path now names another inode or the epoch differs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "app/runtime/control_contract.hh"
#include "dataplane/io.hh"

namespace cw::ctl {

inline constexpr uint64_t kSegmentMagic = 0x31535441'54535743;  // "CWSTATS1" little-endian
inline constexpr uint32_t kLayoutVersion = 2;
inline constexpr uint32_t kMaxWorkers = 256;
inline constexpr uint32_t kMaxServices = 32;
inline constexpr uint32_t kNameBytes = 32;  // NUL-terminated names (backend, services)
inline constexpr uint32_t kMaxCounters = kMaxServices * rt::kMaxServiceCounters;  // declared
inline constexpr uint32_t kMaxBackendCounters = 128;  // named backend totals (DPDK port stats)
inline constexpr uint32_t kBackendNameWords = 7;      // name: 56 bytes, NUL-padded

// Dataplane life cycle, published in SegmentHeader::state.
enum class State : uint64_t { starting = 0, serving = 1, draining = 2, stopped = 3 };

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
  uint32_t counters;            // declared service counters: CounterName entries
  uint32_t counter_name_bytes;  // sizeof(CounterName)
  uint64_t counters_offset;     // the CounterName table, right after the header
  // Publisher-written, relaxed; on their own line so readers of the above never share it.
  alignas(64) std::atomic<uint64_t> publish_count;  // rounds completed
  std::atomic<uint64_t> publish_unix_ns;            // wall clock of the last round
  std::atomic<uint64_t> state;                      // State
};

// One declared service counter (rt::CounterDecl of some service). Entry i names value i of
// every worker block's declared counter values; entries are grouped by service, in the order
// of the service's declaration.
struct CounterName {
  uint32_t service;                  // index into service_names
  uint32_t kind;                     // rt::CounterKind: 0 counter, 1 gauge
  char name[rt::kCounterNameBytes];  // NUL-terminated, rt::valid_counter_name
  char help[rt::kCounterHelpBytes];  // NUL-terminated, printable ASCII
};

struct alignas(64) WorkerBlock {
  std::atomic<uint64_t> seq;    // seqlock: odd while the publisher writes this block
  dp::Counter publish_unix_ns;  // when this copy was taken (wall clock, ns)
  alignas(64) rt::WorkerStats worker;
  dp::IoCounters io;
  // followed by rt::ServiceStats[services] (at worker_block_bytes), then
  // dp::Counter[counters]: the declared counters' values, in CounterName order
};

// Backend-specific named values over all workers (rt::Runtime::backend_counters()), copied by
// the publisher at most every kBackendPublishMs under the block's seqlock. Names are stored
// as little-endian 8-byte words so that every byte is read and written atomically. Names say
// what a value is:
//   "drop.<reason>"        counter: datagrams the backend dropped (DPDK drop reasons)
//   "port.<stat>"          counter: the backend's port statistics (DPDK rte_eth_stats, "x."
//                          extended ones); the DPDK backend drives one port
//   "link.<port>.<field>"  gauge: that port's link now: up (0/1), speed_mbps (0: down or
//                          unknown), full_duplex (0/1), autoneg (0/1)
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
// Whether a backend value is a level (link state) rather than a total: `stats reset` leaves
// it alone and /metrics exports it as a gauge.
inline bool backend_gauge(std::string_view name) {
  return name.starts_with("link.");
}

static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters must be lock-free");
static_assert(sizeof(dp::Counter) == 8);

constexpr uint64_t round_up64(uint64_t n) {
  return (n + 63) & ~uint64_t(63);
}
// Where things are, given the counts in the header (counters: declared service counters).
constexpr uint64_t named_values_offset(uint32_t services) {
  return sizeof(WorkerBlock) + uint64_t(services) * sizeof(rt::ServiceStats);
}
constexpr uint32_t worker_stride(uint32_t services, uint32_t counters) {
  return uint32_t(round_up64(named_values_offset(services) + uint64_t(counters) * 8));
}
constexpr uint64_t counters_offset() {
  return round_up64(sizeof(SegmentHeader));
}
constexpr uint64_t workers_offset(uint32_t counters) {
  return round_up64(counters_offset() + uint64_t(counters) * sizeof(CounterName));
}
constexpr uint64_t backend_offset(uint32_t workers, uint32_t services, uint32_t counters) {
  return workers_offset(counters) + uint64_t(workers) * worker_stride(services, counters);
}
constexpr uint64_t segment_bytes(uint32_t workers, uint32_t services, uint32_t counters) {
  return backend_offset(workers, services, counters) + sizeof(BackendBlock);
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
    {"tx_stream_sends", "TCP sends (one connection's queued output each)",
     &dp::IoCounters::tx_stream_sends},
};

inline constexpr Field<rt::ServiceStats> kServiceFields[] = {
    {"requests", "Well-formed requests handled", &rt::ServiceStats::requests},
    {"responses", "Replies queued", &rt::ServiceStats::responses},
    {"errors", "Protocol error replies sent", &rt::ServiceStats::errors},
    {"malformed", "Input dropped as malformed", &rt::ServiceStats::malformed},
    {"dropped", "Replies not sent (no buffer, connection gone)", &rt::ServiceStats::dropped},
};

// A declared counter may not take a fixed service field's name (both export as
// corewire_service_<name>_total).
constexpr bool service_fields_reserved() {
  for (const auto& f : kServiceFields)
    if (rt::valid_counter_name(f.name)) return false;
  return true;
}
static_assert(service_fields_reserved(), "add the new field to rt::kReservedCounterNames");
static_assert(sizeof(CounterName) == 192);

// The segment embeds the runtime's counter structs. If one of them changes size, the layout
// changed: bump kLayoutVersion and update the field tables above.
static_assert(sizeof(rt::WorkerStats) == 128 && sizeof(dp::IoCounters) == 192 &&
                  sizeof(rt::ServiceStats) == 256,
              "a counter struct changed: update the field tables and bump kLayoutVersion");
}  // namespace cw::ctl
