#include "control/control_socket.hh"
#include "tests/control/scratch_dir.hh"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

namespace cw::ctl {
namespace {

class ControlSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    path_ = scratch_ / "control.sock";
    auto s = ControlServer::listen(path_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(s.value());
    server_->on("status", [](const Json&) { return Json{{"pid", getpid()}}; });
    server_->on("echo", [](const Json& r) { return Json{{"arg", r.at("arg")}}; });
    server_->on("fail", [](const Json&) -> Json { throw std::runtime_error("boom"); });
    server_->start([this] { ++ticks_; }, 5);
  }
  void TearDown() override { server_.reset(); }
  test::ScratchDir scratch_{"cw-ctl"};
  std::string dir_, path_;
  std::unique_ptr<ControlServer> server_;
  std::atomic<int> ticks_{0};
};

TEST_F(ControlSocketTest, SocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ControlSocketTest, CommandRoundTrip) {
  auto r = control_request(path_, {{"cmd", "status"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r.value()["ok"], true);
  EXPECT_EQ(r.value()["pid"], getpid());
  auto e = control_request(path_, {{"cmd", "echo"}, {"arg", "x"}});
  ASSERT_TRUE(e);
  EXPECT_EQ(e.value()["arg"], "x");
}

TEST_F(ControlSocketTest, BadRequestsGetJsonErrors) {
  auto expect_error = [&](const std::string& line, const std::string& want) {
    auto r = control_request_raw(path_, line);
    ASSERT_TRUE(r) << r.error().message;
    Json j = Json::parse(r.value(), nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.value();
    EXPECT_EQ(j["ok"], false) << line;
    EXPECT_NE(j["error"].get<std::string>().find(want), std::string::npos) << j.dump();
  };
  expect_error("{not json\n", "not valid JSON");
  expect_error("[1,2]\n", "JSON object");
  expect_error("{\"cmd\":42}\n", "string \"cmd\"");
  expect_error("{\"cmd\":\"frobnicate\"}\n", "unknown command 'frobnicate'");
  expect_error("{\"cmd\":\"echo\"}\n", "arg");  // handler threw (missing key)
  expect_error("{\"cmd\":\"fail\"}\n", "boom");
  expect_error(std::string(kMaxRequestBytes + 10, 'x') + "\n", "longer than");
  expect_error(std::string(kMaxRequestBytes * 3, ' '), "longer than");  // no newline at all
  // The server survived all of it.
  EXPECT_TRUE(control_request(path_, {{"cmd", "status"}}));
}

TEST_F(ControlSocketTest, SeveralRequestsOnOneConnection) {
  auto r = control_request_raw(path_, "{\"cmd\":\"status\"}\n{\"cmd\":\"status\"}\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(Json::parse(r.value())["ok"], true);
}

// A client that floods requests and never reads its replies must not stall the control
// thread (which also publishes the stats): its replies time out and it is dropped.
TEST_F(ControlSocketTest, ClientThatNeverReadsIsDropped) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path_.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string flood;
  for (int i = 0; i < 60000; ++i) flood += "{\"cmd\":\"status\"}\n";
  std::thread writer([&] {
    size_t off = 0;
    while (off < flood.size()) {
      const ssize_t n = send(fd, flood.data() + off, flood.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server hung up
      off += size_t(n);
    }
  });
  writer.join();
  auto r = control_request(path_, {{"cmd", "status"}}, 10000);
  EXPECT_TRUE(r) << r.error().message;
  const int t0 = ticks_.load();
  for (int i = 0; i < 500 && ticks_.load() == t0; ++i) usleep(10'000);
  EXPECT_GT(ticks_.load(), t0) << "the tick (stats publisher) keeps running";
  close(fd);
}

TEST_F(ControlSocketTest, TickRuns) {
  for (int i = 0; i < 500 && ticks_.load() < 2; ++i) usleep(10'000);
  EXPECT_GE(ticks_.load(), 2);
}

TEST_F(ControlSocketTest, SecondServerOnALiveSocketIsRefused) {
  auto s = ControlServer::listen(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("another dataplane"), std::string::npos);
}

TEST(ControlSocketStale, StaleSocketIsReplaced) {
  const test::ScratchDir dir("cw-ctl");
  ASSERT_TRUE(dir.ok());
  const std::string path = dir / "c.sock";
  {
    // Bind and close without unlinking: what a crashed dataplane leaves behind.
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    close(fd);
  }
  auto s = ControlServer::listen(path);
  EXPECT_TRUE(s) << s.error().message;
  s.value().reset();
}

// Runs fn in a child switched to uid/gid nobody; returns the child's exit code.
template <class Fn>
int as_nobody(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    _exit(fn());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

TEST_F(ControlSocketTest, OtherUidCannotConnect) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to another uid";
  chmod(dir_.c_str(), 0755);  // only the socket's own mode stands in the way
  const int code = as_nobody([&] {
    auto r = control_request(path_, {{"cmd", "status"}}, 1000);
    return r ? 1 : (r.error().message.find("Permission denied") != std::string::npos ? 0 : 2);
  });
  EXPECT_EQ(code, 0) << "mode 0600 keeps other uids out";
}

TEST_F(ControlSocketTest, OtherUidIsRefusedByPeerCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to another uid";
  // Widen the file modes on purpose so the connect succeeds; SO_PEERCRED must still refuse.
  chmod(dir_.c_str(), 0755);
  chmod(path_.c_str(), 0666);
  const int code = as_nobody([&] {
    auto r = control_request(path_, {{"cmd", "status"}}, 2000);
    if (!r) return 3;
    return r.value()["ok"] == false && r.value()["error"].get<std::string>().find(
                                           "permission denied") != std::string::npos
               ? 0
               : 4;
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(server_->refused_peers(), 1u);
  EXPECT_TRUE(control_request(path_, {{"cmd", "status"}})) << "root is still served";
}

}  // namespace
}  // namespace cw::ctl
