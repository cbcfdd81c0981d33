#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "dataplane/io.hh"

namespace cw::dp {
namespace {

TEST(Endpoint, ParsesAndPrints) {
  auto ep = parse_endpoint("127.0.0.1:11111");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->port_be, htons(11111));
  EXPECT_EQ(ep->addr_be, htonl(0x7f000001));
  EXPECT_EQ(to_string(*ep), "127.0.0.1:11111");
}

TEST(Endpoint, RejectsBadInput) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "localhost:80",
                          "1.2.3:80", "127.0.0.1:8x", ":80", "127.0.0.1:-1"}) {
    auto ep = parse_endpoint(bad);
    EXPECT_FALSE(ep.ok()) << bad;
    if (!ep.ok()) {
      EXPECT_FALSE(ep.error().message.empty());
    }
  }
}

}  // namespace
}  // namespace cw::dp
