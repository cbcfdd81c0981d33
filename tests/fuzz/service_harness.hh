// Shared by the service fuzz targets. Harness runs one echo service in rt::Worker over the
// fake backend and feeds it the fuzzer's bytes
//   (1) as one UDP datagram: at most one reply, within the amplification bound;
//   (2) as a TCP stream cut at fuzzer-chosen points, and again as one segment: the output
//       and the connection's fate must not depend on the segmentation.
// Workers runs N workers of one service with mail between them (the kv and pubsub targets).
// Input layout: stream bytes, then up to 15 cut lengths, then a count byte (low 4 bits =
// how many cut-length bytes precede it). Cut lengths are taken in turn (0 -> 1 byte); the
// last segment holds whatever is left.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "app/runtime/registry.hh"
#include "app/runtime/worker.hh"
#include "app/services/udp_reply.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/run_idle.hh"

namespace cw::fuzz {

#define CW_FUZZ_CHECK(c)    \
  do {                      \
    if (!(c)) std::abort(); \
  } while (0)

// An input in the layout above: the stream bytes and the cut lengths.
struct CutInput {
  std::span<const uint8_t> bytes, cuts;
};

inline CutInput split_input(std::span<const uint8_t> in) {
  if (in.empty()) return {};
  const size_t ncuts = std::min<size_t>(in.back() & 15, in.size() - 1);
  return {in.first(in.size() - 1 - ncuts), in.subspan(in.size() - 1 - ncuts, ncuts)};
}

// Sends b on connection c in the segments `cuts` gives, calling step() after each one, while
// the connection stays open.
template <class Step>
void feed_cut(dp::FakeWorker& io, dp::ConnId c, std::span<const uint8_t> b,
              std::span<const uint8_t> cuts, Step step) {
  size_t off = 0, k = 0;
  while (off < b.size() && io.is_open(c)) {
    size_t n = b.size() - off;
    if (k < cuts.size()) n = std::min<size_t>(n, cuts[k++] + 1);
    io.inject_stream(c, b.subspan(off, n));
    off += n;
    step();
  }
}

// N workers of one service (built from Options on each), each over its own fake backend with
// the sockets `refs` bound at `bound`, mail between them.
template <class Service, unsigned N>
struct Workers {
  using W = rt::Worker<dp::FakeWorker, std::variant<Service>>;
  static constexpr unsigned kN = N;

  template <class Options>
  Workers(std::span<const rt::SocketRef> refs, std::span<const dp::Endpoint> bound,
          const Options& o)
      : mail(N, 8, 256) {
    for (unsigned w = 0; w < N; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, refs.size()));
      rt::ServiceCtx c{w, N, 4, 0, refs, {}, bound, {}};
      std::vector<std::variant<Service>> v;
      v.emplace_back(std::in_place_type<Service>, c, o);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v),
                                            std::vector<uint16_t>(refs.size(), 0), loop, 4,
                                            stats[w], std::span(&svc[w], 1), mail));
    }
  }
  Service& service(unsigned w) { return std::get<Service>(workers[w]->service(0)); }

  // The workers must go idle once the input is consumed.
  void run() { CW_FUZZ_CHECK(testing::run_until_idle<W>(workers, stats, mail, 20000)); }

  dp::IoConfig iocfg{};
  rt::Mailboxes mail;
  rt::LoopConfig loop{
      .burst = 8, .busy_poll = true, .tail_small = 64, .tail_buffers = 8, .max_timers = 16};
  rt::WorkerStats stats[N];
  rt::ServiceStats svc[N];
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<W>> workers;
};

template <class Service>
class Harness {
 public:
  struct Outcome {
    std::vector<uint8_t> out;
    bool open = false;
  };

  Harness() : w_(io_, {Service{}}, {0}, loop_, 4, stats_, svc_, mail_) {}

  std::vector<dp::FakeWorker::SentDatagram> datagram(std::span<const uint8_t> b) {
    io_.inject_datagram(0, peer_, b);
    run();
    return io_.take_sent();
  }

  Outcome stream(std::span<const uint8_t> b, std::span<const uint8_t> cuts) {
    const dp::ConnId c = io_.inject_open(0, peer_);
    feed_cut(io_, c, b, cuts, [this] { w_.run_once(); });  // each segment on its own
    run();
    Outcome o{io_.take_stream_out(c), io_.is_open(c)};
    if (o.open) {
      io_.inject_peer_close(c);
      run();
    }
    CW_FUZZ_CHECK(w_.tails().in_use() == 0);  // a closed connection gives its tail back
    return o;
  }

 private:
  void run() {
    for (int i = 0; i < 1000; ++i) {
      const uint64_t before = stats_.items.get();
      w_.run_once();
      if (stats_.items.get() == before) return;
    }
    std::abort();  // the worker must go idle once the input is consumed
  }

  dp::IoConfig iocfg_{};
  dp::FakeWorker io_{0, iocfg_, 1};
  rt::WorkerStats stats_;
  std::vector<rt::ServiceStats> svc_ = std::vector<rt::ServiceStats>(1);
  rt::Mailboxes mail_{1, 4};
  rt::LoopConfig loop_{
      .burst = 8, .busy_poll = true, .tail_small = 64, .tail_buffers = 4, .max_timers = 16};
  rt::Worker<dp::FakeWorker, std::variant<Service>> w_;
  dp::Endpoint peer_{htonl(0x7f000001), htons(4242)};
};

template <class Service>
int run_one(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto [bytes, cuts] = split_input({data, size});

  Harness<Service> h;
  const auto sent = h.datagram(bytes);
  CW_FUZZ_CHECK(sent.size() <= 1);
  for (const auto& d : sent)
    CW_FUZZ_CHECK(svc::udp_reply_allowed(uint32_t(bytes.size()), uint32_t(d.bytes.size())));

  const auto split = h.stream(bytes, cuts);
  const auto whole = h.stream(bytes, {});
  CW_FUZZ_CHECK(split.out == whole.out);
  CW_FUZZ_CHECK(split.open == whole.open);
  return 0;
}

}  // namespace cw::fuzz
