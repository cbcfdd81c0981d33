// Mail between workers: the key router, the full-mailbox policy (park, report
// backpressure, deliver in order, fail visibly only past the overflow) and the drained hook.
#include "app/runtime/mailbox.hh"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <variant>
#include <vector>

#include "app/runtime/router.hh"
#include "app/runtime/worker.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/runtime/issuer.hh"

namespace cw::rt {
namespace {

TEST(Router, OwnerIsInRangeStableAndSpreadsKeys) {
  for (unsigned n : {1u, 2u, 3u, 7u, 64u}) {
    std::vector<unsigned> per(n, 0);
    for (uint32_t i = 0; i < 20000; ++i) {
      const std::string k = "key:" + std::to_string(i);
      const uint64_t h = hash_key({reinterpret_cast<const uint8_t*>(k.data()), k.size()});
      const unsigned o = owner_of(h, n);
      ASSERT_LT(o, n);
      EXPECT_EQ(o, owner_of(h, n));
      ++per[o];
    }
    // Uniform within a wide margin (expected 20000/n each).
    for (unsigned c : per) EXPECT_GT(c, 20000 / n / 2) << "n=" << n;
  }
  EXPECT_EQ(owner_of(0, 4), 0u);
  EXPECT_EQ(owner_of(~uint64_t{0}, 4), 3u);
}

TEST(Router, HashDependsOnEveryByte) {
  uint8_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint64_t h = hash_key(a);
  for (auto& b : a) {
    ++b;
    EXPECT_NE(hash_key(a), h);
    --b;
  }
}

TEST(Router, LocalKeysRunInPlaceOthersAreMailedToTheirOwner) {
  dp::IoConfig iocfg;
  dp::FakeWorker io{1, iocfg, 1};
  WorkerStats st;
  Mailboxes mail{2, 8};
  Ctx<dp::FakeWorker> ctx{io, st, nullptr, mail, 1, 2, 3, 0};
  const uint64_t mine = ~uint64_t{0}, theirs = 0;  // owner 1 and owner 0 of 2
  int ran = 0;
  Mail m;
  m.a = 42;
  EXPECT_EQ(ctx.post_local_or_remote(mine, m, [&] { ++ran; }), Post::local);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(mail.ring(1, 1).size(), 0u) << "the local fast path sends no mail";
  EXPECT_EQ(ctx.post_local_or_remote(theirs, m, [&] { ++ran; }), Post::sent);
  EXPECT_EQ(ran, 1);
  Mail got;
  ASSERT_TRUE(mail.ring(1, 0).pop(got));
  EXPECT_EQ(got.a, 42u);
  EXPECT_EQ(got.from, 1u);
  EXPECT_EQ(got.service, 3) << "to the same service on the owner";
}

TEST(MailboxPolicy, FullRingParksThenFailsVisiblyAndKeepsOrder) {
  Mailboxes mail{2, 2, 4};  // ring depth 2, overflow 4
  WorkerStats st;
  Mail m;
  std::vector<Post> r;
  for (uint64_t i = 0; i < 8; ++i) {
    m.a = i;
    r.push_back(mail.post(0, 1, m, st));
  }
  EXPECT_EQ(r, (std::vector<Post>{Post::sent, Post::sent, Post::deferred, Post::deferred,
                                  Post::deferred, Post::deferred, Post::failed, Post::failed}));
  EXPECT_EQ(st.mail_out.get(), 2u);
  EXPECT_EQ(st.mail_deferred.get(), 4u);
  EXPECT_EQ(st.mail_dropped.get(), 2u);
  EXPECT_TRUE(mail.backpressured(0, 1));
  EXPECT_FALSE(mail.backpressured(0, 0));
  EXPECT_FALSE(mail.backpressured(1, 0));

  // The receiver takes one: the ring has room, but new mail must queue behind the parked.
  Mail got;
  std::vector<uint64_t> seen;
  ASSERT_TRUE(mail.ring(0, 1).pop(got));
  seen.push_back(got.a);
  m.a = 100;
  EXPECT_EQ(mail.post(0, 1, m, st), Post::failed) << "overflow still full: no overtaking";
  EXPECT_FALSE(mail.flush_parked(0, st)) << "one moved, three still parked";
  for (int round = 0; round < 10 && seen.size() < 6; ++round) {
    while (mail.ring(0, 1).pop(got)) seen.push_back(got.a);
    mail.flush_parked(0, st);
  }
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_FALSE(mail.backpressured(0, 1));
  EXPECT_EQ(mail.parked(0), 0u);
  EXPECT_EQ(st.mail_out.get(), 6u);
}

TEST(MailboxPolicy, IssuerPausesOnAFullMailboxAndResumesWithNothingLost) {
  using S = std::variant<Issuer>;
  dp::IoConfig iocfg;
  dp::FakeWorker io0{0, iocfg, 1}, io1{1, iocfg, 1};
  std::array<WorkerStats, 2> st;
  std::vector<ServiceStats> svc(2);
  Mailboxes mail{2, 4, 8};
  // The receiver drains at most `burst` mails per sender and loop: slower than the issuer.
  const LoopConfig loop{.burst = 3, .busy_poll = true};
  Issuer is;
  is.total = 1000;
  Worker<dp::FakeWorker, S> w0{io0, {is}, {0}, loop, 8, st[0], {&svc[0], 1}, mail};
  Worker<dp::FakeWorker, S> w1{io1, {Issuer{}}, {0}, loop, 8, st[1], {&svc[1], 1}, mail};
  auto& a = std::get<Issuer>(w0.service(0));
  auto& b = std::get<Issuer>(w1.service(0));
  for (int i = 0; i < 10000 && b.received < a.total; ++i) {
    w0.run_once();
    w1.run_once();
  }
  EXPECT_EQ(b.received, a.total);
  EXPECT_EQ(b.out_of_order, 0u);
  EXPECT_GT(a.pauses, 0u);
  EXPECT_EQ(a.resumes, a.pauses);
  EXPECT_GT(st[0].mail_deferred.get(), 0u);
  EXPECT_EQ(st[0].mail_dropped.get(), 0u);
  EXPECT_EQ(st[0].mail_out.get(), a.total);
  EXPECT_EQ(st[1].mail_in.get(), a.total);
}

TEST(MailboxPolicy, ParkedMailShortensTheBlockInInterruptMode) {
  using S = std::variant<Issuer>;
  dp::IoConfig iocfg;
  dp::FakeWorker io{0, iocfg, 1};
  WorkerStats st;
  std::vector<ServiceStats> svc(1);
  Mailboxes mail{2, 2, 8};
  const LoopConfig loop{.busy_poll = false, .max_block_ns = 10'000'000'000};
  Issuer is;
  is.total = 4;  // two fit the ring, the third is parked (worker 1 never runs)
  Worker<dp::FakeWorker, S> w{io, {is}, {0}, loop, 8, st, svc, mail};
  w.run_once();  // issues
  w.run_once();  // blocks: parked mail must be retried soon
  EXPECT_EQ(mail.parked(0), 1u);
  EXPECT_LE(io.last_timeout_ns(), int64_t(kParkedRetryNs));
}

}  // namespace
}  // namespace cw::rt
