// Refcounted payload buffers: local and remote release, the return list, exhaustion, and
// fan-out references when a post fails.
#include "app/runtime/shared_buf.hh"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "dataplane/fake/fake_io.hh"

namespace cw::rt {
namespace {

TEST(SharedPool, LastLocalReleaseFreesAtOnce) {
  SharedPool pool(0, 2, 64);
  SharedBuf* b = pool.alloc();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->cap, 64u);
  EXPECT_EQ(b->owner, 0);
  SharedPool::retain(b, 2);
  SharedPool::release(b, 0);
  SharedPool::release(b, 0);
  EXPECT_EQ(pool.in_use(), 1u);
  SharedPool::release(b, 0);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.stats().freed_local.get(), 1u);
}

TEST(SharedPool, ForeignLastReleaseReturnsToOwnerOnlyWhenReclaimed) {
  SharedPool pool(0, 2, 64);
  SharedBuf* a = pool.alloc();
  SharedBuf* b = pool.alloc();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(pool.alloc(), nullptr);
  EXPECT_EQ(pool.stats().alloc_failed.get(), 1u);
  SharedPool::release(a, 1);  // worker 1 drops the last reference
  SharedPool::release(b, 3);
  EXPECT_EQ(pool.in_use(), 2u) << "not on the owner's free list until it reclaims";
  EXPECT_EQ(pool.stats().freed_local.get(), 0u);
  EXPECT_EQ(pool.reclaim(), 2u);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.stats().returned.get(), 2u);
  // alloc() reclaims by itself when the free list is empty.
  a = pool.alloc();
  b = pool.alloc();
  SharedPool::release(a, 1);
  EXPECT_EQ(pool.alloc(), a);
  EXPECT_EQ(a->refs.load(), 1u);
  EXPECT_EQ(a->len, 0u);
}

TEST(SharedPool, ConcurrentForeignReleasesAllComeBack) {
  constexpr uint32_t kBufs = 256;
  SharedPool pool(0, kBufs, 16);
  std::vector<SharedBuf*> bufs;
  for (uint32_t i = 0; i < kBufs; ++i) {
    bufs.push_back(pool.alloc());
    SharedPool::retain(bufs.back(), 2);  // three holders: owner and two threads
  }
  auto drop = [&](unsigned self) {
    for (SharedBuf* b : bufs) SharedPool::release(b, self);
  };
  std::thread t1(drop, 1), t2(drop, 2);
  drop(0);
  t1.join();
  t2.join();
  pool.reclaim();
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.stats().returned.get() + pool.stats().freed_local.get(), kBufs);
}

TEST(SharedPool, FanOutGivesBackTheReferencesOfFailedPosts) {
  dp::IoConfig iocfg;
  dp::FakeWorker io{0, iocfg, 1};
  WorkerStats st;
  Mailboxes mail{3, 2, 1};  // to each worker: 2 in the ring, 1 parked
  Ctx<dp::FakeWorker> ctx{io, st, nullptr, mail, 0, 3, 0, 0};
  SharedPool pool(0, 8, 32);
  std::vector<SharedBuf*> sent;
  // Four fan-outs to workers 1 and 2: three are taken by each (ring + overflow), the
  // fourth fails for both and its references come back.
  for (int i = 0; i < 4; ++i) {
    SharedBuf* b = pool.alloc();
    const unsigned failed = fan_out(ctx, b, Mail{}, false);
    EXPECT_EQ(failed, i < 3 ? 0u : 2u) << i;
    SharedPool::release(b, 0);  // the sender's own reference
    if (i < 3) sent.push_back(b);
  }
  EXPECT_EQ(pool.in_use(), 3u) << "the failed fan-out's buffer is already free";
  EXPECT_EQ(st.mail_dropped.get(), 2u);
  // The receivers release what they got, on their own cores.
  for (unsigned w : {1u, 2u}) {
    for (int round = 0; round < 3; ++round) {
      Mail m;
      while (mail.ring(0, w).pop(m)) SharedPool::release(static_cast<SharedBuf*>(m.p), w);
      mail.flush_parked(0, st);
    }
  }
  pool.reclaim();
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.stats().returned.get(), 3u);
}

}  // namespace
}  // namespace cw::rt
