// Two workers serving pipelined streams whose keys are owned half by each: requests for the
// other worker's keys go there by mail (payload in the requester's shared buffer), the
// reply comes back the same way (in the replier's buffer), and the client must see every
// reply, in request order. Alongside: a fan-out notice to every worker each few requests,
// and an issuer that pauses on a full mailbox and resumes when it drains. Run once with
// both workers driven from one thread (deterministic) and once on two threads pinned to
// cores 0 and 1, with mailboxes of depth 4 so the full-mailbox path is taken.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "app/runtime/reply_order.hh"
#include "app/runtime/router.hh"
#include "app/runtime/shared_buf.hh"
#include "app/runtime/worker.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/runtime/issuer.hh"

namespace cw::rt {
namespace {

constexpr unsigned kWorkers = 2;
constexpr uint16_t kReq = 1, kRep = 2, kNotice = 3;
constexpr uint32_t kNoticeEvery = 16;  // requests between fan-outs, per worker

std::span<const uint8_t> key_of(std::span<const uint8_t> frame) {
  return frame.subspan(1, frame[0]);
}

// The reply to key k from worker w: "<len>" K-upper-cased ":" w.
uint32_t make_reply(std::span<const uint8_t> k, unsigned w, uint8_t* out) {
  out[0] = uint8_t(k.size() + 2);
  for (size_t i = 0; i < k.size(); ++i) out[1 + i] = uint8_t(std::toupper(k[i]));
  out[1 + k.size()] = ':';
  out[2 + k.size()] = uint8_t('0' + w);
  return uint32_t(k.size() + 3);
}

// Frames "<len><key>"; every key is answered by its owner worker.
struct Shard {
  SharedPool* pool;  // this worker's
  ReplyOrder* order;
  uint64_t requests = 0, local_direct = 0, notices_sent = 0, notices_seen = 0, errors = 0;

  template <class Io>
  StreamVerdict on_stream(Ctx<Io>& ctx, dp::ConnId c, std::span<const uint8_t> b) {
    uint32_t used = 0;
    while (used < b.size() && b.size() - used >= 1u + b[used]) {
      const auto frame = b.subspan(used, 1u + b[used]);
      const auto key = key_of(frame);
      const unsigned owner = ctx.owner_of(hash_key(key));
      uint8_t rep[260];
      if (owner == ctx.worker && order->idle(c)) {
        // Local fast path: nothing outstanding, answer in place.
        const uint32_t n = make_reply(key, ctx.worker, rep);
        uint8_t* out = ctx.io.stream_reserve(c, n);
        if (!out) return {used, true};
        std::memcpy(out, rep, n);
        ctx.io.stream_commit(c, n);
        ++local_direct;
      } else {
        const uint32_t seq = order->begin(c);
        if (seq == ReplyOrder::kFull) break;  // stop reading until replies go out
        if (owner == ctx.worker) {
          if (!answer(ctx, c, seq, {rep, make_reply(key, ctx.worker, rep)})) return {used, true};
        } else if (!forward(ctx, c, seq, owner, key)) {
          ++errors;
          const uint8_t err[] = {1, 'E'};
          if (!answer(ctx, c, seq, err)) return {used, true};
        }
      }
      used += uint32_t(frame.size());
      if (++requests % kNoticeEvery == 0) notify(ctx);
    }
    return {used, false};
  }

  template <class Io>
  bool forward(Ctx<Io>& ctx, dp::ConnId c, uint32_t seq, unsigned owner,
               std::span<const uint8_t> key) {
    SharedBuf* buf = pool->alloc();
    if (!buf) return false;
    std::memcpy(buf->data, key.data(), key.size());
    buf->len = uint32_t(key.size());
    Mail m;
    m.kind = kReq;
    m.a = c;
    m.b = seq;
    m.p = buf;
    if (ctx.post(owner, m) != Post::failed) return true;
    SharedPool::release(buf, ctx.worker);
    return false;
  }

  template <class Io>
  bool answer(Ctx<Io>& ctx, dp::ConnId c, uint32_t seq, std::span<const uint8_t> bytes) {
    const Reply r = order->reply(ctx.io, c, seq, bytes);
    if (r == Reply::failed) ctx.io.close(c);
    return r != Reply::failed;
  }

  template <class Io>
  void notify(Ctx<Io>& ctx) {
    SharedBuf* b = pool->alloc();
    if (!b) return;
    b->len = 1;
    b->data[0] = uint8_t(ctx.worker);
    Mail m;
    m.kind = kNotice;
    if (fan_out(ctx, b, m, true) == 0) ++notices_sent;
    SharedPool::release(b, ctx.worker);
  }

  template <class Io>
  void on_mail(Ctx<Io>& ctx, const Mail& m) {
    auto* in = static_cast<SharedBuf*>(m.p);
    if (m.kind == kReq) {
      SharedBuf* out = pool->alloc();
      Mail r = m;
      r.kind = kRep;
      r.p = out;
      if (out) out->len = make_reply({in->data, in->len}, ctx.worker, out->data);
      SharedPool::release(in, ctx.worker);
      if (!out || ctx.post(m.from, r) == Post::failed) {
        ++errors;  // the requester's connection waits for this reply: visible in the test
        if (out) SharedPool::release(out, ctx.worker);
      }
    } else if (m.kind == kRep) {
      answer(ctx, dp::ConnId(m.a), uint32_t(m.b), {in->data, in->len});
      SharedPool::release(in, ctx.worker);
    } else if (m.kind == kNotice) {
      ++notices_seen;
      SharedPool::release(in, ctx.worker);
    }
  }

  template <class Io>
  void on_closed(Ctx<Io>&, const dp::RxItem& it) {
    order->closed(it.conn);
  }
  template <class Io>
  void on_tick(Ctx<Io>&) {
    pool->reclaim();
  }
};

using Services = std::variant<Shard, Issuer>;
using W = Worker<dp::FakeWorker, Services>;

// A pipelined client on one worker's fake backend: keeps up to `window` requests out per
// connection and checks each reply against the oldest unanswered request.
struct Client {
  Client(dp::FakeWorker& io, unsigned w, unsigned conns, uint32_t per_conn, uint32_t window)
      : io(io), worker(w), per_conn(per_conn), window(window) {
    for (unsigned i = 0; i < conns; ++i)
      conns_.push_back(
          Conn{io.inject_open(0, {htonl(0x7f000001), htons(uint16_t(4000 + i))}), 0, {}, {}});
  }

  // Sends what the window allows, as one segment per connection split in two at an
  // arbitrary byte so frames cross segments.
  void send() {
    for (size_t ci = 0; ci < conns_.size(); ++ci) {
      Conn& k = conns_[ci];
      std::vector<uint8_t> seg;
      while (k.sent < per_conn && k.expect.size() < window) {
        char key[32];
        const int n = snprintf(key, sizeof key, "k%u-%zu-%u", worker, ci, k.sent++);
        seg.push_back(uint8_t(n));
        seg.insert(seg.end(), key, key + n);
        k.expect.emplace_back(key, size_t(n));
      }
      if (seg.empty()) continue;
      const size_t cut = (k.sent * 7) % seg.size();
      if (cut) io.inject_stream(k.c, std::span(seg).first(cut));
      io.inject_stream(k.c, std::span(seg).subspan(cut));
    }
  }

  void receive() {
    for (Conn& k : conns_) {
      auto v = io.take_stream_out(k.c);
      k.rx.insert(k.rx.end(), v.begin(), v.end());
      size_t off = 0;
      while (off < k.rx.size() && k.rx.size() - off >= 1u + k.rx[off]) {
        const std::string got(k.rx.begin() + off + 1, k.rx.begin() + off + 1 + k.rx[off]);
        off += 1u + k.rx[off];
        if (k.expect.empty()) {
          ++mismatches;
          continue;
        }
        const std::string& key = k.expect.front();
        uint8_t want[64];
        const uint32_t n = make_reply(
            {reinterpret_cast<const uint8_t*>(key.data()), key.size()},
            owner_of(hash_key({reinterpret_cast<const uint8_t*>(key.data()), key.size()}),
                     kWorkers),
            want);
        if (got != std::string(want + 1, want + n)) {
          if (mismatches++ == 0) first_mismatch = key + " -> " + got;
        }
        k.expect.pop_front();
        ++answered;
      }
      k.rx.erase(k.rx.begin(), k.rx.begin() + off);
    }
  }

  bool done() const { return answered == per_conn * conns_.size(); }

  struct Conn {
    dp::ConnId c;
    uint32_t sent = 0;
    std::deque<std::string> expect;
    std::vector<uint8_t> rx;
  };
  dp::FakeWorker& io;
  unsigned worker;
  uint32_t per_conn, window;
  std::vector<Conn> conns_;
  uint64_t answered = 0, mismatches = 0;
  std::string first_mismatch;
};

struct Fixture {
  static constexpr unsigned kConns = 2;
  static constexpr uint32_t kWindow = 32;        // ReplyOrder window per connection
  static constexpr uint32_t kClientWindow = 24;  // what the client keeps outstanding

  explicit Fixture(uint32_t per_conn, uint64_t issue)
      : mail(kWorkers, 4, 4096),
        pools{std::make_unique<SharedPool>(0, 1024, 64),
              std::make_unique<SharedPool>(1, 1024, 64)} {
    for (unsigned w = 0; w < kWorkers; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 1));
      orders.push_back(std::make_unique<ReplyOrder>(ReplyOrderConfig{
          .max_conns = 64, .window = kWindow, .windows = 8, .block_bytes = 32, .blocks = 512}));
      Issuer is;
      is.total = issue;
      workers.push_back(std::make_unique<W>(
          *io[w], std::vector<Services>{Shard{pools[w].get(), orders[w].get()}, is},
          std::vector<uint16_t>{0}, loop, 64, stats[w], std::span(&svc[w * 2], 2), mail));
      clients.push_back(std::make_unique<Client>(*io[w], w, kConns, per_conn, kClientWindow));
    }
  }
  Shard& shard(unsigned w) { return std::get<Shard>(workers[w]->service(0)); }
  Issuer& issuer(unsigned w) { return std::get<Issuer>(workers[w]->service(1)); }

  // Worker w's part is done: its client has every reply, and its issuer role finished.
  bool part_done(unsigned w) {
    const Issuer& is = issuer(w);
    return clients[w]->done() && (w == 0 ? is.next == is.total : is.received == issuer(0).total);
  }
  void step(unsigned w) {
    clients[w]->send();
    workers[w]->run_once();
    clients[w]->receive();
  }

  // After both workers stopped: deliver what is still in the mailboxes (fan-out notices),
  // then let each owner reclaim its returned buffers.
  void settle() {
    for (int i = 0; i < 1000; ++i) {
      bool quiet = true;
      for (unsigned w = 0; w < kWorkers; ++w)
        quiet = quiet && !mail.has_mail(w) && mail.parked(w) == 0;
      if (quiet) break;
      for (unsigned w = 0; w < kWorkers; ++w) step(w);
    }
    for (unsigned w = 0; w < kWorkers; ++w) step(w);
  }

  void check() {
    uint64_t notices_sent = 0, notices_seen = 0;
    for (unsigned w = 0; w < kWorkers; ++w) {
      SCOPED_TRACE("worker " + std::to_string(w));
      const Client& cl = *clients[w];
      EXPECT_TRUE(cl.done()) << cl.answered << " replies";
      EXPECT_EQ(cl.mismatches, 0u) << "first: " << cl.first_mismatch;
      EXPECT_EQ(shard(w).errors, 0u);
      EXPECT_EQ(stats[w].mail_dropped.get(), 0u);
      EXPECT_EQ(stats[w].mail_out.get() - self_mail(w),
                stats[1 - w].mail_in.get() - self_mail(1 - w))
          << "every mail sent to the other worker was delivered";
      EXPECT_EQ(pools[w]->in_use(), 0u) << "every shared buffer came home";
      EXPECT_EQ(pools[w]->stats().alloc_failed.get(), 0u);
      EXPECT_GT(pools[w]->stats().returned.get(), 0u) << "some came home from the other core";
      EXPECT_EQ(orders[w]->blocks_free(), 512u);
      EXPECT_EQ(orders[w]->stats().dropped.get(), 0u);
      EXPECT_GT(orders[w]->stats().held.get(), 0u) << "some local replies waited for remote ones";
      notices_sent += shard(w).notices_sent;
      notices_seen += shard(w).notices_seen;
    }
    EXPECT_GT(notices_sent, 0u);
    EXPECT_EQ(notices_seen, notices_sent * kWorkers) << "each fan-out reached every worker";
    EXPECT_EQ(issuer(1).received, issuer(0).total);
    EXPECT_EQ(issuer(1).out_of_order, 0u);
    EXPECT_GT(issuer(0).pauses, 0u) << "the issuer met a full mailbox";
    EXPECT_EQ(issuer(0).resumes, issuer(0).pauses);
    EXPECT_GT(stats[0].mail_deferred.get(), 0u);
  }
  // Mail a worker sent itself (fan-out notices include the sender).
  uint64_t self_mail(unsigned w) { return shard(w).notices_sent; }

  dp::IoConfig iocfg;
  const LoopConfig loop{.burst = 64, .busy_poll = true};
  Mailboxes mail;
  WorkerStats stats[kWorkers];
  ServiceStats svc[kWorkers * 2];
  std::unique_ptr<SharedPool> pools[kWorkers];
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<ReplyOrder>> orders;
  std::vector<std::unique_ptr<W>> workers;
  std::vector<std::unique_ptr<Client>> clients;
};

TEST(CrossCore, OneThreadPipelinedRepliesInOrderBuffersReturnedNothingLost) {
  Fixture f(500, 2000);
  for (int i = 0; i < 200000 && !(f.part_done(0) && f.part_done(1)); ++i) {
    f.step(0);
    if (i % 3 == 0) f.step(1);  // the owner of half the keys runs slower
  }
  f.settle();
  f.check();
}

bool pin(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

TEST(CrossCore, TwoPinnedThreadsUnderLoadRepliesInOrderNothingLost) {
  Fixture f(4000, 100000);
  std::atomic<unsigned> parts_done{0};
  std::atomic<bool> timed_out{false};
  std::atomic<unsigned> pinned{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  auto run = [&](unsigned w) {
    if (std::thread::hardware_concurrency() > w && pin(w)) pinned.fetch_add(1);
    // Worker 1 starts late, so worker 0's mail to it must park (mailbox depth 4).
    if (w == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bool mine = false;
    for (uint64_t i = 0;; ++i) {
      f.step(w);
      if (!mine && f.part_done(w)) {
        mine = true;
        parts_done.fetch_add(1);
      }
      if (parts_done.load() == kWorkers) break;
      if ((i & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
        timed_out.store(true);
        break;
      }
    }
  };
  std::thread t0(run, 0), t1(run, 1);
  t0.join();
  t1.join();
  ASSERT_FALSE(timed_out.load()) << "client 0 got " << f.clients[0]->answered << ", client 1 "
                                 << f.clients[1]->answered;
  if (pinned.load() != kWorkers) std::printf("note: ran unpinned (fewer than 2 cores?)\n");
  f.settle();
  f.check();
  std::printf(
      "replies %lu+%lu (held %lu+%lu), mail parked %lu+%lu, issuer pauses %u, buffers "
      "returned cross-core %lu+%lu\n",
      f.clients[0]->answered, f.clients[1]->answered, f.orders[0]->stats().held.get(),
      f.orders[1]->stats().held.get(), f.stats[0].mail_deferred.get(),
      f.stats[1].mail_deferred.get(), f.issuer(0).pauses, f.pools[0]->stats().returned.get(),
      f.pools[1]->stats().returned.get());
}

}  // namespace
}  // namespace cw::rt
