// Stream flow control in the worker loop, over the fake backend: the need hint (a 1 MiB
// frame grows its tail straight to its size and is parsed once), tails that grow in steps,
// the pause verdict and resume, and stream_writable reaching the service.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "dataplane/fake/fake_io.hh"

namespace cw::rt {
namespace {

using dp::FakeWorker;

// Frames are a 4-byte big-endian body length, then the body. The reply to a frame is its
// body length (4 bytes) and first body byte. A body starting with 'P' pauses the
// connection after its reply. With `hint`, an incomplete frame says how much it needs.
struct Sized {
  static constexpr uint32_t kMaxFrame = (2u << 20) + 4;
  uint32_t max_frame() const { return kMaxFrame; }
  template <class Io>
  StreamVerdict on_stream(Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    ++calls;
    uint32_t used = 0;
    while (true) {
      const size_t left = b.size() - used;
      if (left < 4) return {used, false, false, hint && left ? 4u : 0u};
      const uint32_t n = uint32_t(b[used]) << 24 | uint32_t(b[used + 1]) << 16 |
                         uint32_t(b[used + 2]) << 8 | b[used + 3];
      if (n == 0 || n > (64u << 20)) return {used, true};
      if (left < 4 + size_t(n)) return {used, false, false, hint ? 4 + n : 0};
      uint8_t* out = ctx.io.stream_reserve(c, 5);
      if (!out) return {used, true};
      std::memcpy(out, b.data() + used, 4);
      out[4] = b[used + 4];
      ctx.io.stream_commit(c, 5);
      used += 4 + n;
      if (b[used - n] == 'P') return {used, false, true};
    }
  }
  template <class Io>
  void on_writable(Ctx<Io>&, dp::ConnId c) {
    writable.push_back(c);
  }
  bool hint = true;
  uint32_t calls = 0;
  std::vector<dp::ConnId> writable;
};

std::vector<uint8_t> frame(uint32_t n, char first) {
  std::vector<uint8_t> v(4 + size_t(n), 'x');
  v[0] = uint8_t(n >> 24);
  v[1] = uint8_t(n >> 16);
  v[2] = uint8_t(n >> 8);
  v[3] = uint8_t(n);
  v[4] = uint8_t(first);
  return v;
}
std::vector<uint8_t> reply(uint32_t n, char first) {
  auto f = frame(n, first);
  f.resize(5);
  return f;
}

class StreamFlow : public ::testing::Test {
 protected:
  dp::IoConfig iocfg;
  FakeWorker io{0, iocfg, 1};
  WorkerStats stats;
  std::vector<ServiceStats> svc_stats = std::vector<ServiceStats>(1);
  Mailboxes mail{1, 8};
  LoopConfig loop{.burst = 16, .busy_poll = true, .tail_small = 4096, .tail_buffers = 64};
  Worker<FakeWorker, std::variant<Sized>> w{io, {Sized{}}, {0}, loop, 16, stats, svc_stats, mail};
  dp::Endpoint peer{htonl(0x7f000001), htons(5555)};
  Sized& svc() { return std::get<Sized>(w.service(0)); }

  // Injects bytes in segments of `seg`, running the loop as it goes; returns the most tail
  // bytes the worker held at any time.
  uint64_t feed(dp::ConnId c, const std::vector<uint8_t>& bytes, size_t seg) {
    uint64_t peak = 0;
    for (size_t at = 0; at < bytes.size(); at += seg) {
      io.inject_stream(c, std::span(bytes).subspan(at, std::min(seg, bytes.size() - at)));
      w.run_once();
      peak = std::max(peak, w.tails().bytes_in_use());
    }
    for (int i = 0; i < 4; ++i) w.run_once();
    return peak;
  }
};

TEST_F(StreamFlow, OneMiBFrameWithANeedHintGrowsOnceAndIsParsedOnce) {
  const dp::ConnId c = io.inject_open(0, peer);
  w.run_once();
  constexpr uint32_t kBody = 1u << 20;
  const uint64_t peak = feed(c, frame(kBody, 'v'), 2048);
  EXPECT_EQ(io.take_stream_out(c), reply(kBody, 'v'));
  // First segment in place (answers "need 1 MiB + 4"), then only once the frame is whole.
  EXPECT_EQ(svc().calls, 2u);
  EXPECT_GE(peak, kBody + 4);
  EXPECT_LE(peak, (kBody + 4) / 8 * 9 + 4096) << "the frame costs what it holds, +1/8 at most";
  EXPECT_EQ(w.tails().bytes_in_use(), 0u) << "consumed: nothing held";
  EXPECT_EQ(w.tails().in_use(), 0u);
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(StreamFlow, TailsWithoutAHintGrowInStepsNotToTheMaxFrame) {
  svc().hint = false;
  const dp::ConnId c = io.inject_open(0, peer);
  w.run_once();
  // 5 KiB of a 1 MiB frame: held in a step near 5 KiB, not a 2 MiB max-frame buffer.
  auto f = frame(1u << 20, 'a');
  f.resize(5000);
  feed(c, f, 1000);
  EXPECT_GE(w.tails().bytes_in_use(), 5000u);
  EXPECT_LE(w.tails().bytes_in_use(), 10000u);
  // The rest completes it; the tail went up in doublings (calls: once per top-up).
  auto whole = frame(1u << 20, 'a');
  feed(c, std::vector<uint8_t>(whole.begin() + 5000, whole.end()), 64 * 1024);
  EXPECT_EQ(io.take_stream_out(c), reply(1u << 20, 'a'));
  EXPECT_EQ(w.tails().bytes_in_use(), 0u);
  EXPECT_EQ(stats.stream_oversize.get(), 0u);
  EXPECT_EQ(stats.stream_no_buffer.get(), 0u);
}

TEST_F(StreamFlow, PauseVerdictKeepsTheRestUntilResume) {
  const dp::ConnId c = io.inject_open(0, peer);
  w.run_once();
  std::vector<uint8_t> seg = frame(3, 'P');
  for (char k : {'b', 'c'}) {
    auto f = frame(3, k);
    seg.insert(seg.end(), f.begin(), f.end());
  }
  io.inject_stream(c, seg);
  w.run_once();
  EXPECT_EQ(io.take_stream_out(c), reply(3, 'P')) << "frames after the pause wait";
  EXPECT_TRUE(io.is_paused(c));
  // More bytes while paused: not parsed (the backend holds them).
  const auto d = frame(3, 'd');
  io.inject_stream(c, d);
  for (int i = 0; i < 3; ++i) w.run_once();
  EXPECT_TRUE(io.take_stream_out(c).empty());
  const uint32_t calls = svc().calls;
  // The service resumes later (e.g. on mail): the kept frames, then the held one, in order.
  io.resume(c);
  for (int i = 0; i < 3; ++i) w.run_once();
  auto want = reply(3, 'b');
  for (char k : {'c', 'd'}) {
    auto r = reply(3, k);
    want.insert(want.end(), r.begin(), r.end());
  }
  EXPECT_EQ(io.take_stream_out(c), want);
  EXPECT_EQ(svc().calls, calls + 2);  // the kept tail, then the held segment
  EXPECT_FALSE(io.is_paused(c));
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(StreamFlow, WritableReachesTheService) {
  const dp::ConnId c = io.inject_open(0, peer);
  w.run_once();
  io.inject_stream(c, frame(3, 'a'));
  w.run_once();
  io.notify_writable(c);  // the reply is queued, under the low-water mark: owed at once
  w.run_once();
  EXPECT_EQ(svc().writable, std::vector<dp::ConnId>{c});
}

TEST_F(StreamFlow, NeedAboveTheFrameLimitClosesAsOversize) {
  const dp::ConnId c = io.inject_open(0, peer);
  w.run_once();
  auto f = frame(Sized::kMaxFrame, 'z');  // needs 4 bytes more than max_frame
  f.resize(100);
  io.inject_stream(c, f);
  w.run_once();
  EXPECT_FALSE(io.is_open(c));
  EXPECT_EQ(stats.stream_oversize.get(), 1u);
  EXPECT_EQ(w.tails().in_use(), 0u);
}

}  // namespace
}  // namespace cw::rt
