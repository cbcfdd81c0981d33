// Writing and reading the stats segment (layout: segment_layout.hh).
//
// SegmentWriter lives in the dataplane and is used by one thread, the publisher. It copies
// the runtime's live counters into the segment (publisher.hh); workers never see it.
// SegmentReader maps the file read-only and takes consistent snapshots without ever writing
// to it, so readers cannot block or slow the writer.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "control/segment_layout.hh"
#include "dataplane/result.hh"

namespace cw::ctl {

// A mapping of a segment file; moves, unmaps on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, size_t bytes) : base_(base), bytes_(bytes) {}
  Mapping(Mapping&& o) noexcept : base_(o.base_), bytes_(o.bytes_) { o.base_ = nullptr; }
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();
  void* base() const { return base_; }
  size_t bytes() const { return bytes_; }

 private:
  void* base_ = nullptr;
  size_t bytes_ = 0;
};

// A declared service counter as the segment names it (CounterName, decoded).
struct CounterInfo {
  uint32_t service = 0;  // index into the service names
  rt::CounterKind kind = rt::CounterKind::counter;
  std::string name, help;
  bool operator==(const CounterInfo&) const = default;
};

struct SegmentInfo {
  uint32_t workers = 1;
  std::vector<std::string> services;  // names by service index
  std::string backend;
  std::vector<CounterInfo> counters;  // declared counters, grouped by service in index order
};

// The counters runtime R declares (R::counter_decls(s), if it has it), for SegmentInfo.
template <class R>
std::vector<CounterInfo> declared_counters(const R& r) {
  std::vector<CounterInfo> out;
  if constexpr (requires { r.counter_decls(uint16_t(0)); }) {
    for (size_t s = 0; s < r.service_names().size(); ++s)
      for (const rt::CounterDecl& d : r.counter_decls(uint16_t(s)))
        out.push_back({uint32_t(s), d.kind, d.name, d.help});
  }
  return out;
}

class SegmentWriter {
 public:
  // Builds the segment in "<path>.tmp.<pid>" (mode 0600) and renames it over path, so a
  // reader sees either the previous dataplane's file or a complete new one.
  static Result<SegmentWriter> create(const std::string& path, const SegmentInfo& info);

  SegmentHeader& header() { return *static_cast<SegmentHeader*>(map_.base()); }
  uint64_t epoch() { return header().epoch; }
  const std::string& path() const { return path_; }

  // Publisher thread only: open and close worker w's block for writing (seqlock).
  WorkerBlock& begin_write(unsigned w);
  void end_write(unsigned w);
  rt::ServiceStats* services(unsigned w);   // worker w's ServiceStats array
  dp::Counter* counter_values(unsigned w);  // worker w's declared counter values
  // Service s's declared counters: the first's index into counter_values, and how many.
  uint32_t first_counter(uint32_t s) const { return s < first_.size() ? first_[s] : 0; }
  uint32_t counters_of(uint32_t s) const { return s < count_.size() ? count_[s] : 0; }
  // Publisher thread only: replaces the named backend counters (seqlocked).
  void write_backend(const std::vector<std::pair<std::string, uint64_t>>& counters);
  uint64_t backend_published_ns = 0;  // publisher bookkeeping (throttles write_backend)

  // Publisher thread only.
  void set_state(State s) { header().state.store(uint64_t(s), std::memory_order_release); }
  void round_done(uint64_t unix_ns);

 private:
  WorkerBlock& block(unsigned w);
  Mapping map_;
  std::string path_;
  std::vector<uint32_t> first_, count_;  // by service: its declared counters
};

// Plain copies of one worker's counters, indexed like the field tables.
struct ServiceSnapshot {
  std::array<uint64_t, std::size(kServiceFields)> c{};
  std::array<uint64_t, rt::LatencyHist::kBuckets> buckets{};  // not cumulative
  uint64_t sum_ns = 0;
};
struct WorkerSnapshot {
  std::array<uint64_t, std::size(kWorkerFields)> worker{};
  std::array<uint64_t, std::size(kIoFields)> io{};
  std::vector<ServiceSnapshot> services;
  std::vector<uint64_t> counters;  // declared counter values, indexed like Snapshot::counters
  uint64_t publish_unix_ns = 0;
};
struct Snapshot {
  uint64_t epoch = 0;
  int64_t pid = 0;
  uint64_t start_unix_ns = 0;
  uint64_t publish_count = 0, publish_unix_ns = 0;
  State state = State::starting;
  std::string backend;
  std::vector<std::string> services;
  std::vector<CounterInfo> counters;  // the declared service counters' names
  std::vector<WorkerSnapshot> workers;
  std::vector<std::pair<std::string, uint64_t>> backend_counters;  // named backend totals
  uint64_t backend_truncated = 0;
  uint64_t retries = 0;  // seqlock retries this snapshot needed (torn reads avoided)

  // Sum over workers of field i of the given table.
  uint64_t io_total(size_t i) const;
  uint64_t worker_total(size_t i) const;
  uint64_t service_total(size_t svc, size_t i) const;
  uint64_t counter_total(size_t i) const;  // declared counter i
};

class SegmentReader {
 public:
  // Maps path read-only and validates it; a wrong magic, layout version or size is an
  // error naming what differs.
  static Result<SegmentReader> open(const std::string& path);

  // A consistent copy of every block. Fails if the writer restarted under us (epoch
  // changed) or a block stayed busy for kBusyLimit.
  Result<Snapshot> snapshot() const;

  // True when path now names another file than the one mapped (the dataplane restarted,
  // or the file was removed); reopen to follow it.
  bool replaced() const;

  const SegmentHeader& header() const { return *static_cast<const SegmentHeader*>(map_.base()); }
  uint64_t epoch() const { return header().epoch; }
  int64_t pid() const { return header().pid; }

  // How long a block may stay busy: a writer preempted in mid-update (a loaded machine)
  // holds its block until the scheduler runs it again, which can take milliseconds.
  static constexpr std::chrono::milliseconds kBusyLimit{1000};

 private:
  bool read_backend_block(const SegmentHeader& h, Snapshot& s) const;
  Mapping map_;
  std::vector<CounterInfo> counters_;  // the name table, validated at open
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// Reads one block under its seqlock into out; false if it was being written (retry).
bool read_worker_block(const WorkerBlock& b, uint32_t services, uint32_t counters,
                       WorkerSnapshot& out);

}  // namespace cw::ctl
