// Runtime counters, one cache-aligned block per worker and per (worker, service). The
// worker is the only writer; anything else (the management process, tests) reads them with
// relaxed loads while the worker runs. These are plain structs so they can later live in the
// shared-memory stats segment (control/) unchanged.
#pragma once

#include <cstdint>

#include "dataplane/io.hh"

namespace cw::rt {

using dp::Counter;

struct alignas(64) WorkerStats {
  Counter loops;             // iterations of the poll loop
  Counter bursts;            // iterations that received at least one item
  Counter items;             // items received
  Counter unknown_socket;    // item on a socket no service owns (dropped)
  Counter stream_oversize;   // partial frame above the service's max_frame (conn closed)
  Counter stream_no_buffer;  // no tail buffer left for a partial frame (conn closed)
  Counter mail_in;           // mail delivered to this worker
  Counter mail_dropped;      // mail not taken: mailbox and overflow full (the sender was told)
  Counter busy_ns;           // time spent handling bursts (ns)
  Counter timers_fired;
  Counter timers_full;    // timer_at/timer_after refused: LoopConfig::max_timers pending
  Counter mail_out;       // mail this worker put in a mailbox (directly or after parking)
  Counter mail_deferred;  // mail parked because the receiver's mailbox was full
};

// Request latency, log-linear (1-2-5 per decade, 1 us .. 10 s, then +Inf). Buckets are
// not cumulative; the exporter sums them. The worker loop records every request a service
// counts (ServiceStats::requests) with its burst's service time (worker.hh,
// record_latency); it costs one short scan and two plain stores per service and burst.
struct LatencyHist {
  static constexpr uint32_t kBounded = 22;  // buckets with an upper bound
  static constexpr uint32_t kBuckets = kBounded + 1;
  static constexpr uint64_t kUpperNs[kBounded] = {
      1'000,         2'000,         5'000,         10'000,        20'000,      50'000,
      100'000,       200'000,       500'000,       1'000'000,     2'000'000,   5'000'000,
      10'000'000,    20'000'000,    50'000'000,    100'000'000,   200'000'000, 500'000'000,
      1'000'000'000, 2'000'000'000, 5'000'000'000, 10'000'000'000};
  void record(uint64_t ns, uint64_t count = 1) {
    uint32_t i = 0;
    while (i < kBounded && ns > kUpperNs[i]) ++i;
    bucket[i].add(count);
    sum_ns.add(ns * count);
  }
  Counter bucket[kBuckets];  // bucket[i]: kUpperNs[i-1] < ns <= kUpperNs[i]; last: +Inf
  Counter sum_ns;
};

struct alignas(64) ServiceStats {
  Counter requests;     // well-formed requests handled
  Counter responses;    // replies queued
  Counter errors;       // protocol error replies sent
  Counter malformed;    // input dropped as malformed (no reply possible or allowed)
  Counter dropped;      // replies not sent: no tx buffer, connection gone
  LatencyHist latency;  // service time of each request (recorded by the worker loop)
};

}  // namespace cw::rt
