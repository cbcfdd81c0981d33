#include "control/segment.hh"
#include "tests/control/scratch_dir.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "control/publisher.hh"

namespace cw::ctl {
namespace {

// Stands in for rt::Runtime: the counter accessors publish() needs.
struct FakeRuntime {
  unsigned n = 2, nsvc = 2;
  std::unique_ptr<rt::WorkerStats[]> ws = std::make_unique<rt::WorkerStats[]>(n);
  std::unique_ptr<rt::ServiceStats[]> ss = std::make_unique<rt::ServiceStats[]>(n * nsvc);
  std::unique_ptr<dp::IoCounters[]> io = std::make_unique<dp::IoCounters[]>(n);
  unsigned workers() const { return n; }
  const rt::WorkerStats& worker_stats(unsigned w) const { return ws[w]; }
  const rt::ServiceStats& service_stats(unsigned w, uint16_t s) const { return ss[w * nsvc + s]; }
  const dp::IoCounters& io_counters(unsigned w) const { return io[w]; }
  std::vector<std::pair<std::string, uint64_t>> backend;
  std::vector<std::pair<std::string, uint64_t>> backend_counters() const { return backend; }
  // Declared counters: service 0 ("echo") has none, service 1 ("kv") the two of kKvCounters.
  std::vector<std::string> names{"echo", "kv"};
  const std::vector<std::string>& service_names() const { return names; }
  std::span<const rt::CounterDecl> counter_decls(uint16_t s) const {
    if (s == 1) return kKvCounters;
    return {};
  }
  std::unique_ptr<dp::Counter[]> kv = std::make_unique<dp::Counter[]>(n * 2);
  std::span<const dp::Counter> service_counters(unsigned w, uint16_t s) const {
    if (s == 1) return {&kv[w * 2], 2};
    return {};
  }
  static constexpr rt::CounterDecl kKvCounters[] = {
      {"get_hits", "GET requests that found their key"},
      {"items", "Items stored", rt::CounterKind::gauge}};
};
static_assert(rt::check_counter_decls(FakeRuntime::kKvCounters));

class SegmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    path_ = scratch_ / "stats";
  }
  test::ScratchDir scratch_{"cw-segment"};
  SegmentInfo info() { return {2, {"echo", "kv"}, "fake", declared_counters(FakeRuntime{})}; }
  std::string dir_, path_;
};

TEST_F(SegmentTest, PublishedCountersReadBack) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  FakeRuntime rt;
  rt.ws[1].items.add(7);
  rt.io[0].rx_datagrams.add(11);
  rt.io[1].conns_open.set(3);
  rt.ss[1 * 2 + 1].requests.add(5);
  rt.ss[1 * 2 + 1].latency.record(1500);                  // 1 us < 1.5 us <= 2 us: bucket 1
  rt.ss[1 * 2 + 1].latency.record(3'000'000'000'000ull);  // beyond 10 s: +Inf
  publish(w.value(), rt);

  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r) << r.error().message;
  auto s = r->snapshot();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->pid, getpid());
  EXPECT_EQ(s->epoch, w->epoch());
  EXPECT_EQ(s->backend, "fake");
  ASSERT_EQ(s->services.size(), 2u);
  EXPECT_EQ(s->services[1], "kv");
  ASSERT_EQ(s->workers.size(), 2u);
  EXPECT_EQ(s->publish_count, 1u);
  EXPECT_EQ(s->workers[1].worker[2], 7u);  // items
  EXPECT_EQ(s->io_total(0), 11u);          // rx_datagrams
  EXPECT_EQ(s->workers[1].io[16], 3u);     // conns_open
  EXPECT_EQ(s->workers[1].services[1].c[0], 5u);
  EXPECT_EQ(s->service_total(1, 0), 5u);
  EXPECT_EQ(s->workers[1].services[1].buckets[1], 1u);
  EXPECT_EQ(s->workers[1].services[1].buckets[rt::LatencyHist::kBounded], 1u);
  EXPECT_EQ(s->workers[1].services[1].sum_ns, 3'000'000'001'500ull);
  EXPECT_EQ(s->workers[0].services[0].c[0], 0u);
}

TEST_F(SegmentTest, DeclaredCountersRoundTrip) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  FakeRuntime rt;
  rt.kv[0].add(3);   // worker 0 get_hits
  rt.kv[2].add(4);   // worker 1 get_hits
  rt.kv[3].set(17);  // worker 1 items
  publish(w.value(), rt);
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r) << r.error().message;
  auto s = r->snapshot();
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->counters.size(), 2u);
  EXPECT_EQ(s->counters[0], (CounterInfo{1, rt::CounterKind::counter, "get_hits",
                                         "GET requests that found their key"}));
  EXPECT_EQ(s->counters[1].name, "items");
  EXPECT_EQ(s->counters[1].kind, rt::CounterKind::gauge);
  ASSERT_EQ(s->workers[1].counters.size(), 2u);
  EXPECT_EQ(s->workers[0].counters[0], 3u);
  EXPECT_EQ(s->workers[1].counters[0], 4u);
  EXPECT_EQ(s->workers[1].counters[1], 17u);
  EXPECT_EQ(s->counter_total(0), 7u);
  EXPECT_EQ(s->workers[1].services[1].c[0], 0u) << "the fixed counters are untouched";
}

TEST_F(SegmentTest, WriterRefusesBadDeclarations) {
  auto with = [&](std::vector<CounterInfo> cs) {
    SegmentInfo i = info();
    i.counters = std::move(cs);
    return SegmentWriter::create(path_, i);
  };
  const auto kC = rt::CounterKind::counter;
  EXPECT_TRUE(with({{0, kC, "a", ""}, {1, kC, "a", ""}})) << "one name in two services";
  EXPECT_FALSE(with({{2, kC, "a", ""}})) << "no such service";
  EXPECT_FALSE(with({{1, kC, "a", ""}, {0, kC, "b", ""}})) << "out of service order";
  EXPECT_FALSE(with({{0, kC, "a", ""}, {0, kC, "a", ""}})) << "twice in one service";
  EXPECT_FALSE(with({{0, kC, "Bad", ""}}));
  EXPECT_FALSE(with({{0, kC, "hits_total", ""}}));
  EXPECT_FALSE(with({{0, kC, "requests", ""}})) << "a fixed service field";
  EXPECT_FALSE(with({{0, kC, "latency_seconds_p99", ""}}));
  EXPECT_FALSE(with({{0, kC, std::string(rt::kCounterNameBytes, 'a'), ""}}));
  EXPECT_FALSE(with({{0, kC, "a", "two\nlines"}}));
  EXPECT_FALSE(with({{0, rt::CounterKind(9), "a", ""}}));
  std::vector<CounterInfo> many;
  for (uint32_t i = 0; i <= rt::kMaxServiceCounters; ++i) {
    std::string name = "c";
    name += std::to_string(i);
    many.push_back({0, kC, name, ""});
  }
  EXPECT_FALSE(with(many)) << "more than kMaxServiceCounters";
  many.pop_back();
  EXPECT_TRUE(with(many));
}

// The name table is untrusted input to readers: each corruption is refused at open, naming it.
TEST_F(SegmentTest, ReaderRefusesACorruptNameTable) {
  {
    auto w = SegmentWriter::create(path_, info());
    ASSERT_TRUE(w) << w.error().message;
  }
  ASSERT_TRUE(SegmentReader::open(path_));
  const int fd = open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  CounterName good{};
  const off_t at = off_t(counters_offset() + sizeof(CounterName));  // entry 1 ("items")
  ASSERT_EQ(pread(fd, &good, sizeof good, at), ssize_t(sizeof good));
  auto refused = [&](const CounterName& bad, const char* what) {
    ASSERT_EQ(pwrite(fd, &bad, sizeof bad, at), ssize_t(sizeof bad));
    auto r = SegmentReader::open(path_);
    EXPECT_FALSE(r) << what;
    if (!r) {
      EXPECT_NE(r.error().message.find("declared counter 1"), std::string::npos) << what;
    }
  };
  CounterName bad = good;
  std::memset(bad.name, 'a', sizeof bad.name);
  refused(bad, "name without NUL");
  bad = good;
  std::memset(bad.help, 'h', sizeof bad.help);
  refused(bad, "help without NUL");
  bad = good;
  bad.kind = 7;
  refused(bad, "unknown kind");
  bad = good;
  bad.service = 2;
  refused(bad, "service out of range");
  bad = good;
  bad.service = 0;
  refused(bad, "out of service order");
  bad = good;
  std::memcpy(bad.name, "get_hits", 9);
  refused(bad, "a name twice in one service");
  bad = good;
  bad.name[0] = '{';
  refused(bad, "a character a metric name cannot hold");
  bad = good;
  bad.help[2] = '\n';
  refused(bad, "a newline in help");
  ASSERT_EQ(pwrite(fd, &good, sizeof good, at), ssize_t(sizeof good));
  EXPECT_TRUE(SegmentReader::open(path_)) << "restored";
  const uint32_t huge = kMaxCounters + 1;
  ASSERT_EQ(pwrite(fd, &huge, sizeof huge, offsetof(SegmentHeader, counters)),
            ssize_t(sizeof huge));
  EXPECT_FALSE(SegmentReader::open(path_)) << "more counters than any segment holds";
  close(fd);
}

TEST_F(SegmentTest, BackendCountersRoundTripAndTruncate) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  FakeRuntime rt;
  const std::string long_name(80, 'x');
  rt.backend = {{"drop.no_mbuf", 3}, {"port.imissed", 7}, {long_name, 1}};
  publish(w.value(), rt);
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r);
  auto s = r->snapshot();
  ASSERT_TRUE(s);
  ASSERT_EQ(s->backend_counters.size(), 3u);
  EXPECT_EQ(s->backend_counters[0], std::make_pair(std::string("drop.no_mbuf"), uint64_t(3)));
  EXPECT_EQ(s->backend_counters[1].second, 7u);
  EXPECT_EQ(s->backend_counters[2].first, std::string(kBackendNameWords * 8 - 1, 'x'))
      << "names are cut to 55 bytes";
  std::vector<std::pair<std::string, uint64_t>> many(kMaxBackendCounters + 5, {"x", 1});
  w->write_backend(many);
  auto s2 = r->snapshot();
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->backend_counters.size(), kMaxBackendCounters);
  EXPECT_EQ(s2->backend_truncated, 5u);
}

TEST_F(SegmentTest, FileIsOwnerOnly) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SegmentTest, BlockBeingWrittenIsNotRead) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r);
  w->begin_write(0);  // the writer is inside the block: seq is odd
  WorkerSnapshot out;
  auto* b = reinterpret_cast<const WorkerBlock*>(reinterpret_cast<const char*>(&r->header()) +
                                                 r->header().workers_offset);
  EXPECT_FALSE(read_worker_block(*b, 2, 2, out));
  EXPECT_FALSE(r->snapshot()) << "a block that never settles is an error, not a torn copy";
  w->end_write(0);
  EXPECT_TRUE(read_worker_block(*b, 2, 2, out));
  EXPECT_TRUE(r->snapshot());
}

// A writer preempted in mid-update holds its block for as long as the scheduler keeps it
// off a core (milliseconds on a loaded machine): the reader waits for it, up to kBusyLimit.
TEST_F(SegmentTest, AWriterPreemptedMidUpdateIsWaitedFor) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r);
  w->begin_write(0);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    w->end_write(0);
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto s = r->snapshot();
  const auto waited = std::chrono::steady_clock::now() - t0;
  writer.join();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GT(s->retries, 0u);
  EXPECT_GE(waited, std::chrono::milliseconds(25));
  EXPECT_LT(waited, SegmentReader::kBusyLimit);
}

// A writer thread keeps every counter of worker 0 equal to v while bumping v; the reader
// must never see two different values in one snapshot.
TEST_F(SegmentTest, ConcurrentWriterNeverYieldsATornSnapshot) {
  auto w = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w) << w.error().message;
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t v = 1; !stop.load(std::memory_order_relaxed); ++v) {
      WorkerBlock& b = w->begin_write(0);
      for (auto& f : kWorkerFields) (b.worker.*f.member).set(v);
      for (auto& f : kIoFields) (b.io.*f.member).set(v);
      rt::ServiceStats* ss = w->services(0);
      for (int s = 0; s < 2; ++s)
        for (auto& f : kServiceFields) (ss[s].*f.member).set(v);
      for (uint32_t i = 0; i < 2; ++i) w->counter_values(0)[i].set(v);
      w->end_write(0);
    }
  });
  uint64_t last = 0, changes = 0;
  // Until the reader has seen the writer move 200 times (the time bound only stops a broken
  // build from hanging; on a loaded machine the writer may be scheduled late).
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (changes < 200 && std::chrono::steady_clock::now() < end) {
    auto s = r->snapshot();
    if (!s) continue;  // block busy for every retry: allowed, never a torn copy
    const WorkerSnapshot& ws = s->workers[0];
    const uint64_t v = ws.worker[0];
    for (auto x : ws.worker) ASSERT_EQ(x, v);
    for (auto x : ws.io) ASSERT_EQ(x, v);
    for (auto& svc : ws.services)
      for (auto x : svc.c) ASSERT_EQ(x, v);
    for (auto x : ws.counters) ASSERT_EQ(x, v);
    ASSERT_GE(v, last) << "counters never go back within one epoch";
    changes += v != last;
    last = v;
  }
  stop.store(true);
  writer.join();
  EXPECT_GT(changes, 0u) << "the reader saw the writer make progress";
}

TEST_F(SegmentTest, RestartIsDetected) {
  auto w1 = SegmentWriter::create(path_, info());
  ASSERT_TRUE(w1);
  auto r = SegmentReader::open(path_);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->replaced());
  const uint64_t e1 = r->epoch();
  auto w2 = SegmentWriter::create(path_, info());  // a new dataplane starts
  ASSERT_TRUE(w2);
  EXPECT_TRUE(r->replaced());
  auto r2 = SegmentReader::open(path_);
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->epoch(), e1);
  EXPECT_FALSE(r2->replaced());
  unlink(path_.c_str());
  EXPECT_TRUE(r2->replaced()) << "a removed segment counts as replaced";
}

TEST_F(SegmentTest, LayoutVersionMismatchIsRejected) {
  {
    auto w = SegmentWriter::create(path_, info());
    ASSERT_TRUE(w);
  }
  const int fd = open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const uint32_t v = kLayoutVersion + 1;
  ASSERT_EQ(pwrite(fd, &v, sizeof v, offsetof(SegmentHeader, layout_version)), ssize_t(sizeof v));
  auto r = SegmentReader::open(path_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("layout version " + std::to_string(kLayoutVersion + 1)),
            std::string::npos)
      << r.error().message;
  const uint64_t bad = 0x1234;
  ASSERT_EQ(pwrite(fd, &bad, sizeof bad, 0), ssize_t(sizeof bad));
  auto r2 = SegmentReader::open(path_);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("bad magic"), std::string::npos);
  ASSERT_EQ(ftruncate(fd, 100), 0);
  EXPECT_FALSE(SegmentReader::open(path_));
  close(fd);
}

// The byte layout documented in docs/management.md (readers in other languages rely on it).
TEST(SegmentLayout, MatchesTheDocumentedOffsets) {
  EXPECT_EQ(sizeof(SegmentHeader), 1280u);
  EXPECT_EQ(offsetof(SegmentHeader, counters), 1144u);
  EXPECT_EQ(offsetof(SegmentHeader, counter_name_bytes), 1148u);
  EXPECT_EQ(offsetof(SegmentHeader, counters_offset), 1152u);
  EXPECT_EQ(offsetof(SegmentHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(SegmentHeader, epoch), 24u);
  EXPECT_EQ(offsetof(SegmentHeader, pid), 32u);
  EXPECT_EQ(offsetof(SegmentHeader, workers), 48u);
  EXPECT_EQ(offsetof(SegmentHeader, workers_offset), 72u);
  EXPECT_EQ(offsetof(SegmentHeader, backend_entries), 68u);
  EXPECT_EQ(offsetof(SegmentHeader, backend_offset), 80u);
  EXPECT_EQ(offsetof(SegmentHeader, backend), 88u);
  EXPECT_EQ(offsetof(SegmentHeader, service_names), 120u);
  EXPECT_EQ(offsetof(SegmentHeader, publish_count), 1216u);
  EXPECT_EQ(offsetof(SegmentHeader, state), 1232u);
  EXPECT_EQ(counters_offset(), 1280u);
  EXPECT_EQ(sizeof(CounterName), 192u);
  EXPECT_EQ(offsetof(CounterName, name), 8u);
  EXPECT_EQ(offsetof(CounterName, help), 64u);
  EXPECT_EQ(workers_offset(3), 1280u + 3 * 192u);
  EXPECT_EQ(offsetof(WorkerBlock, worker), 64u);
  EXPECT_EQ(offsetof(WorkerBlock, io), 192u);
  EXPECT_EQ(sizeof(WorkerBlock), 384u);
  EXPECT_EQ(named_values_offset(2), 384u + 2 * 256u);
  EXPECT_EQ(worker_stride(2, 0), 384u + 2 * 256u);
  EXPECT_EQ(worker_stride(2, 3), 384u + 2 * 256u + 64u) << "3 values, rounded up to a line";
  EXPECT_EQ(sizeof(BackendCounter), 64u);
  EXPECT_EQ(offsetof(BackendBlock, entries), 64u);
  EXPECT_EQ(backend_offset(2, 2, 3), 1280u + 3 * 192u + 2 * (384u + 2 * 256u + 64u));
}

TEST_F(SegmentTest, BadSizesAreRefused) {
  EXPECT_FALSE(SegmentWriter::create(path_, {0, {}, "x", {}}));
  EXPECT_FALSE(SegmentWriter::create(path_, {kMaxWorkers + 1, {}, "x", {}}));
  EXPECT_FALSE(SegmentReader::open(dir_ + "/missing"));
}

}  // namespace
}  // namespace cw::ctl
