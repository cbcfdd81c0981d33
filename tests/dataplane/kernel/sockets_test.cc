// Socket setup helpers over real loopback sockets: the port-0 rule, SO_REUSEPORT sharing,
// errors that name the endpoint, and the datapath accept/connect helpers.
#include "dataplane/kernel/sockets.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <cerrno>

namespace cw::dp::kernel {
namespace {

Endpoint loopback(uint16_t port = 0) {
  return Endpoint{htonl(INADDR_LOOPBACK), htons(port)};
}

TEST(Sockets, ServerPortZeroIsResolvedOnceAndSharedByAllWorkers) {
  const SocketSpec specs[] = {{Transport::udp, loopback(), true},
                              {Transport::tcp, loopback(), true}};
  auto set = open_socket_set(specs, 3);
  ASSERT_TRUE(set) << set.error().message;
  for (SocketId s = 0; s < 2; ++s) {
    const Endpoint b = set->bound(s);
    EXPECT_NE(b.port_be, 0);
    EXPECT_EQ(b.addr_be, htonl(INADDR_LOOPBACK));
  }
  for (unsigned w = 0; w < 3; ++w) {
    auto row = set->take(w);
    ASSERT_EQ(row.size(), 2u);
    for (SocketId s = 0; s < 2; ++s) {
      auto local = local_endpoint(row[s].get());
      ASSERT_TRUE(local);
      EXPECT_EQ(*local, set->bound(s)) << "worker " << w << " joined the resolved port";
    }
  }
}

TEST(Sockets, ClientUdpSocketsGetTheirOwnPortsAndTcpClientsNone) {
  const SocketSpec specs[] = {{Transport::udp, loopback(), false},
                              {Transport::tcp, loopback(), false}};
  auto set = open_socket_set(specs, 2);
  ASSERT_TRUE(set) << set.error().message;
  auto r0 = set->take(0), r1 = set->take(1);
  auto a = local_endpoint(r0[0].get()), b = local_endpoint(r1[0].get());
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->port_be, b->port_be);
  EXPECT_FALSE(r0[1].valid());
  EXPECT_EQ(set->bound(1), loopback());
}

TEST(Sockets, BindConflictNamesTheEndpoint) {
  auto first = open_udp(loopback(), false);  // no SO_REUSEPORT: nobody may join
  ASSERT_TRUE(first);
  auto ep = local_endpoint(first->get());
  ASSERT_TRUE(ep);
  const SocketSpec specs[] = {{Transport::udp, *ep, true}};
  auto set = open_socket_set(specs, 1);
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().message.find(to_string(*ep)), std::string::npos) << set.error().message;
  EXPECT_NE(set.error().message.find("bind"), std::string::npos) << set.error().message;
}

// socket_drops reads the kernel's cumulative drop count: every datagram sent to a socket
// with a tiny receive buffer is either still queued or counted there.
TEST(Sockets, SocketDropsCountsReceiveQueueOverflow) {
  auto rx = open_udp(loopback(), false);
  ASSERT_TRUE(rx) << rx.error().message;
  uint32_t drops = 1;
  ASSERT_TRUE(socket_drops(rx->get(), &drops));
  EXPECT_EQ(drops, 0u);
  const int small = 1;  // the kernel rounds up to its minimum (a few KiB)
  ASSERT_EQ(setsockopt(rx->get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  auto to = local_endpoint(rx->get());
  ASSERT_TRUE(to);
  auto tx = open_udp(loopback(), false);
  ASSERT_TRUE(tx);
  const sockaddr_in dst = to_sockaddr(*to);
  constexpr uint32_t kSent = 64;
  char buf[1000] = {};
  for (uint32_t i = 0; i < kSent; ++i)
    ASSERT_EQ(
        sendto(tx->get(), buf, sizeof buf, 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst),
        ssize_t(sizeof buf));
  uint32_t queued = 0;
  while (recv(rx->get(), buf, sizeof buf, MSG_DONTWAIT) > 0) ++queued;
  ASSERT_TRUE(socket_drops(rx->get(), &drops));
  EXPECT_GT(drops, 0u);
  EXPECT_EQ(queued + drops, kSent) << queued << " queued, " << drops << " dropped";
  EXPECT_FALSE(socket_drops(-1, &drops));
}

TEST(Sockets, NonLocalAddressFails) {
  const SocketSpec specs[] = {{Transport::tcp, Endpoint{htonl(0xC0000201), 0}, true}};  // 192.0.2.1
  auto set = open_socket_set(specs, 1);
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().message.find("192.0.2.1"), std::string::npos) << set.error().message;
}

TEST(Sockets, AcceptAndConnectHelpers) {
  auto l = open_tcp_listener(loopback());
  ASSERT_TRUE(l) << l.error().message;
  auto ep = local_endpoint(l->get());
  ASSERT_TRUE(ep);
  Endpoint peer;
  EXPECT_EQ(accept_conn(l->get(), &peer), -EAGAIN);

  const int c = open_tcp_client(Endpoint{});
  ASSERT_GE(c, 0);
  const int r = connect_start(c, *ep);
  EXPECT_TRUE(r == 0 || r == -EINPROGRESS) << r;
  pollfd pf{c, POLLOUT, 0};
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  EXPECT_EQ(socket_error(c), 0);
  pollfd lp{l->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&lp, 1, 5000), 1);
  const int a = accept_conn(l->get(), &peer);
  ASSERT_GE(a, 0);
  auto cl = local_endpoint(c);
  ASSERT_TRUE(cl);
  EXPECT_EQ(peer, *cl);
  ::close(a);
  ::close(c);
}

TEST(Sockets, ConnectToClosedPortReportsRefused) {
  // Find a port nobody listens on: bind, read the port, close.
  int port;
  {
    auto l = open_tcp_listener(loopback());
    ASSERT_TRUE(l);
    port = ntohs(local_endpoint(l->get())->port_be);
  }
  const int c = open_tcp_client(Endpoint{});
  ASSERT_GE(c, 0);
  int r = connect_start(c, loopback(uint16_t(port)));
  if (r == -EINPROGRESS) {
    pollfd pf{c, POLLOUT, 0};
    ASSERT_EQ(::poll(&pf, 1, 5000), 1);
    r = -socket_error(c);
  }
  EXPECT_EQ(r, -ECONNREFUSED);
  ::close(c);
}

TEST(Sockets, NofileLimitIsRaisedTowardTheWish) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  const uint64_t want = rl.rlim_max == RLIM_INFINITY ? 4096 : rl.rlim_max;
  EXPECT_EQ(raise_nofile_limit(want), want);
  IoConfig cfg;
  cfg.workers = 2;
  cfg.max_conns = 10000;
  EXPECT_GE(nofile_wanted(cfg, 4), 20000u);
}

}  // namespace
}  // namespace cw::dp::kernel
