#include "control/control_config.hh"
#include "tests/control/scratch_dir.hh"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace cw::ctl {
namespace {

Result<ControlConfig> parse(std::string_view text) {
  return control_config_from(toml::parse(text));
}

TEST(ControlConfig, PathsResolveUnderRunDir) {
  auto c = parse("[control]\nrun_dir = \"/tmp/x\"\nsocket = \"c.sock\"\nstats = \"/dev/shm/s\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->socket, "/tmp/x/c.sock");
  EXPECT_EQ(c->stats, "/dev/shm/s");
  EXPECT_EQ(c->admin_port, 9901);
}

TEST(ControlConfig, DefaultsWithoutSection) {
  auto c = parse("");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->run_dir.empty());
  EXPECT_EQ(c->socket, c->run_dir + "/control.sock");
  EXPECT_EQ(c->publish_ms, 10u);
}

TEST(ControlConfig, BadValuesNameTheKey) {
  auto a = parse("[control]\nadmin = \"0.0.0.0:9901\"\n");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("control.admin"), std::string::npos);
  auto b = parse("[control]\npublish_ms = 0\n");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("control.publish_ms"), std::string::npos);
  auto k = parse("[control]\nsokcet = \"x\"\n");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find("unknown key"), std::string::npos);
  auto off = parse("[control]\nadmin = \"\"\n");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->admin_port, 0);
}

TEST(ControlConfig, RunDirIsCreatedOwnerOnly) {
  const test::ScratchDir scratch("cw-cfg");
  ASSERT_TRUE(scratch.ok());
  const std::string dir = scratch / "a/run";
  ASSERT_TRUE(ensure_run_dir(dir));
  struct stat st {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(ensure_run_dir(dir)) << "idempotent";
}

}  // namespace
}  // namespace cw::ctl
