// libFuzzer target: the kv service on two workers over the fake backend. The input is a TCP
// stream to worker 0 (keys of both workers: requests are forwarded, replies ordered) and
// one UDP datagram. The stream is fed once cut at fuzzer-chosen points and once whole, each
// to a fresh pair of workers: the replies and the connection's fate must not depend on the
// segmentation; the workers must go idle; a closed connection gives back its tail, held
// replies and pipeline window; both stores stay consistent (Store::verify).
// Input layout as service_harness.hh: bytes, up to 15 cut lengths, a count byte.
#include <arpa/inet.h>
#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/services/kv/service.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/run_idle.hh"

namespace {

using namespace cw;
using W = rt::Worker<dp::FakeWorker, std::variant<svc::Kv>>;

#define KV_FUZZ_CHECK(c)    \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

struct Pair {
  static constexpr unsigned kN = 2;
  Pair() : mail(kN, 8, 256) {
    kv::KvOptions o;
    o.item_size_max = 16 * 1024;
    o.memory_limit = 1 << 20;
    o.pipeline_depth = 4;  // pipelines pause and resume often
    for (unsigned w = 0; w < kN; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 2));
      const rt::SocketRef refs[2] = {{0, dp::Transport::udp, true, true},
                                     {1, dp::Transport::tcp, true, true}};
      const dp::Endpoint bound[2] = {{htonl(0x7f000001), 0}, {htonl(0x7f000001), 0}};
      rt::ServiceCtx c{w, kN, 4, 0, refs, {}, bound, {}};
      std::vector<std::variant<svc::Kv>> v;
      v.emplace_back(std::in_place_type<svc::Kv>, c, o);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v), std::vector<uint16_t>{0, 0}, loop,
                                            4, stats[w], std::span(&svc[w], 1), mail));
    }
  }
  svc::Kv& kv(unsigned w) { return std::get<svc::Kv>(workers[w]->service(0)); }

  void run() {
    // The workers must go idle once the input is consumed.
    if (!cw::testing::run_until_idle<W>(workers, stats, mail, 20000)) std::abort();
  }

  struct Outcome {
    std::vector<uint8_t> out;
    bool open = false;
  };
  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId c = io[0]->inject_open(1, {htonl(0x7f000001), htons(4242)});
    size_t off = 0, k = 0;
    while (off < b.size() && io[0]->is_open(c)) {
      size_t n = b.size() - off;
      if (k < cuts.size()) n = std::min<size_t>(n, cuts[k++] + 1);
      io[0]->inject_stream(c, b.subspan(off, n));
      off += n;
      run();  // each segment delivered, and its forwarded requests answered, on its own
    }
    run();
    Outcome o{io[0]->take_stream_out(c), io[0]->is_open(c)};
    if (o.open) {
      io[0]->inject_peer_close(c);
      run();
    }
    KV_FUZZ_CHECK(workers[0]->tails().in_use() == 0);
    KV_FUZZ_CHECK(kv(0).order().windows_free() == 4);
    for (unsigned w = 0; w < kN; ++w) KV_FUZZ_CHECK(kv(w).store().verify().ok());
    return o;
  }

  dp::IoConfig iocfg{};
  rt::Mailboxes mail;
  rt::LoopConfig loop{
      .burst = 8, .busy_poll = true, .tail_small = 64, .tail_buffers = 8, .max_timers = 16};
  rt::WorkerStats stats[kN];
  rt::ServiceStats svc[kN];
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<W>> workers;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t ncuts = std::min<size_t>(data[size - 1] & 15, size - 1);
  const std::span<const uint8_t> cuts(data + size - 1 - ncuts, ncuts);
  const std::span<const uint8_t> bytes(data, size - 1 - ncuts);
  Pair split, whole;
  const time_t t0 = ::time(nullptr);
  const auto a = split.stream(bytes, cuts);
  const auto b = whole.stream(bytes, {});
  // Replies that show the time (stats, mg t/l, expiry) may differ across a second boundary.
  if (::time(nullptr) == t0) {
    KV_FUZZ_CHECK(a.out == b.out);
    KV_FUZZ_CHECK(a.open == b.open);
  }
  // The same bytes as a UDP request (frame header from the first 8 bytes): bounded replies.
  split.io[0]->inject_datagram(0, {htonl(0x7f000001), htons(4243)}, bytes);
  split.run();
  for (unsigned w = 0; w < Pair::kN; ++w)
    for (const auto& d : split.io[w]->take_sent())
      KV_FUZZ_CHECK(d.bytes.size() <= kv::proto::kUdpMaxDatagram);
  return 0;
}
