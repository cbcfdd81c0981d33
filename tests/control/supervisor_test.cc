#include "control/supervisor.hh"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

namespace cw::ctl {
namespace {

using namespace std::chrono_literals;

SupervisorConfig shell(const std::string& script) {
  SupervisorConfig c;
  c.program = "/bin/sh";
  c.args = {"-c", script};
  c.backoff_initial = 10ms;
  c.backoff_max = 40ms;
  c.stable_after = 60s;
  return c;
}

// Polls until pred() or a generous bound (the bound only keeps a broken test from hanging).
template <class Pred>
bool poll_until(Supervisor& s, Pred pred) {
  for (int i = 0; i < 2000; ++i) {
    s.poll();
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(Supervisor, CrashingChildIsRestartedWithExponentialBackoff) {
  Supervisor s(shell("exit 3"));
  ASSERT_TRUE(s.start());
  std::vector<long> backoffs;
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(poll_until(s, [&] { return !s.running(); }));
    EXPECT_EQ(s.last_exit(), "exited with status 3");
    EXPECT_EQ(s.last_exit_code(), 3);
    backoffs.push_back(long(s.pending_backoff().count()));
    ASSERT_TRUE(poll_until(s, [&] { return s.restarts() == uint64_t(round + 1); }));
  }
  EXPECT_EQ(backoffs, (std::vector<long>{10, 20, 40, 40})) << "doubles, capped at backoff_max";
  EXPECT_EQ(s.starts(), 5u);
  s.stop(SIGTERM, 1s);
  EXPECT_FALSE(s.running());
}

TEST(Supervisor, KilledChildReasonNamesTheSignal) {
  Supervisor s(shell("kill -9 $$"));
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(poll_until(s, [&] { return !s.running(); }));
  EXPECT_EQ(s.last_exit().rfind("killed by signal 9", 0), 0u) << s.last_exit();
  EXPECT_EQ(s.last_exit_code(), -1);
  s.stop(SIGTERM, 1s);
}

TEST(Supervisor, CleanExitIsNotRestarted) {
  Supervisor s(shell("exit 0"));
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(poll_until(s, [&] { return !s.running(); }));
  EXPECT_TRUE(s.finished());
  for (int i = 0; i < 10; ++i) s.poll(Supervisor::Clock::now() + 1h);
  EXPECT_EQ(s.restarts(), 0u);
  EXPECT_FALSE(s.running());
}

TEST(Supervisor, ConfigErrorExitIsNotRestarted) {
  Supervisor s(shell("exit 2"));
  ASSERT_TRUE(s.start());
  ASSERT_TRUE(poll_until(s, [&] { return !s.running(); }));
  EXPECT_TRUE(s.finished()) << "exit 2 means a bad config: restarting cannot help";
  EXPECT_EQ(s.last_exit_code(), 2);
  s.poll(Supervisor::Clock::now() + 1h);
  EXPECT_EQ(s.restarts(), 0u);
}

TEST(Supervisor, StopEscalatesToSigkill) {
  Supervisor s(shell("trap '' TERM; while :; do sleep 0.01; done"));
  ASSERT_TRUE(s.start());
  std::this_thread::sleep_for(50ms);  // let the shell install its trap
  const std::string why = s.stop(SIGTERM, 100ms);
  EXPECT_EQ(why.rfind("killed by signal 9", 0), 0u) << why;
  EXPECT_EQ(s.restarts(), 0u);
}

TEST(Supervisor, AdoptedProcessDeathIsNoticedAndRestarted) {
  // A process this supervisor did not start (here our own fork, watched through a pidfd).
  const pid_t other = fork();
  if (other == 0) {
    execl("/bin/sleep", "sleep", "30", nullptr);
    _exit(127);
  }
  Supervisor s(shell("sleep 30"));
  ASSERT_TRUE(s.adopt(other));
  EXPECT_TRUE(s.adopted());
  s.poll();
  EXPECT_TRUE(s.running());
  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);  // we are its real parent
  ASSERT_TRUE(poll_until(s, [&] { return s.restarts() == 1; }));
  EXPECT_EQ(s.last_exit(), "exited (adopted process: status unknown)");
  EXPECT_TRUE(s.running());
  EXPECT_FALSE(s.adopted()) << "the restarted process is our own child";
  s.stop(SIGTERM, 1s);
}

TEST(Supervisor, MissingProgramIsAnError) {
  SupervisorConfig c;
  c.program = "/nonexistent/corewire";
  Supervisor s(c);
  EXPECT_FALSE(s.start());
}

}  // namespace
}  // namespace cw::ctl
