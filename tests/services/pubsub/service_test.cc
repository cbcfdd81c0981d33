// The pubsub service over the fake backend: one worker (INFO, CONNECT options, pub/sub,
// wildcards, queue groups, UNSUB with max, headers, no-responders, errors, auth, limits,
// slow consumer, server PING) and two workers (interest announced and acknowledged before
// PONG, fan-out exactly once in publish order, queue groups over both workers).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "app/runtime/worker.hh"
#include "app/services/pubsub/service.hh"
#include "dataplane/fake/fake_io.hh"
#include "tests/services/run_idle.hh"

namespace cw::svc {
namespace {

using Services = std::variant<Pubsub>;
using W = rt::Worker<dp::FakeWorker, Services>;
constexpr dp::SocketId kTcp = 0;
namespace ps = pubsub;

// How often `what` occurs in s.
size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// n workers, each with its own fake backend; socket 0 is pubsub's TCP socket.
struct World {
  explicit World(unsigned n, ps::PubsubOptions o = {}) : mail(n, 64, 4096), stats(n), svc(n) {
    opt = std::move(o);
    opt.shared = std::make_shared<ps::Shared>();
    for (unsigned w = 0; w < n; ++w) {
      io.push_back(std::make_unique<dp::FakeWorker>(w, iocfg, 1));
      const rt::SocketRef refs[1] = {{kTcp, dp::Transport::tcp, true, true}};
      const dp::Endpoint bound[1] = {{htonl(0x7f000001), htons(4222)}};
      rt::ServiceCtx c{w, n, 64, 0, refs, {}, bound, {}};
      std::vector<Services> v;
      v.emplace_back(std::in_place_type<Pubsub>, c, opt);
      workers.push_back(std::make_unique<W>(*io[w], std::move(v), std::vector<uint16_t>{0}, loop,
                                            64, stats[w], std::span(&svc[w], 1), mail));
    }
  }

  Pubsub& ps(unsigned w) { return std::get<Pubsub>(workers[w]->service(0)); }
  // (noinline: GCC 12 at -O3 warns falsely about the atomic load once inlined in a loop)
  [[gnu::noinline]] uint64_t counter(unsigned w, uint32_t i) {
    return workers[w]->counters().values(0)[i].get();
  }
  uint64_t total(uint32_t i) {
    uint64_t t = 0;
    for (unsigned w = 0; w < workers.size(); ++w) t += counter(w, i);
    return t;
  }

  // Runs every worker until nothing is delivered and no mail waits (bounded).
  void run() {
    ASSERT_TRUE(cw::testing::run_until_idle<W>(workers, stats, mail, 100000))
        << "workers did not go idle";
  }

  struct Client {
    unsigned w;
    dp::ConnId c;
  };
  // A connection on worker w; its INFO is read and checked.
  Client open(unsigned w = 0, std::string* info = nullptr) {
    const dp::ConnId c = io[w]->inject_open(kTcp, {htonl(0x7f000001), htons(40000)});
    run();
    const std::string i = out({w, c});
    EXPECT_EQ(i.rfind("INFO {", 0), 0u) << i;
    if (info) *info = i;
    return {w, c};
  }
  // A connection that said CONNECT (non-verbose) with `extra` JSON fields.
  Client client(unsigned w = 0, const std::string& extra = "") {
    Client k = open(w);
    EXPECT_EQ(send(k, "CONNECT {\"verbose\":false,\"pedantic\":false" + extra + "}\r\nPING\r\n"),
              "PONG\r\n");
    return k;
  }
  std::string send(Client k, const std::string& s, size_t seg = ~size_t{0}) {
    for (size_t off = 0; off < s.size() && io[k.w]->is_open(k.c); off += seg) {
      const size_t n = std::min(seg, s.size() - off);
      io[k.w]->inject_stream(k.c, {reinterpret_cast<const uint8_t*>(s.data()) + off, n});
      if (seg != ~size_t{0}) run();
    }
    run();
    return out(k);
  }
  std::string out(Client k) {
    const auto v = io[k.w]->take_stream_out(k.c);
    return {v.begin(), v.end()};
  }
  bool open_(Client k) { return io[k.w]->is_open(k.c); }

  ps::PubsubOptions opt;
  dp::IoConfig iocfg;
  rt::Mailboxes mail;
  rt::LoopConfig loop{.burst = 16, .busy_poll = true, .tail_small = 64, .tail_buffers = 64};
  std::vector<rt::WorkerStats> stats;
  std::vector<rt::ServiceStats> svc;
  std::vector<std::unique_ptr<dp::FakeWorker>> io;
  std::vector<std::unique_ptr<W>> workers;
};

TEST(PubsubOneWorker, InfoAndVerboseDefaults) {
  World x(1);
  std::string info;
  const auto c = x.open(0, &info);
  EXPECT_NE(info.find("\"proto\":1"), std::string::npos) << info;
  EXPECT_NE(info.find("\"headers\":true"), std::string::npos);
  EXPECT_NE(info.find("\"max_payload\":1048576"), std::string::npos);
  EXPECT_NE(info.find("\"port\":4222"), std::string::npos);
  EXPECT_EQ(info.find("auth_required"), std::string::npos);
  EXPECT_EQ(info.substr(info.size() - 4), "} \r\n");  // as nats-server
  // Before CONNECT a client is verbose and pedantic, as on nats-server.
  EXPECT_EQ(x.send(c, "SUB a.* 1\r\nPUB a.* 0\r\n\r\n"),
            "+OK\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\nMSG a.* 1 0\r\n\r\n");
  EXPECT_EQ(x.send(c, "CONNECT {}\r\nPING\r\n"), "+OK\r\nPONG\r\n");
  EXPECT_EQ(x.send(c, "CONNECT {\"verbose\":false}\r\nSUB b 2\r\nPING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.counter(0, ps::kConnections), 1u);
  EXPECT_EQ(x.counter(0, ps::kSubscriptions), 2u);
}

TEST(PubsubOneWorker, PubSubWildcardsAndReply) {
  World x(1);
  const auto s = x.client(), p = x.client();
  EXPECT_EQ(x.send(s, "SUB foo.* 1\r\nSUB foo.> 2\r\nSUB foo.bar 3\r\nSUB > 4\r\nSUB x 5\r\n"), "");
  EXPECT_EQ(x.send(p, "PUB foo.bar r.1 5\r\nhello\r\n"), "");
  const std::string got = x.out(s);
  for (const char* sid : {"1", "2", "3", "4"})
    EXPECT_NE(got.find(std::string("MSG foo.bar ") + sid + " r.1 5\r\nhello\r\n"),
              std::string::npos)
        << sid << ": " << got;
  EXPECT_EQ(got.find("MSG foo.bar 5"), std::string::npos);
  EXPECT_EQ(x.send(p, "PUB foo.bar.baz 1\r\nx\r\nPUB foo 1\r\ny\r\n"), "");
  // One publish's subscribers come in no set order (nats-server's neither).
  const std::string more = x.out(s);
  const std::string x2 = "MSG foo.bar.baz 2 1\r\nx\r\n", x4 = "MSG foo.bar.baz 4 1\r\nx\r\n";
  EXPECT_TRUE(more == x2 + x4 + "MSG foo 4 1\r\ny\r\n" || more == x4 + x2 + "MSG foo 4 1\r\ny\r\n")
      << more;
  EXPECT_EQ(x.counter(0, ps::kInMsgs), 3u);
  EXPECT_EQ(x.counter(0, ps::kOutMsgs), 7u);
  EXPECT_EQ(x.counter(0, ps::kInBytes), 7u);
}

TEST(PubsubOneWorker, UnsubAfterMaxAndDuplicateSid) {
  World x(1);
  const auto s = x.client();
  EXPECT_EQ(x.send(s, "SUB a 1\r\nSUB a 1\r\nUNSUB 1 2\r\n"), "");
  std::string msgs;
  for (int i = 0; i < 4; ++i) msgs += x.send(s, "PUB a 1\r\n" + std::to_string(i) + "\r\n");
  EXPECT_EQ(msgs, "MSG a 1 1\r\n0\r\nMSG a 1 1\r\n1\r\n");
  EXPECT_EQ(x.ps(0).subscriptions().size(), 0u);
  EXPECT_EQ(x.send(s, "SUB b 7\r\nUNSUB 7\r\nPUB b 0\r\n\r\nUNSUB 99\r\nPING\r\n"), "PONG\r\n");
}

TEST(PubsubOneWorker, QueueGroupsAndEcho) {
  World x(1);
  const auto a = x.client(), b = x.client(), p = x.client(0, ",\"echo\":false");
  x.send(a, "SUB q g 1\r\nSUB q 2\r\n");
  x.send(b, "SUB q g 1\r\n");
  x.send(p, "SUB q 9\r\n");  // no echo: the publisher never gets its own
  for (int i = 0; i < 100; ++i) x.send(p, "PUB q 1\r\nm\r\n");
  const std::string oa = x.out(a), ob = x.out(b);
  EXPECT_EQ(occurrences(oa, "MSG q 2 "), 100u);  // plain: every message
  EXPECT_EQ(occurrences(oa, "MSG q 1 ") + occurrences(ob, "MSG q 1 "),
            100u);  // group: one member each
  EXPECT_GT(occurrences(oa, "MSG q 1 "), 10u);
  EXPECT_GT(occurrences(ob, "MSG q 1 "), 10u);
  EXPECT_EQ(x.out(p), "");
}

// Two groups on one subject whose members' subscriptions interleave in the table: each
// message still goes to exactly one member of each group.
TEST(PubsubOneWorker, InterleavedQueueGroupsGetOneMemberEach) {
  World x(1);
  const auto a = x.client(), b = x.client(), p = x.client();
  x.send(a, "SUB q g1 1\r\nSUB q g2 2\r\n");
  x.send(b, "SUB q g1 1\r\nSUB q g2 2\r\n");
  for (int i = 0; i < 100; ++i) x.send(p, "PUB q 1\r\nm\r\n");
  const std::string oa = x.out(a), ob = x.out(b);
  EXPECT_EQ(occurrences(oa, "MSG q 1 ") + occurrences(ob, "MSG q 1 "),
            100u);  // g1: one member each
  EXPECT_EQ(occurrences(oa, "MSG q 2 ") + occurrences(ob, "MSG q 2 "),
            100u);  // g2: one member each
  EXPECT_GT(occurrences(oa, "MSG q 1 "), 10u);
  EXPECT_GT(occurrences(ob, "MSG q 2 "), 10u);
}

TEST(PubsubOneWorker, HeadersAndNoResponders) {
  World x(1);
  const auto h = x.client(0, ",\"headers\":true,\"no_responders\":true");
  const auto plain = x.client();
  x.send(plain, "SUB a 1\r\n");
  EXPECT_EQ(x.send(h, "SUB a 1\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
            "HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
  EXPECT_EQ(x.out(plain), "MSG a 1 2\r\nhi\r\n");  // headers stripped for it
  EXPECT_EQ(x.send(h, "SUB _INBOX.* 5\r\nPUB nobody _INBOX.x 0\r\n\r\n"),
            "HMSG _INBOX.x 5 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
  EXPECT_EQ(x.counter(0, ps::kNoResponders), 1u);
  // With a responder there is no 503; without no_responders there is none either.
  EXPECT_EQ(x.send(h, "PUB a _INBOX.y 0\r\n\r\n").find("503"), std::string::npos);
  EXPECT_EQ(x.send(plain, "SUB _INBOX.z 3\r\nPUB nobody _INBOX.z 0\r\n\r\nPING\r\n"),
            "MSG a 1 _INBOX.y 0\r\n\r\nPONG\r\n");
  // HPUB from a client that did not announce headers closes it without a word.
  EXPECT_EQ(x.send(plain, "HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), "");
  EXPECT_FALSE(x.open_(plain));
  const auto bad = x.open();
  EXPECT_EQ(x.send(bad, "CONNECT {\"no_responders\":true}\r\n"),
            "-ERR 'no responders requires headers support'\r\n");
  EXPECT_FALSE(x.open_(bad));
}

TEST(PubsubOneWorker, ProtocolErrors) {
  World x(1);
  struct Case {
    std::string in, out;
    bool open;
  };
  for (const Case& c : std::vector<Case>{
           {"FOO\r\n", "-ERR 'Unknown Protocol Operation'\r\n", false},
           {"PUB foo\r\n", "", false},
           {"PUB a 3\r\nabcd\r\n", "-ERR 'Unknown Protocol Operation'\r\n", false},
           {"PUB a 2000000\r\n", "-ERR 'Maximum Payload Violation'\r\n", false},
           {"SUB a " + std::string(5000, 'x'), "-ERR 'maximum control line exceeded'\r\n", false},
           {"SUB foo..a 1\r\n", "-ERR 'Invalid Subject'\r\n", true},
           {"SUB foo.>.a 1\r\n", "-ERR 'Invalid Subject'\r\n", true},
           {"SUB " + std::string(300, 'a') + " 1\r\n", "-ERR 'Invalid Subject'\r\n", true},
           {"CONNECT {bad\r\n", "", false},
           {"-ERR 'x'\r\n", "", false},
           {"UNSUB\r\n", "-ERR 'Unknown Protocol Operation'\r\n", false},
       }) {
    const auto k = x.open();
    EXPECT_EQ(x.send(k, c.in), c.out) << c.in.substr(0, 40);
    EXPECT_EQ(x.open_(k), c.open) << c.in.substr(0, 40);
  }
  EXPECT_EQ(x.counter(0, ps::kConnections), 3u);
}

TEST(PubsubOneWorker, SplitAtEveryByte) {
  World x(1);
  const auto s = x.client(), p = x.client();
  x.send(s, "SUB a 1\r\n");
  const std::string in = "PUB a r 5\r\nhello\r\nPUB a 0\r\n\r\nPING\r\n";
  EXPECT_EQ(x.send(p, in, 1), "PONG\r\n");
  EXPECT_EQ(x.out(s), "MSG a 1 r 5\r\nhello\r\nMSG a 1 0\r\n\r\n");
}

TEST(PubsubAuth, Token) {
  ps::PubsubOptions o;
  o.token = "s3cret";
  World x(1, o);
  std::string info;
  auto k = x.open(0, &info);
  EXPECT_NE(info.find("\"auth_required\":true"), std::string::npos);
  EXPECT_EQ(x.send(k, "CONNECT {\"verbose\":false,\"auth_token\":\"s3cret\"}\r\nPING\r\n"),
            "PONG\r\n");
  k = x.open();
  EXPECT_EQ(x.send(k, "CONNECT {\"auth_token\":\"nope\"}\r\nPING\r\n"),
            "-ERR 'Authorization Violation'\r\n");
  EXPECT_FALSE(x.open_(k));
  k = x.open();
  EXPECT_EQ(x.send(k, "PING\r\n"), "-ERR 'Authorization Violation'\r\n");
  EXPECT_FALSE(x.open_(k));
  EXPECT_EQ(x.counter(0, ps::kAuthFailures), 2u);
}

TEST(PubsubAuth, UserPassword) {
  ps::PubsubOptions o;
  o.user = "u";
  o.password = "p";
  World x(1, o);
  auto k = x.open();
  EXPECT_EQ(x.send(k, "CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\"}\r\nPING\r\n"),
            "PONG\r\n");
  k = x.open();
  EXPECT_EQ(x.send(k, "CONNECT {\"user\":\"u\",\"pass\":\"x\"}\r\n"),
            "-ERR 'Authorization Violation'\r\n");
  k = x.open();
  EXPECT_EQ(x.send(k, "CONNECT {\"user\":\"u\"}\r\n"), "-ERR 'Authorization Violation'\r\n");
  EXPECT_EQ(ps::listen_refusal(o, htonl(0x0a000001)), "");
  EXPECT_NE(ps::listen_refusal({}, htonl(0x0a000001)), "");
  EXPECT_EQ(ps::listen_refusal({}, htonl(0x7f000001)), "");
  ps::PubsubOptions anon;
  anon.allow_anonymous = true;
  EXPECT_EQ(ps::listen_refusal(anon, htonl(0)), "");
}

TEST(PubsubLimits, ConnectionsAndSubscriptions) {
  ps::PubsubOptions o;
  o.max_connections = 2;
  o.max_subscriptions = 2;
  World x(1, o);
  const auto a = x.client(), b = x.client();
  const dp::ConnId c = x.io[0]->inject_open(kTcp, {htonl(0x7f000001), htons(40000)});
  x.run();
  const std::string r = x.out({0, c});
  EXPECT_NE(r.find("-ERR 'maximum connections exceeded'\r\n"), std::string::npos) << r;
  EXPECT_FALSE(x.io[0]->is_open(c));
  EXPECT_EQ(x.counter(0, ps::kRefusedConnections), 1u);
  EXPECT_EQ(x.send(a, "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n"),
            "-ERR 'Maximum Subscriptions Exceeded'\r\nPONG\r\n");
  x.send(b, "UNSUB 1\r\n");
  EXPECT_TRUE(x.open_(b));
}

TEST(PubsubLimits, SlowConsumerIsCut) {
  ps::PubsubOptions o;
  o.max_pending = 64 * 1024;
  World x(1, o);
  const auto slow = x.client(), fast = x.client(), p = x.client();
  x.send(slow, "SUB a 1\r\n");
  x.send(fast, "SUB a 1\r\n");
  const std::string msg = "PUB a 1000\r\n" + std::string(1000, 'x') + "\r\n";
  size_t fast_got = 0;
  for (int i = 0; i < 200; ++i) {
    x.send(p, msg);
    fast_got += x.out(fast).size();  // fast reads everything; slow reads nothing
  }
  EXPECT_EQ(fast_got, 200u * (14 + 1000 + 2));  // MSG a 1 1000\r\n, payload, CRLF
  EXPECT_FALSE(x.open_(slow));
  EXPECT_TRUE(x.open_(p));
  EXPECT_EQ(x.counter(0, ps::kSlowConsumers), 1u);
  const std::string tail = x.out(slow);
  ASSERT_GT(tail.size(), 22u);
  EXPECT_EQ(tail.substr(tail.size() - 22), "-ERR 'Slow Consumer'\r\n");
}

TEST(PubsubLimits, StaleConnection) {
  ps::PubsubOptions o;
  o.ping_interval_ms = 1;
  o.max_pings_out = 2;
  World x(1, o);
  // The timer may fire at any point after the open (a slow build takes milliseconds per
  // step), so everything after INFO is kept, the PONG to our PING wherever it fell.
  std::string got;
  const auto k = x.open(0, &got);
  got.erase(0, got.find("\r\n") + 2);
  got += x.send(k, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
  for (int i = 0; i < 200 && x.open_(k); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    x.run();
    got += x.out(k);
  }
  if (const size_t pong = got.find("PONG\r\n"); pong != std::string::npos) got.erase(pong, 6);
  EXPECT_EQ(got, "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
  EXPECT_FALSE(x.open_(k));
  EXPECT_EQ(x.counter(0, ps::kStaleConnections), 1u);
}

// Two workers: subscribers on both, publishers on both; PONG after SUB means every worker
// knows the subscription, every message arrives exactly once, in publish order.
TEST(PubsubTwoWorkers, FanOutExactlyOnceInOrder) {
  World x(2);
  const auto s1 = x.client(1), s0 = x.client(0), w1 = x.client(1);
  EXPECT_EQ(x.send(s1, "SUB t.* 1\r\nPING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.send(s0, "SUB t.a 1\r\nPING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.send(w1, "SUB t.> 1\r\nPING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.ps(0).remote_interest().size(), 2u);
  EXPECT_EQ(x.ps(1).remote_interest().size(), 1u);
  const auto p0 = x.client(0), p1 = x.client(1);
  auto inject = [&](World::Client p, const std::string& body) {
    const std::string m = "PUB t.a " + std::to_string(body.size()) + "\r\n" + body + "\r\n";
    x.io[p.w]->inject_stream(p.c, {reinterpret_cast<const uint8_t*>(m.data()), m.size()});
  };
  for (int i = 0; i < 300; ++i) {
    // Both publish without waiting for replies; the workers interleave them.
    inject(p0, std::to_string(i));
    std::string b = "b";  // (not "b" + to_string: GCC 12 warns falsely at -O3)
    b += std::to_string(i);
    inject(p1, b);
    if (i % 7 == 0) x.run();
  }
  x.run();
  // Per subscriber: both publishers' messages, each exactly once and in its own order.
  for (const auto& s : {s1, s0, w1}) {
    const std::string got = x.out(s);
    int next_a = 0, next_b = 0;
    size_t at = 0;
    while ((at = got.find("\r\n", at)) != std::string::npos) {
      const size_t e = got.find("\r\n", at + 2);
      if (e == std::string::npos) break;
      const std::string body = got.substr(at + 2, e - at - 2);
      if (body[0] == 'b')
        EXPECT_EQ(body.substr(1), std::to_string(next_b++));
      else
        EXPECT_EQ(body, std::to_string(next_a++));
      at = e + 2;
    }
    EXPECT_EQ(next_a, 300);
    EXPECT_EQ(next_b, 300);
  }
  EXPECT_EQ(x.total(ps::kOutMsgs), 1800u);
  EXPECT_EQ(x.total(ps::kForwardFailed), 0u);
  // Closing the subscribers withdraws their interest everywhere.
  x.io[1]->inject_peer_close(s1.c);
  x.io[1]->inject_peer_close(w1.c);
  x.io[0]->inject_peer_close(s0.c);
  x.run();
  EXPECT_EQ(x.ps(0).remote_interest().size(), 0u);
  EXPECT_EQ(x.ps(1).remote_interest().size(), 0u);
}

TEST(PubsubTwoWorkers, QueueGroupOneMemberOverBothWorkers) {
  World x(2);
  const auto a = x.client(0), b = x.client(1), c = x.client(1);
  x.send(a, "SUB q g 1\r\nPING\r\n");
  x.send(b, "SUB q g 1\r\nPING\r\n");
  x.send(c, "SUB q g 1\r\nSUB q 2\r\nPING\r\n");
  x.out(a), x.out(b), x.out(c);
  const auto p = x.client(0);
  for (int i = 0; i < 300; ++i) x.send(p, "PUB q 1\r\nm\r\n");
  const std::string oa = x.out(a), ob = x.out(b), oc = x.out(c);
  const size_t na = occurrences(oa, "MSG q 1 "), nb = occurrences(ob, "MSG q 1 "),
               nc = occurrences(oc, "MSG q 1 ");
  EXPECT_EQ(na + nb + nc, 300u);
  EXPECT_GT(na, 30u);
  EXPECT_GT(nb, 30u);
  EXPECT_GT(nc, 30u);
  EXPECT_EQ(occurrences(oc, "MSG q 2 "), 300u);
  EXPECT_EQ(x.total(ps::kQueueDropped), 0u);
}

TEST(PubsubTwoWorkers, NoRespondersSeesOtherWorkers) {
  World x(2);
  const auto r = x.client(1);
  x.send(r, "SUB svc 1\r\nPING\r\n");
  const auto q = x.client(0, ",\"headers\":true,\"no_responders\":true");
  x.send(q, "SUB _INBOX.1 1\r\n");
  EXPECT_EQ(x.send(q, "PUB svc _INBOX.1 2\r\nhi\r\nPING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.out(r), "MSG svc 1 _INBOX.1 2\r\nhi\r\n");
  EXPECT_EQ(x.send(q, "PUB none _INBOX.1 0\r\n\r\n"),
            "HMSG _INBOX.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
}

}  // namespace
}  // namespace cw::svc

namespace cw::svc {
namespace {

// 10 000 subscriptions on one connection: announced in batches (not one mail each), all
// known to the other worker once PING is answered, all withdrawn when it closes.
TEST(PubsubTwoWorkers, TenThousandSubscriptions) {
  ps::PubsubOptions o;
  o.worker_subscriptions = 12000;
  World x(2, o);
  const auto s = x.client(1);
  std::string subs;
  for (int i = 0; i < 10000; ++i)
    subs += "SUB s." + std::to_string(i) + " " + std::to_string(i) + "\r\n";
  EXPECT_EQ(x.send(s, subs + "PING\r\n"), "PONG\r\n");
  EXPECT_EQ(x.ps(0).remote_interest().size(), 10000u);
  EXPECT_LT(x.stats[1].mail_out.get(), 200u);  // batches, not a mail per SUB
  const auto p = x.client(0);
  x.send(p, "PUB s.9999 1\r\nx\r\nPUB s.0 1\r\ny\r\nPUB nobody 0\r\n\r\n");
  EXPECT_EQ(x.out(s), "MSG s.9999 9999 1\r\nx\r\nMSG s.0 0 1\r\ny\r\n");
  EXPECT_EQ(x.total(ps::kForwarded), 1u);  // one batch, nothing for a subject nobody wants
  x.io[1]->inject_peer_close(s.c);
  x.run();
  EXPECT_EQ(x.ps(0).remote_interest().size(), 0u);
  EXPECT_EQ(x.total(ps::kInterestFull), 0u);
}

}  // namespace
}  // namespace cw::svc
