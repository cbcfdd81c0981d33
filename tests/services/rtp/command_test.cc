// The run-time command parser (what `corewirectl rtp ...` hands the rtp service).
#include "app/services/rtp/command.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace cw::rtp {
namespace {

TEST(Command, OpenWithEveryKey) {
  Command c;
  ASSERT_EQ(parse_command("open  peer=10.1.2.3:5006 pt=96 ssrc=4660 peer_ssrc=22136 ", c), "");
  EXPECT_EQ(c.op, CommandOp::open);
  EXPECT_EQ(c.peer.addr_be, htonl(0x0a010203));
  EXPECT_EQ(c.peer.port_be, htons(5006));
  EXPECT_EQ(c.pt, 96);
  EXPECT_EQ(c.ssrc, 4660u);
  EXPECT_EQ(c.peer_ssrc, 22136u);
  ASSERT_EQ(parse_command("open peer=10.1.2.3:5006", c), "");
  EXPECT_EQ(c.pt, -1);  // the table's
  EXPECT_EQ(c.ssrc, 0u);
  EXPECT_EQ(c.peer_ssrc, 0u);
}

TEST(Command, CloseAndList) {
  Command c;
  ASSERT_EQ(parse_command("close peer=127.0.0.1:9 peer_ssrc=4294967295", c), "");
  EXPECT_EQ(c.op, CommandOp::close);
  EXPECT_EQ(c.peer_ssrc, 0xffffffffu);
  ASSERT_EQ(parse_command("list", c), "");
  EXPECT_EQ(c.op, CommandOp::list);
}

TEST(Command, Refusals) {
  Command c;
  EXPECT_NE(parse_command("", c), "");
  EXPECT_NE(parse_command("OPEN peer=127.0.0.1:9", c), "");
  EXPECT_NE(parse_command("open", c), "");
  EXPECT_NE(parse_command("open peer", c), "");
  EXPECT_NE(parse_command("open peer=", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:65536", c), "");
  EXPECT_NE(parse_command("open peer=0.0.0.0:9", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 pt=64", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 pt=95", c), "");
  EXPECT_EQ(parse_command("open peer=127.0.0.1:9 pt=63", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 pt=-1", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 ssrc=4294967296", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 ssrc=1x", c), "");
  EXPECT_NE(parse_command("open peer=127.0.0.1:9 ssrc=1 ssrc=2", c), "");
  EXPECT_NE(parse_command("close peer=127.0.0.1:9 pt=0", c), "");  // open's keys only
  EXPECT_NE(parse_command("close peer=127.0.0.1:9 ssrc=1", c), "");
  EXPECT_NE(parse_command("list peer=127.0.0.1:9", c), "");
  EXPECT_NE(parse_command(std::string(2000, 'a'), c), "");
}

}  // namespace
}  // namespace cw::rtp
