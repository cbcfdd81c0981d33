// libFuzzer target: the pubsub service on two workers over the fake backend. Worker 1 holds
// a subscriber to everything (plain and in a queue group); the input is a TCP stream to
// worker 0 (its messages are routed, batched and mailed to worker 1). The stream is fed
// once cut at fuzzer-chosen points and once whole, each to a fresh pair of workers: the
// replies, what the subscriber gets and the connection's fate must not depend on the
// segmentation; the workers must go idle; a closed connection gives back its tail, its
// subscriptions and its interest on the other worker.
// Input layout as service_harness.hh: bytes, up to 15 cut lengths, a count byte.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/services/pubsub/service.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/run_idle.hh"

namespace {

using namespace cw;
using W = rt::Worker<dp::FakeWorker, std::variant<svc::Pubsub>>;

#define PS_FUZZ_CHECK(c)    \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

struct Pair {
  static constexpr unsigned kN = 2;
  Pair() : mail(kN, 8, 256) {
    pubsub::PubsubOptions o;
    o.max_payload = 4096;
    o.worker_subscriptions = 64;
    o.max_pending = 64 * 1024;
    for (unsigned w = 0; w < kN; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 1));
      const rt::SocketRef refs[1] = {{0, dp::Transport::tcp, true, true}};
      const dp::Endpoint bound[1] = {{htonl(0x7f000001), htons(4222)}};
      rt::ServiceCtx c{w, kN, 4, 0, refs, {}, bound, {}};
      std::vector<std::variant<svc::Pubsub>> v;
      v.emplace_back(std::in_place_type<svc::Pubsub>, c, o);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v), std::vector<uint16_t>{0}, loop, 4,
                                            stats[w], std::span(&svc[w], 1), mail));
    }
  }
  svc::Pubsub& ps(unsigned w) { return std::get<svc::Pubsub>(workers[w]->service(0)); }

  void run() {
    // The workers must go idle once the input is consumed.
    if (!cw::testing::run_until_idle<W>(workers, stats, mail, 20000)) std::abort();
  }

  struct Outcome {
    std::vector<uint8_t> out, sub_out;
    bool open = false;
  };
  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId s = io[1]->inject_open(0, {htonl(0x7f000001), htons(4243)});
    const std::string_view subs =
        "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB > 1\r\n"
        "SUB > q 2\r\nPING\r\n";
    io[1]->inject_stream(s, {reinterpret_cast<const uint8_t*>(subs.data()), subs.size()});
    run();
    const dp::ConnId c = io[0]->inject_open(0, {htonl(0x7f000001), htons(4242)});
    size_t off = 0, k = 0;
    while (off < b.size() && io[0]->is_open(c)) {
      size_t n = b.size() - off;
      if (k < cuts.size()) n = std::min<size_t>(n, cuts[k++] + 1);
      io[0]->inject_stream(c, b.subspan(off, n));
      off += n;
      run();
    }
    run();
    Outcome o{io[0]->take_stream_out(c), io[1]->take_stream_out(s), io[0]->is_open(c)};
    if (o.open) {
      io[0]->inject_peer_close(c);
      run();
    }
    PS_FUZZ_CHECK(workers[0]->tails().in_use() == 0);
    PS_FUZZ_CHECK(ps(0).subscriptions().size() == 0);  // the fuzzed connection's are gone
    PS_FUZZ_CHECK(ps(1).remote_interest().size() == 0);
    PS_FUZZ_CHECK(ps(0).remote_interest().size() == 2);  // the subscriber's
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
  const auto a = split.stream(bytes, cuts);
  const auto b = whole.stream(bytes, {});
  PS_FUZZ_CHECK(a.out == b.out);
  PS_FUZZ_CHECK(a.sub_out == b.sub_out);
  PS_FUZZ_CHECK(a.open == b.open);
  return 0;
}
