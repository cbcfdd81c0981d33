// The publisher: copies the runtime's live counters into the stats segment. Runs on one
// thread of the dataplane process (the control thread), never on a worker. It reads the
// workers' counters with relaxed loads, exactly as any in-process reader may; the workers
// are unaware of it. Why a copy instead of placing the counters in the segment: workers keep
// writing their own heap lines (no contract change to the runtime or the backends, whose
// IoCounters are members), and however many readers attach, only this one thread ever reads
// the workers' cache lines, once per period. The cost is staleness of at most one period.
#pragma once

#include <algorithm>
#include <chrono>
#include <iterator>
#include <span>

#include "control/segment.hh"

namespace cw::ctl {

inline uint64_t unix_now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

template <class T, size_t N>
void copy_fields(const Field<T> (&fields)[N], const T& src, T& dst) {
  for (const auto& f : fields) (dst.*f.member).set((src.*f.member).get());
}

inline void copy_service(const rt::ServiceStats& src, rt::ServiceStats& dst) {
  copy_fields(kServiceFields, src, dst);
  for (uint32_t k = 0; k < rt::LatencyHist::kBuckets; ++k)
    dst.latency.bucket[k].set(src.latency.bucket[k].get());
  dst.latency.sum_ns.set(src.latency.sum_ns.get());
}

// Worker w's declared counters of every service, when R has them.
template <class R>
void copy_declared(SegmentWriter& seg, const R& r, unsigned w, uint32_t services) {
  if constexpr (requires { r.service_counters(0u, uint16_t(0)); }) {
    dp::Counter* out = seg.counter_values(w);
    for (uint32_t s = 0; s < services; ++s) {
      const std::span<const dp::Counter> v = r.service_counters(w, uint16_t(s));
      const uint32_t n = std::min<uint32_t>(uint32_t(v.size()), seg.counters_of(s));
      for (uint32_t k = 0; k < n; ++k) out[seg.first_counter(s) + k].set(v[k].get());
    }
  }
}

// R is rt::Runtime<Services> or anything with the same counter accessors:
//   unsigned workers(); const rt::WorkerStats& worker_stats(w);
//   const rt::ServiceStats& service_stats(w, s); const dp::IoCounters& io_counters(w);
//   optionally std::span<const dp::Counter> service_counters(w, s) (declared counters).
// Publisher thread only.
template <class R>
void publish(SegmentWriter& seg, const R& rt) {
  const uint64_t now = unix_now_ns();
  const unsigned nw = std::min<unsigned>(rt.workers(), seg.header().workers);
  const uint32_t ns = seg.header().services;
  for (unsigned w = 0; w < nw; ++w) {
    WorkerBlock& b = seg.begin_write(w);
    copy_fields(kWorkerFields, rt.worker_stats(w), b.worker);
    copy_fields(kIoFields, rt.io_counters(w), b.io);
    rt::ServiceStats* out = seg.services(w);
    for (uint32_t s = 0; s < ns; ++s) copy_service(rt.service_stats(w, uint16_t(s)), out[s]);
    copy_declared(seg, rt, w, ns);
    b.publish_unix_ns.set(now);
    seg.end_write(w);
  }
  // Named backend totals (DPDK port and drop statistics): they allocate and may query the
  // NIC, so at most every kBackendPublishMs.
  if constexpr (requires { rt.backend_counters(); }) {
    if (now - seg.backend_published_ns >= kBackendPublishMs * 1'000'000) {
      seg.write_backend(rt.backend_counters());
      seg.backend_published_ns = now;
    }
  }
  seg.round_done(now);
}

}  // namespace cw::ctl
