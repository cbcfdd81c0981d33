// Tracker announces: the query string (percent-encoding, every BEP 3 parameter, an existing
// query kept), URL splitting, the reply parser (compact and dict peers, failure reason,
// intervals, every malformed field an error, more peers than the span counted), and the
// announcer thread against an HTTP tracker on loopback (cpp-httplib's server): what it
// sends, the peers it hands back, a failure reason, a dead first tracker of a tier.
#include "app/services/swarm/tracker.hh"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "app/services/swarm/announcer.hh"
#include "tests/services/swarm/fake_tracker.hh"

namespace cw::swarm::tracker {
namespace {

using test::FakeTracker;

Bytes B(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::array<uint8_t, 20> id20(uint8_t first) {
  std::array<uint8_t, 20> a{};
  for (size_t i = 0; i < a.size(); ++i) a[i] = uint8_t(first + i);
  return a;
}

std::string query(std::string_view url, const Announce& a) {
  std::string out(1024, '\0');
  out.resize(write_query(url, a, {out.data(), out.size()}));
  return out;
}

TEST(TrackerQuery, EveryParameterEncoded) {
  const auto ih = id20(0x7e);  // 0x7e '~' is unreserved, 0x7f.. are not
  std::array<uint8_t, 20> pid{};
  const std::string_view prefix = "-CW0001-abcdefghijkl";
  std::copy(prefix.begin(), prefix.end(), pid.begin());
  Announce a{.info_hash = ih,
             .peer_id = pid,
             .port = 6881,
             .uploaded = 10,
             .downloaded = 20,
             .left = 12345678901,
             .event = Event::started,
             .numwant = 50,
             .key = 7};
  const std::string q = query("http://t.example:6969/announce", a);
  EXPECT_EQ(q,
            "http://t.example:6969/announce?info_hash=~%7F%80%81%82%83%84%85%86%87%88%89%8A%8B"
            "%8C%8D%8E%8F%90%91&peer_id=-CW0001-abcdefghijkl&port=6881&uploaded=10"
            "&downloaded=20&left=12345678901&compact=1&no_peer_id=1&numwant=50&key=7"
            "&event=started");
  a.event = Event::none;
  const std::string q2 = query("/a?passkey=x", a);
  EXPECT_TRUE(q2.starts_with("/a?passkey=x&info_hash=")) << q2;
  EXPECT_EQ(q2.find("event="), std::string::npos);
  std::array<char, 40> small{};
  EXPECT_EQ(write_query("/announce", a, small), 0u);  // does not fit
  a.info_hash = ih;
  a.peer_id = Bytes(pid).first(19);
  EXPECT_EQ(query("/announce", a), "");  // not 20 bytes
}

TEST(TrackerQuery, SplitUrl) {
  HttpUrl u;
  ASSERT_TRUE(split_url("http://127.0.0.1:6969/announce", u));
  EXPECT_EQ(u.origin, "http://127.0.0.1:6969");
  EXPECT_EQ(u.target, "/announce");
  ASSERT_TRUE(split_url("https://t.example", u));
  EXPECT_EQ(u.origin, "https://t.example");
  EXPECT_EQ(u.target, "/");
  for (const char* bad : {"udp://t.example:6969", "http://", "http:///announce", "t.example",
                          "http://t.example?x=1", "http://user@t.example/", "http://a b/"})
    EXPECT_FALSE(split_url(bad, u)) << bad;
}

struct Parsed {
  std::array<bencode::Token, 256> toks;
  std::array<PeerAddr, 4> peers;
  Reply r;
  Error run(std::string_view s) { return parse_reply(B(s), toks, peers, r); }
};

PeerAddr peer(const char* ip, uint16_t port) {
  PeerAddr a;
  inet_pton(AF_INET, ip, &a.addr_be);
  a.port_be = htons(port);
  return a;
}

TEST(TrackerReply, CompactPeers) {
  Parsed p;
  // Keys unsorted, as some trackers send them.
  const std::string s = std::string("d8:intervali1800e5:peers12:") +
                        std::string("\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50", 12) +
                        "12:min intervali900e8:completei3e10:incompletei4ee";
  ASSERT_EQ(p.run(s), Error::ok);
  EXPECT_FALSE(p.r.failed);
  EXPECT_EQ(p.r.interval, 1800);
  EXPECT_EQ(p.r.min_interval, 900);
  EXPECT_EQ(p.r.complete, 3);
  EXPECT_EQ(p.r.incomplete, 4);
  ASSERT_EQ(p.r.peers, 2u);
  EXPECT_EQ(p.peers[0], peer("127.0.0.1", 6881));
  EXPECT_EQ(p.peers[1], peer("10.0.0.2", 80));
}

TEST(TrackerReply, DictPeersAndLimits) {
  Parsed p;
  ASSERT_EQ(p.run("d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa"
                  "4:porti7000eed2:ip11:example.com4:porti1ee"
                  "d2:ip3:::14:porti1eed2:ip8:10.0.0.94:porti0eed2:ip8:10.0.0.94:porti9eeee"),
            Error::ok);
  ASSERT_EQ(p.r.peers, 2u);
  EXPECT_EQ(p.peers[0], peer("127.0.0.1", 7000));
  EXPECT_EQ(p.peers[1], peer("10.0.0.9", 9));
  EXPECT_EQ(p.r.skipped, 3u);  // a host name, IPv6, port 0
  // Five compact peers into a span of four: the fifth is counted, not written.
  ASSERT_EQ(p.run("d8:intervali60e5:peers30:" + std::string(30, '\x01') + "e"), Error::ok);
  EXPECT_EQ(p.r.peers, 4u);
  EXPECT_EQ(p.r.skipped, 1u);
  ASSERT_EQ(p.run("d8:intervali99999999999ee"), Error::ok);
  EXPECT_EQ(p.r.interval, kMaxInterval);
  EXPECT_EQ(p.r.peers, 0u);
}

TEST(TrackerReply, FailureAndWarning) {
  Parsed p;
  ASSERT_EQ(p.run("d14:failure reason11:not allowede"), Error::ok);
  EXPECT_TRUE(p.r.failed);
  EXPECT_EQ(p.r.failure, "not allowed");
  ASSERT_EQ(p.run("d8:intervali5e15:warning message3:hmme"), Error::ok);
  EXPECT_FALSE(p.r.failed);
  EXPECT_EQ(p.r.warning, "hmm");
}

TEST(TrackerReply, Malformed) {
  Parsed p;
  EXPECT_EQ(p.run(""), Error::bencode);
  EXPECT_EQ(p.run("d8:intervali5e"), Error::bencode);    // truncated
  EXPECT_EQ(p.run("d8:intervali5eex"), Error::bencode);  // trailing bytes
  EXPECT_EQ(p.run("<html>busy</html>"), Error::bencode);
  EXPECT_EQ(p.run("li5ee"), Error::not_dict);
  EXPECT_EQ(p.run("de"), Error::bad_interval);
  EXPECT_EQ(p.run("d8:interval2:60e"), Error::bad_interval);
  EXPECT_EQ(p.run("d8:intervali-1ee"), Error::bad_interval);
  EXPECT_EQ(p.run("d8:intervali5e5:peers5:abcdee"), Error::bad_peers);
  EXPECT_EQ(p.run("d8:intervali5e5:peersi1ee"), Error::bad_peers);
  EXPECT_EQ(p.run("d8:intervali5e5:peersli1eee"), Error::bad_peers);
  // More elements than tokens: an error, not a partial read.
  std::string many = "d8:intervali5e5:peersl";
  for (int i = 0; i < 300; ++i) many += "de";
  EXPECT_EQ(p.run(many + "ee"), Error::bencode);
}

// Waits (bounded) for the announcer's answer to one job.
bool wait_done(Announcer& a, AnnounceDone& d) {
  a.kick();
  for (int i = 0; i < 1000; ++i) {
    if (a.poll(d)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int closed_port() {  // a loopback port nothing listens on: a connect is refused at once
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    std::abort();
  ::close(fd);
  return ntohs(sa.sin_port);
}

TEST(Announcer, AnnouncesAndHandsBackPeers) {
  FakeTracker t;
  t.reply = std::string("d8:intervali120e12:min intervali60e5:peers6:") +
            std::string("\x7f\x00\x00\x01\x1a\xe2", 6) + "e";
  Announcer::Target tg;
  tg.info_hash = id20(0xf0);
  // Tier 0: a dead tracker, then the live one; tier 1 never needed.
  const std::string dead = "http://127.0.0.1:" + std::to_string(closed_port()) + "/announce";
  tg.tiers = {{dead, t.url()}, {dead}};
  std::atomic<int> wakes{0};
  Announcer a({tg}, id20('A'), 6881, 50, 99);
  a.set_waker([](void* w) { static_cast<std::atomic<int>*>(w)->fetch_add(1); }, &wakes);

  ASSERT_TRUE(a.submit({0, Event::started, 1, 2, 3}));
  AnnounceDone d;
  ASSERT_TRUE(wait_done(a, d));
  EXPECT_EQ(d.status, AnnounceDone::ok);
  EXPECT_EQ(d.event, Event::started);
  EXPECT_EQ(d.interval_s, 120u);
  EXPECT_EQ(d.min_interval_s, 60u);
  ASSERT_EQ(d.npeers, 1u);
  EXPECT_EQ(d.peers[0], peer("127.0.0.1", 6882));
  EXPECT_GE(wakes.load(), 1);
  {
    ASSERT_EQ(t.count(), 1u);
    auto get = [&](const char* k) { return t.param(0, k); };
    const auto ih = id20(0xf0);
    EXPECT_EQ(get("info_hash"), std::string(ih.begin(), ih.end()));
    const auto pid = id20('A');
    EXPECT_EQ(get("peer_id"), std::string(pid.begin(), pid.end()));
    EXPECT_EQ(get("port"), "6881");
    EXPECT_EQ(get("uploaded"), "1");
    EXPECT_EQ(get("downloaded"), "2");
    EXPECT_EQ(get("left"), "3");
    EXPECT_EQ(get("event"), "started");
    EXPECT_EQ(get("compact"), "1");
    EXPECT_EQ(get("numwant"), "50");
  }
  // A failure reason is a tracker's answer, counted apart (the live one is asked first now).
  t.reply = "d14:failure reason7:go awaye";
  ASSERT_TRUE(a.submit({0, Event::none, 0, 0, 0}));
  ASSERT_TRUE(wait_done(a, d));
  EXPECT_EQ(d.status, AnnounceDone::failure);
  EXPECT_EQ(d.npeers, 0u);
  // Not bencode: no tracker answered usably.
  t.reply = "<html>oops</html>";
  ASSERT_TRUE(a.submit({0, Event::none, 0, 0, 0}));
  ASSERT_TRUE(wait_done(a, d));
  EXPECT_EQ(d.status, AnnounceDone::error);
  EXPECT_EQ(t.count(), 3u);
}

TEST(Announcer, NoTrackerAnswers) {
  Announcer::Target tg;
  tg.tiers = {{"http://127.0.0.1:" + std::to_string(closed_port()) + "/announce"}};
  Announcer a({tg}, id20('A'), 6881, 50, 1);
  ASSERT_TRUE(a.submit({0, Event::started, 0, 0, 0}));
  AnnounceDone d;
  ASSERT_TRUE(wait_done(a, d));
  EXPECT_EQ(d.status, AnnounceDone::error);
}

TEST(Announcer, SendsStoppedOnDestruction) {
  FakeTracker t;
  t.reply = "d8:intervali60ee";
  Announcer::Target tg;
  tg.tiers = {{t.url()}};
  {
    Announcer a({tg}, id20('A'), 6881, 50, 1);
    ASSERT_TRUE(a.submit({0, Event::stopped, 5, 6, 0}));
    a.kick();
  }  // joins after sending it
  ASSERT_EQ(t.count(), 1u);
  EXPECT_EQ(t.param(0, "event"), "stopped");
}

}  // namespace
}  // namespace cw::swarm::tracker
