#include "control/segment.hh"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <new>
#include <optional>
#include <thread>

namespace cw::ctl {

namespace {

std::string sys_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

template <size_t N>
void copy_name(char (&dst)[N], const std::string& src) {
  std::memset(dst, 0, N);
  std::memcpy(dst, src.data(), std::min<size_t>(src.size(), N - 1));
}

std::string read_name(const char (&src)[kNameBytes]) {
  return std::string(src, strnlen(src, kNameBytes));
}

// The declared counters' names are untrusted input to readers: every entry must name an
// existing service, in order, with a known kind, a valid NUL-terminated name and help, at
// most rt::kMaxServiceCounters per service and no name twice within one service (each
// becomes a metric series). The writer applies the same rules to what it is given.
Result<void> check_counters(const std::vector<CounterInfo>& cs, uint32_t services) {
  uint32_t prev = 0, in_service = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    const CounterInfo& c = cs[i];
    const std::string what = "declared counter " + std::to_string(i) + ": ";
    if (c.service >= services || c.service < prev)
      return make_error(what + "service index out of range or out of order");
    in_service = c.service == prev && i > 0 ? in_service + 1 : 1;
    prev = c.service;
    if (in_service > rt::kMaxServiceCounters)
      return make_error(what + "more than " + std::to_string(rt::kMaxServiceCounters) +
                        " counters in one service");
    if (c.kind != rt::CounterKind::counter && c.kind != rt::CounterKind::gauge)
      return make_error(what + "unknown kind");
    if (!rt::valid_counter_name(c.name)) return make_error(what + "invalid name");
    if (!rt::valid_counter_help(c.help)) return make_error(what + "invalid help text");
    for (size_t j = i; j-- > 0 && cs[j].service == c.service;)
      if (cs[j].name == c.name) return make_error(what + "'" + c.name + "' declared twice");
  }
  return {};
}

// A fixed-size NUL-terminated field of the segment, or nullopt when it has no NUL.
template <size_t N>
std::optional<std::string> terminated(const char (&src)[N]) {
  const size_t n = strnlen(src, N);
  if (n == N) return std::nullopt;
  return std::string(src, n);
}

uint64_t new_epoch() {
  uint64_t e = 0;
  if (getrandom(&e, sizeof e, 0) != sizeof e)
    e = uint64_t(getpid()) << 32 ^ uint64_t(time(nullptr));
  return e | 1;  // never 0
}

}  // namespace

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (base_) munmap(base_, bytes_);
    base_ = o.base_;
    bytes_ = o.bytes_;
    o.base_ = nullptr;
  }
  return *this;
}

Mapping::~Mapping() {
  if (base_) munmap(base_, bytes_);
}

// ---- writer ----

Result<SegmentWriter> SegmentWriter::create(const std::string& path, const SegmentInfo& info) {
  if (info.workers == 0 || info.workers > kMaxWorkers)
    return make_error("stats segment: workers must be 1.." + std::to_string(kMaxWorkers));
  if (info.services.size() > kMaxServices)
    return make_error("stats segment: at most " + std::to_string(kMaxServices) + " services");
  const uint32_t nsvc = uint32_t(info.services.size());
  if (auto ok = check_counters(info.counters, nsvc); !ok)
    return make_error("stats segment: " + ok.error().message);
  const uint32_t ncnt = uint32_t(info.counters.size());  // <= kMaxCounters (checked above)
  const uint64_t bytes = segment_bytes(info.workers, nsvc, ncnt);
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(sys_error("stats segment " + tmp));
  if (::ftruncate(fd, off_t(bytes)) != 0) {
    auto e = make_error(sys_error("stats segment " + tmp + ": ftruncate"));
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    ::unlink(tmp.c_str());
    return make_error(sys_error("stats segment " + tmp + ": mmap"));
  }
  // The file is zero-filled by ftruncate; construct the header and blocks in place.
  auto* h = new (base) SegmentHeader{};
  h->magic = kSegmentMagic;
  h->layout_version = kLayoutVersion;
  h->header_bytes = sizeof(SegmentHeader);
  h->total_bytes = bytes;
  h->epoch = new_epoch();
  h->pid = getpid();
  h->start_unix_ns = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
  h->workers = info.workers;
  h->services = nsvc;
  h->worker_stride = worker_stride(nsvc, ncnt);
  h->worker_block_bytes = sizeof(WorkerBlock);
  h->service_bytes = sizeof(rt::ServiceStats);
  h->counters = ncnt;
  h->counter_name_bytes = sizeof(CounterName);
  h->counters_offset = counters_offset();
  h->workers_offset = workers_offset(ncnt);
  h->backend_entries = kMaxBackendCounters;
  h->backend_offset = backend_offset(info.workers, nsvc, ncnt);
  new (static_cast<char*>(base) + h->backend_offset) BackendBlock{};
  copy_name(h->backend, info.backend);
  for (uint32_t s = 0; s < nsvc; ++s) copy_name(h->service_names[s], info.services[s]);
  auto* names = reinterpret_cast<CounterName*>(static_cast<char*>(base) + h->counters_offset);
  for (uint32_t i = 0; i < ncnt; ++i) {
    const CounterInfo& c = info.counters[i];
    CounterName& n = *new (&names[i]) CounterName{};
    n.service = c.service;
    n.kind = uint32_t(c.kind);
    copy_name(n.name, c.name);
    copy_name(n.help, c.help);
  }
  for (uint32_t w = 0; w < info.workers; ++w) {
    auto* p = static_cast<char*>(base) + h->workers_offset + uint64_t(w) * h->worker_stride;
    new (p) WorkerBlock{};
    for (uint32_t s = 0; s < nsvc; ++s)
      new (p + sizeof(WorkerBlock) + s * sizeof(rt::ServiceStats)) rt::ServiceStats{};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto e = make_error(sys_error("stats segment " + path + ": rename"));
    ::munmap(base, bytes);
    ::unlink(tmp.c_str());
    return e;
  }
  SegmentWriter w;
  w.map_ = Mapping(base, bytes);
  w.path_ = path;
  w.first_.assign(nsvc, 0);
  w.count_.assign(nsvc, 0);
  for (uint32_t i = ncnt; i-- > 0;) {
    w.first_[info.counters[i].service] = i;
    ++w.count_[info.counters[i].service];
  }
  return w;
}

WorkerBlock& SegmentWriter::block(unsigned w) {
  auto* p = static_cast<char*>(map_.base()) + header().workers_offset +
            uint64_t(w) * header().worker_stride;
  return *reinterpret_cast<WorkerBlock*>(p);
}

rt::ServiceStats* SegmentWriter::services(unsigned w) {
  return reinterpret_cast<rt::ServiceStats*>(reinterpret_cast<char*>(&block(w)) +
                                             sizeof(WorkerBlock));
}

dp::Counter* SegmentWriter::counter_values(unsigned w) {
  return reinterpret_cast<dp::Counter*>(reinterpret_cast<char*>(&block(w)) +
                                        named_values_offset(header().services));
}

WorkerBlock& SegmentWriter::begin_write(unsigned w) {
  WorkerBlock& b = block(w);
  // Odd seq first; the release fence keeps the data stores after it (classic seqlock).
  b.seq.store(b.seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  return b;
}

void SegmentWriter::end_write(unsigned w) {
  WorkerBlock& b = block(w);
  b.seq.store(b.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void SegmentWriter::write_backend(const std::vector<std::pair<std::string, uint64_t>>& counters) {
  auto& b =
      *reinterpret_cast<BackendBlock*>(static_cast<char*>(map_.base()) + header().backend_offset);
  b.seq.store(b.seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const size_t n = std::min<size_t>(counters.size(), kMaxBackendCounters);
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = counters[i].first;
    for (uint32_t k = 0; k < kBackendNameWords; ++k) {
      uint64_t word = 0;
      for (uint32_t j = 0; j < 8; ++j) {
        const size_t at = size_t(k) * 8 + j;  // the last byte stays NUL
        if (at < name.size() && at < kBackendNameWords * 8 - 1)
          word |= uint64_t(uint8_t(name[at])) << (8 * j);
      }
      b.entries[i].name[k].set(word);
    }
    b.entries[i].value.set(counters[i].second);
  }
  b.count.set(n);
  b.truncated.set(counters.size() - n);
  b.seq.store(b.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void SegmentWriter::round_done(uint64_t unix_ns) {
  header().publish_unix_ns.store(unix_ns, std::memory_order_relaxed);
  header().publish_count.fetch_add(1, std::memory_order_release);
}

// ---- reader ----

Result<SegmentReader> SegmentReader::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(sys_error("stats segment " + path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return make_error(sys_error("stats segment " + path + ": fstat"));
  }
  if (size_t(st.st_size) < sizeof(SegmentHeader)) {
    ::close(fd);
    return make_error("stats segment " + path + ": too small to be a segment");
  }
  void* base = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) return make_error(sys_error("stats segment " + path + ": mmap"));
  SegmentReader r;
  r.map_ = Mapping(base, size_t(st.st_size));
  r.path_ = path;
  r.dev_ = st.st_dev;
  r.ino_ = st.st_ino;
  const SegmentHeader& h = r.header();
  const std::string where = "stats segment " + path + ": ";
  if (h.magic != kSegmentMagic) return make_error(where + "bad magic (not a corewire segment)");
  if (h.layout_version != kLayoutVersion)
    return make_error(where + "layout version " + std::to_string(h.layout_version) +
                      ", this reader understands " + std::to_string(kLayoutVersion));
  if (h.header_bytes != sizeof(SegmentHeader) || h.worker_block_bytes != sizeof(WorkerBlock) ||
      h.service_bytes != sizeof(rt::ServiceStats) || h.counter_name_bytes != sizeof(CounterName))
    return make_error(where + "block sizes differ from this reader's (same version, other build?)");
  if (h.workers == 0 || h.workers > kMaxWorkers || h.services > kMaxServices ||
      h.counters > kMaxCounters || h.counters_offset != counters_offset() ||
      h.worker_stride != worker_stride(h.services, h.counters) ||
      h.workers_offset != workers_offset(h.counters) ||
      h.total_bytes != segment_bytes(h.workers, h.services, h.counters) ||
      h.backend_offset != backend_offset(h.workers, h.services, h.counters) ||
      h.backend_entries != kMaxBackendCounters || h.total_bytes > size_t(st.st_size))
    return make_error(where + "inconsistent sizes in header");
  if (h.epoch == 0) return make_error(where + "epoch 0 (segment not initialised)");
  // The name table (within the file: the sizes above were checked against its size).
  auto* names = reinterpret_cast<const CounterName*>(static_cast<const char*>(r.map_.base()) +
                                                     h.counters_offset);
  for (uint32_t i = 0; i < h.counters; ++i) {
    auto name = terminated(names[i].name);
    auto help = terminated(names[i].help);
    if (!name || !help || names[i].kind > uint32_t(rt::CounterKind::gauge))
      return make_error(where + "declared counter " + std::to_string(i) + ": unterminated " +
                        "name or help, or unknown kind");
    r.counters_.push_back(
        {names[i].service, rt::CounterKind(names[i].kind), std::move(*name), std::move(*help)});
  }
  if (auto ok = check_counters(r.counters_, h.services); !ok)
    return make_error(where + ok.error().message);
  return r;
}

bool SegmentReader::replaced() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return true;
  return st.st_dev != dev_ || st.st_ino != ino_;
}

bool read_worker_block(const WorkerBlock& b, uint32_t nsvc, uint32_t ncnt, WorkerSnapshot& out) {
  const uint64_t s1 = b.seq.load(std::memory_order_acquire);
  if (s1 & 1) return false;
  for (size_t i = 0; i < std::size(kWorkerFields); ++i)
    out.worker[i] = (b.worker.*kWorkerFields[i].member).get();
  for (size_t i = 0; i < std::size(kIoFields); ++i) out.io[i] = (b.io.*kIoFields[i].member).get();
  out.services.resize(nsvc);
  auto* svc = reinterpret_cast<const rt::ServiceStats*>(reinterpret_cast<const char*>(&b) +
                                                        sizeof(WorkerBlock));
  for (uint32_t s = 0; s < nsvc; ++s) {
    for (size_t i = 0; i < std::size(kServiceFields); ++i)
      out.services[s].c[i] = (svc[s].*kServiceFields[i].member).get();
    for (uint32_t k = 0; k < rt::LatencyHist::kBuckets; ++k)
      out.services[s].buckets[k] = svc[s].latency.bucket[k].get();
    out.services[s].sum_ns = svc[s].latency.sum_ns.get();
  }
  out.counters.resize(ncnt);
  auto* values = reinterpret_cast<const dp::Counter*>(reinterpret_cast<const char*>(&b) +
                                                      named_values_offset(nsvc));
  for (uint32_t i = 0; i < ncnt; ++i) out.counters[i] = values[i].get();
  // The acquire fence orders the data loads above before the second seq load.
  std::atomic_thread_fence(std::memory_order_acquire);
  out.publish_unix_ns = b.publish_unix_ns.get();
  return b.seq.load(std::memory_order_relaxed) == s1;
}

namespace {

// Paces the reads of a block its writer holds: spins first (an update takes nanoseconds),
// then sleeps between reads, so a preempted writer gets a core; gives up after kBusyLimit.
class BusyWait {
 public:
  // Whether to read again.
  bool again() {
    if (++tries_ <= kSpins) return true;
    const auto now = std::chrono::steady_clock::now();
    if (tries_ == kSpins + 1) deadline_ = now + SegmentReader::kBusyLimit;
    if (now > deadline_) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    return true;
  }

 private:
  static constexpr int kSpins = 1000;
  int tries_ = 0;
  std::chrono::steady_clock::time_point deadline_{};
};

}  // namespace

// The named backend counters, under their seqlock; false if the block stayed busy.
bool SegmentReader::read_backend_block(const SegmentHeader& h, Snapshot& s) const {
  auto* bb = reinterpret_cast<const BackendBlock*>(static_cast<const char*>(map_.base()) +
                                                   h.backend_offset);
  for (BusyWait wait; wait.again();) {
    const uint64_t s1 = bb->seq.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    const size_t n = std::min<uint64_t>(bb->count.get(), kMaxBackendCounters);
    s.backend_counters.resize(n);
    for (size_t i = 0; i < n; ++i) {
      std::string name;
      for (uint32_t k = 0; k < kBackendNameWords; ++k) {
        const uint64_t word = bb->entries[i].name[k].get();
        for (uint32_t j = 0; j < 8; ++j)
          if (const char c = char((word >> (8 * j)) & 0xFF)) name += c;
      }
      s.backend_counters[i] = {std::move(name), bb->entries[i].value.get()};
    }
    s.backend_truncated = bb->truncated.get();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (bb->seq.load(std::memory_order_relaxed) == s1) return true;
    ++s.retries;
  }
  return false;
}

Result<Snapshot> SegmentReader::snapshot() const {
  const SegmentHeader& h = header();
  Snapshot s;
  s.epoch = h.epoch;
  s.pid = h.pid;
  s.start_unix_ns = h.start_unix_ns;
  s.backend = read_name(h.backend);
  for (uint32_t i = 0; i < h.services; ++i) s.services.push_back(read_name(h.service_names[i]));
  s.counters = counters_;
  s.publish_count = h.publish_count.load(std::memory_order_acquire);
  s.publish_unix_ns = h.publish_unix_ns.load(std::memory_order_relaxed);
  s.state = State(h.state.load(std::memory_order_acquire));
  s.workers.resize(h.workers);
  for (uint32_t w = 0; w < h.workers; ++w) {
    auto* b = reinterpret_cast<const WorkerBlock*>(
        static_cast<const char*>(map_.base()) + h.workers_offset + uint64_t(w) * h.worker_stride);
    BusyWait wait;
    while (!read_worker_block(*b, h.services, h.counters, s.workers[w])) {
      if (!wait.again()) return make_error("stats segment: worker block stayed busy");
      ++s.retries;
    }
  }
  if (!read_backend_block(h, s)) return make_error("stats segment: backend block stayed busy");
  if (h.epoch != s.epoch) return make_error("stats segment: dataplane restarted during the read");
  return s;
}

uint64_t Snapshot::io_total(size_t i) const {
  uint64_t t = 0;
  for (auto& w : workers) t += w.io[i];
  return t;
}
uint64_t Snapshot::worker_total(size_t i) const {
  uint64_t t = 0;
  for (auto& w : workers) t += w.worker[i];
  return t;
}
uint64_t Snapshot::counter_total(size_t i) const {
  uint64_t t = 0;
  for (auto& w : workers)
    if (i < w.counters.size()) t += w.counters[i];
  return t;
}
uint64_t Snapshot::service_total(size_t svc, size_t i) const {
  uint64_t t = 0;
  for (auto& w : workers)
    if (svc < w.services.size()) t += w.services[svc].c[i];
  return t;
}

}  // namespace cw::ctl
