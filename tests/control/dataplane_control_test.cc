#include "control/dataplane_control.hh"
#include "tests/control/scratch_dir.hh"

#include <unistd.h>

#include <gtest/gtest.h>

#include <span>
#include <thread>

#include "app/runtime/mailbox.hh"

namespace cw::ctl {
namespace {

struct FakeRuntime {
  unsigned n = 2;
  std::vector<std::string> names{"echo", "kv"};
  std::unique_ptr<rt::WorkerStats[]> ws = std::make_unique<rt::WorkerStats[]>(n);
  std::unique_ptr<rt::ServiceStats[]> ss = std::make_unique<rt::ServiceStats[]>(n * 2);
  std::unique_ptr<dp::IoCounters[]> io = std::make_unique<dp::IoCounters[]>(n);
  rt::Mailboxes mail{n, 16};
  std::string backend = "fake";
  unsigned workers() const { return n; }
  const std::string& backend_name() const { return backend; }
  const std::vector<std::string>& service_names() const { return names; }
  const rt::WorkerStats& worker_stats(unsigned w) const { return ws[w]; }
  const rt::ServiceStats& service_stats(unsigned w, uint16_t s) const { return ss[w * 2 + s]; }
  const dp::IoCounters& io_counters(unsigned w) const { return io[w]; }
  rt::Mailboxes& mailboxes() { return mail; }
  // Service kv declares one counter (as rt::Runtime exposes them).
  static constexpr rt::CounterDecl kKv[] = {{"get_hits", "GET requests that found their key"}};
  std::unique_ptr<dp::Counter[]> hits = std::make_unique<dp::Counter[]>(n);
  std::span<const rt::CounterDecl> counter_decls(uint16_t s) const {
    return s == 1 ? std::span<const rt::CounterDecl>(kKv) : std::span<const rt::CounterDecl>{};
  }
  std::span<const dp::Counter> service_counters(unsigned w, uint16_t s) const {
    return s == 1 ? std::span<const dp::Counter>(&hits[w], 1) : std::span<const dp::Counter>{};
  }
};

class DataplaneControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    cfg_.run_dir = scratch_ / "run";
    cfg_.socket = cfg_.run_dir + "/control.sock";
    cfg_.stats = cfg_.run_dir + "/stats";
    cfg_.publish_ms = 1;
    DataplaneHooks hooks;
    hooks.config_json = [] { return Json{{"runtime", {{"backend", "fake"}}}}; };
    hooks.set_log_level = [this](const std::string& l) {
      if (l != "debug" && l != "info") return std::string("unknown level ") + l;
      level_ = l;
      return std::string();
    };
    hooks.request_exit = [this](bool drain) { exit_requests_.push_back(drain); };
    auto c = DataplaneControl<FakeRuntime>::start(rt_, cfg_, hooks);
    ASSERT_TRUE(c) << c.error().message;
    ctl_ = std::move(c.value());
  }
  void TearDown() override { ctl_.reset(); }
  test::ScratchDir scratch_{"cw-dpc"};
  Json req(const Json& r) {
    auto j = control_request(cfg_.socket, r);
    EXPECT_TRUE(j) << j.error().message;
    return j ? j.value() : Json{};
  }
  // Waits (bounded) until the segment shows at least `rounds` publish rounds.
  Snapshot snapshot_after(uint64_t rounds) {
    auto r = SegmentReader::open(cfg_.stats);
    EXPECT_TRUE(r) << r.error().message;
    for (int i = 0; i < 1000; ++i) {
      auto s = r->snapshot();
      if (s && s->publish_count >= rounds) return s.value();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ADD_FAILURE() << "no publish round";
    return {};
  }

  ControlConfig cfg_;
  FakeRuntime rt_;
  std::unique_ptr<DataplaneControl<FakeRuntime>> ctl_;
  std::string level_;
  std::vector<bool> exit_requests_;
};

TEST_F(DataplaneControlTest, StatusAndPublishedCounters) {
  Json s = req({{"cmd", "status"}});
  EXPECT_EQ(s["ok"], true);
  EXPECT_EQ(s["pid"], getpid());
  EXPECT_EQ(s["workers"], 2);
  EXPECT_EQ(s["state"], "serving");
  EXPECT_EQ(s["services"][1], "kv");
  rt_.io[1].rx_datagrams.add(5);
  rt_.ss[1].requests.add(4);  // worker 0, service kv
  rt_.hits[0].add(2);
  rt_.hits[1].add(3);
  auto first = snapshot_after(1);
  auto snap = snapshot_after(first.publish_count + 2);
  EXPECT_EQ(snap.io_total(0), 5u);
  EXPECT_EQ(snap.service_total(1, 0), 4u);
  EXPECT_EQ(snap.state, State::serving);
  EXPECT_EQ(snap.epoch, s["epoch"].get<uint64_t>());
  ASSERT_EQ(snap.counters.size(), 1u) << "kv's declaration reached the segment";
  EXPECT_EQ(snap.counters[0].service, 1u);
  EXPECT_EQ(snap.counters[0].name, "get_hits");
  EXPECT_EQ(snap.counter_total(0), 5u);
  Json svc = req({{"cmd", "services"}});
  EXPECT_EQ(svc["services"][1]["requests"], 4);
  EXPECT_EQ(svc["services"][1]["counters"]["get_hits"], 5);
  EXPECT_EQ(svc["services"][0]["counters"], Json::object());
}

TEST_F(DataplaneControlTest, ServiceDisableReachesEveryWorkerMailbox) {
  Json r = req({{"cmd", "service"}, {"name", "kv"}, {"enable", false}});
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["workers_notified"], 2);
  for (unsigned w = 0; w < 2; ++w) {
    rt::Mail m;
    ASSERT_TRUE(rt_.mail.control_ring(w).pop(m));
    EXPECT_EQ(m.kind, rt::kMailServiceDisable);
    EXPECT_EQ(m.service, 1);
    EXPECT_EQ(m.from, rt::kControlSender);
  }
  EXPECT_EQ(req({{"cmd", "services"}})["services"][1]["enabled"], false);
  Json bad = req({{"cmd", "service"}, {"name", "nope"}, {"enable", true}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_NE(bad["error"].get<std::string>().find("no service named 'nope'"), std::string::npos);
}

TEST_F(DataplaneControlTest, DrainShutdownLogLevelConfig) {
  EXPECT_EQ(req({{"cmd", "log-level"}, {"level", "debug"}})["ok"], true);
  EXPECT_EQ(level_, "debug");
  EXPECT_EQ(req({{"cmd", "log-level"}, {"level", "loud"}})["ok"], false);
  EXPECT_EQ(req({{"cmd", "config"}})["config"]["runtime"]["backend"], "fake");
  Json d = req({{"cmd", "drain"}});
  EXPECT_EQ(d["state"], "draining");
  EXPECT_EQ(d["mail_queued"], true);
  // Every worker: stop accepting first, then kMailDrain to each service; nothing twice.
  for (unsigned w = 0; w < 2; ++w) {
    rt::Mail m;
    ASSERT_TRUE(rt_.mail.control_ring(w).pop(m));
    EXPECT_EQ(m.service, rt::kWorkerMail);
    EXPECT_EQ(m.kind, rt::kMailStopAccepting);
    for (uint16_t s = 0; s < 2; ++s) {
      ASSERT_TRUE(rt_.mail.control_ring(w).pop(m));
      EXPECT_EQ(m.service, s);
      EXPECT_EQ(m.kind, rt::kMailDrain);
    }
  }
  auto snap = snapshot_after(snapshot_after(1).publish_count + 2);
  EXPECT_EQ(snap.state, State::draining);
  req({{"cmd", "shutdown"}});
  EXPECT_EQ(exit_requests_, (std::vector<bool>{true, false}));
  EXPECT_EQ(req({{"cmd", "reload"}})["ok"], false) << "no reload hook";
}

TEST_F(DataplaneControlTest, DrainFromAnotherThreadIsPostedByTheTickAndRetriedWhenFull) {
  // Fill worker 1's control ring (depth 16) so the first attempts cannot queue there.
  rt::Mail filler;
  filler.service = 0;
  int filled = 0;
  while (rt_.mail.control_ring(1).push(filler)) ++filled;
  ctl_->drain();  // as main does on SIGTERM
  auto snap = snapshot_after(snapshot_after(1).publish_count + 2);
  EXPECT_EQ(snap.state, State::draining);
  rt::Mail m;
  ASSERT_TRUE(rt_.mail.control_ring(0).pop(m));
  EXPECT_EQ(m.service, rt::kWorkerMail);
  for (int i = 0; i < filled; ++i) ASSERT_TRUE(rt_.mail.control_ring(1).pop(m));
  snapshot_after(snapshot_after(1).publish_count + 2);  // the tick retries
  ASSERT_TRUE(rt_.mail.control_ring(1).pop(m));
  EXPECT_EQ(m.service, rt::kWorkerMail);
  EXPECT_EQ(m.kind, rt::kMailStopAccepting);
}

TEST_F(DataplaneControlTest, SetServiceEnabledFromAnotherThreadIsMailedByTheTick) {
  ctl_->set_service_enabled(1, false);  // as main does on SIGHUP
  snapshot_after(snapshot_after(1).publish_count + 2);
  for (unsigned w = 0; w < 2; ++w) {
    rt::Mail m;
    ASSERT_TRUE(rt_.mail.control_ring(w).pop(m));
    EXPECT_EQ(m.service, 1);
    EXPECT_EQ(m.kind, rt::kMailServiceDisable);
    EXPECT_FALSE(rt_.mail.control_ring(w).pop(m)) << "mailed once";
  }
  EXPECT_EQ(req({{"cmd", "services"}})["services"][1]["enabled"], false);
  ctl_->set_service_enabled(1, true);
  snapshot_after(snapshot_after(1).publish_count + 2);
  rt::Mail m;
  ASSERT_TRUE(rt_.mail.control_ring(0).pop(m));
  EXPECT_EQ(m.kind, rt::kMailServiceEnable);
}

TEST_F(DataplaneControlTest, WaitDrainedFollowsOpenConnections) {
  rt_.io[0].conns_open.set(1);
  EXPECT_FALSE(wait_drained(rt_, std::chrono::milliseconds(0)));
  rt_.io[0].conns_open.set(0);
  EXPECT_TRUE(wait_drained(rt_, std::chrono::milliseconds(0)));
}

TEST_F(DataplaneControlTest, StoppedStateAfterExit) {
  ctl_.reset();
  auto r = SegmentReader::open(cfg_.stats);
  ASSERT_TRUE(r);
  auto s = r->snapshot();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, State::stopped);
  EXPECT_FALSE(control_request(cfg_.socket, {{"cmd", "status"}})) << "socket removed";
}

TEST_F(DataplaneControlTest, RtpCommandsNeedAnRtpTable) {
  // The request is checked first, then the tables: this runtime has none.
  Json r = req({{"cmd", "rtp"}, {"op", "list"}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("no rtp service"), std::string::npos) << r;
  r = req({{"cmd", "rtp"}, {"op", "dance"}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["error"].get<std::string>().find("unknown rtp op"), std::string::npos) << r;
  r = req({{"cmd", "rtp"}});
  EXPECT_EQ(r["ok"], false);
}

// The request's JSON as the rtp service's command text (app/services/rtp/command.hh).
TEST(RtpCommandText, KeysBecomeTokens) {
  auto t = rtp_command_text(
      {{"cmd", "rtp"}, {"op", "open"}, {"peer", "127.0.0.1:5006"}, {"pt", 0}, {"ssrc", 4660}});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t.value(),
            "open peer=127.0.0.1:5006 pt=0 ssrc=4660");  // keys sorted, as Json keeps them
  t = rtp_command_text({{"cmd", "rtp"}, {"op", "list"}, {"table", 1}});
  ASSERT_TRUE(t);
  EXPECT_EQ(t.value(), "list");
  for (const Json& bad :
       {Json{{"op", 3}}, Json{{"op", "open"}, {"peer", "1.2.3.4:5 pt=1"}},
        Json{{"op", "open"}, {"peer", "a=b"}}, Json{{"op", "open"}, {"peer", ""}},
        Json{{"op", "open"}, {"pt", -1}}, Json{{"op", "open"}, {"pt", 1.5}},
        Json{{"op", "open"}, {"colour", "red"}}, Json{{"op", "open"}, {"peer", Json::array()}},
        Json{{"op", "close"}, {"peer", "x\ny"}}})
    EXPECT_FALSE(rtp_command_text(bad)) << bad;
}

// A service command the worker answers late stays allocated until it does, then is
// reaped; one answered in time returns its reply.
TEST(PendingCommands, LateAnswersAreKeptUntilDone) {
  FakeRuntime fake;
  PendingCommands p;
  auto r = p.run(fake, 1, "list", 20);  // nobody answers
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no answer"), std::string::npos);
  rt::Mail m;
  ASSERT_TRUE(fake.mail.control_ring(0).pop(m));
  EXPECT_EQ(m.kind, rt::kMailServiceCommand);
  EXPECT_EQ(m.service, 1);
  auto* late = static_cast<rt::ServiceCommand*>(m.p);
  EXPECT_EQ(late->request, "list");
  // A worker answering on its own thread, in time.
  std::thread worker([&fake] {
    rt::Mail w;
    for (int i = 0; i < 2000 && !fake.mail.control_ring(0).pop(w); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto* c = static_cast<rt::ServiceCommand*>(w.p);
    if (!c) return;  // nothing came: run() times out and the test fails
    c->reply = "{\"ok\":true}";
    c->done.store(true, std::memory_order_release);
  });
  auto ok = p.run(fake, 1, "open peer=127.0.0.1:9", 5000);
  worker.join();
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok.value(), "{\"ok\":true}");
  // The late one is answered now: reaped (ASan would see a leak or a use after free).
  late->reply = "{}";
  late->done.store(true, std::memory_order_release);
  p.reap();
}

}  // namespace
}  // namespace cw::ctl
