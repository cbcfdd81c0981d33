// corewire-bench's memcached workload: the Zipf/uniform key distribution (chi-square against
// the exact probabilities), request encoding byte for byte, reply parsing element by element
// and cut at every byte, UDP reassembly, and the client over the fake backend (TCP in-order
// replies, UDP request ids and multi-datagram replies, misses and error replies).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bench/corewire_bench/key_dist.hh"
#include "bench/corewire_bench/kv_codec.hh"
#include "bench/corewire_bench/kv_udp.hh"
#include "tests/bench/client_fixture.hh"

namespace cw::bench {
namespace {

using kv::Elem;
using kv::KvProto;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ---- key distribution ----------------------------------------------------------------------

// Pearson's chi-square of `samples` draws against dist's exact probabilities.
double chi_square(const kv::KeyDist& sampler, const kv::KeyDist& expected, uint64_t samples) {
  std::vector<uint64_t> hits(expected.size());
  uint64_t r = 12345;
  for (uint64_t i = 0; i < samples; ++i, r += 2) {
    const uint64_t k = sampler.sample(kv::mix64(r), kv::mix64(r + 1));
    EXPECT_LT(k, hits.size());
    if (k < hits.size()) ++hits[k];
  }
  double chi = 0;
  for (uint64_t i = 0; i < hits.size(); ++i) {
    const double e = expected.probability(i) * double(samples);
    chi += (double(hits[i]) - e) * (double(hits[i]) - e) / e;
  }
  return chi;
}

// With 999 degrees of freedom the chi-square's 99.9th percentile is about 1143.
constexpr double kChi999 = 1143;

TEST(KeyDist, ZipfMatchesItsProbabilities) {
  const kv::KeyDist z(1000, 0.99);
  double sum = 0;
  for (uint64_t i = 0; i < 1000; ++i) sum += z.probability(i);
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_NEAR(z.probability(0) / z.probability(9), std::pow(10.0, 0.99), 1e-9);
  EXPECT_LT(chi_square(z, z, 2'000'000), kChi999);
}

TEST(KeyDist, TheCheckFailsForTheWrongSkew) {
  // The test above can fail: samples of theta 0.8 or of a uniform choice are far off 0.99.
  const kv::KeyDist z(1000, 0.99), z8(1000, 0.8), u(1000, 0);
  EXPECT_GT(chi_square(z8, z, 2'000'000), 10 * kChi999);
  EXPECT_GT(chi_square(u, z, 2'000'000), 10 * kChi999);
}

TEST(KeyDist, UniformMatchesAndStaysInRange) {
  const kv::KeyDist u(1000, 0);
  EXPECT_LT(chi_square(u, u, 1'000'000), kChi999);
  const kv::KeyDist one(1, 0.99);
  EXPECT_EQ(one.sample(~uint64_t{0}, ~uint64_t{0}), 0u);
}

TEST(KeyDist, HotKeyShareOfALargeSpace) {
  // 1 M keys, theta 0.99: rank 0 takes 1/H(1M, 0.99), about 6.7 % of requests.
  const kv::KeyDist z(1'000'000, 0.99);
  uint64_t r = 7, top = 0;
  const uint64_t n = 1'000'000;
  for (uint64_t i = 0; i < n; ++i, r += 2) top += z.sample(kv::mix64(r), kv::mix64(r + 1)) == 0;
  const double p = z.probability(0);
  EXPECT_GT(p, 0.05);
  EXPECT_NEAR(double(top) / double(n), p, 5 * std::sqrt(p / double(n)));
}

// ---- request encoding ------------------------------------------------------------------------

std::string get_req(KvProto p, uint32_t ks, std::vector<uint64_t> keys) {
  std::string s(kv::get_size(p, ks, uint32_t(keys.size())), '?');
  kv::encode_get(p, s.data(), ks, keys);
  return s;
}
std::string set_req(KvProto p, uint32_t ks, uint64_t key, std::string_view v) {
  std::string s(kv::set_size(p, ks, uint32_t(v.size())), '?');
  kv::encode_set(p, s.data(), ks, key, v);
  return s;
}

TEST(KvEncode, TextAndMetaRequests) {
  EXPECT_EQ(kv::min_key_size(1), 2u);
  EXPECT_EQ(kv::min_key_size(1000), 4u);
  EXPECT_EQ(kv::min_key_size(1001), 5u);
  EXPECT_EQ(get_req(KvProto::text, 6, {42}), "get k00042\r\n");
  EXPECT_EQ(get_req(KvProto::text, 4, {1, 999, 7}), "get k001 k999 k007\r\n");
  EXPECT_EQ(get_req(KvProto::meta, 4, {5}), "mg k005 v\r\n");
  EXPECT_EQ(get_req(KvProto::meta, 4, {5, 6}), "mg k005 v q\r\nmg k006 v q\r\nmn\r\n");
  EXPECT_EQ(set_req(KvProto::text, 4, 12, "hello"), "set k012 0 0 5\r\nhello\r\n");
  EXPECT_EQ(set_req(KvProto::meta, 4, 12, "hello"), "ms k012 5\r\nhello\r\n");
  EXPECT_EQ(set_req(KvProto::text, 3, 0, ""), "set k00 0 0 0\r\n\r\n");
  const std::string big(1000, 'x');
  EXPECT_EQ(set_req(KvProto::meta, 32, 3, big).size(), 3 + 32 + 1 + 4 + 2 + 1000 + 2u);
}

// ---- reply parsing ----------------------------------------------------------------------------

kv::Element parse(std::string_view s, uint32_t max_value = 100) {
  return kv::parse_element(bytes(s), max_value);
}

TEST(KvReply, Elements) {
  EXPECT_EQ(parse("VALUE k1 0 3\r\nabc\r\nEND\r\n").kind, Elem::value);
  EXPECT_EQ(parse("VALUE k1 0 3\r\nabc\r\nEND\r\n").consumed, 19u);
  EXPECT_EQ(parse("VALUE k1 4294967295 3 77\r\nabc\r\n").kind, Elem::value);
  EXPECT_EQ(parse("VA 2\r\nhi\r\n").consumed, 10u);
  EXPECT_EQ(parse("VA 2 f0 c9\r\nhi\r\n").kind, Elem::value);
  EXPECT_EQ(parse("END\r\n").kind, Elem::end);
  EXPECT_EQ(parse("MN\r\n").kind, Elem::meta_end);
  EXPECT_EQ(parse("EN\r\n").kind, Elem::miss);
  EXPECT_EQ(parse("STORED\r\n").kind, Elem::stored);
  EXPECT_EQ(parse("HD\r\n").kind, Elem::stored);
  EXPECT_EQ(parse("HD c5 Oabc\r\n").kind, Elem::stored);
  EXPECT_EQ(parse("NOT_STORED\r\n").kind, Elem::not_stored);
  EXPECT_EQ(parse("EXISTS\r\n").kind, Elem::not_stored);
  EXPECT_EQ(parse("NS\r\n").kind, Elem::not_stored);
  EXPECT_EQ(parse("ERROR\r\n").kind, Elem::error);
  EXPECT_EQ(parse("CLIENT_ERROR bad data chunk\r\n").kind, Elem::error);
  EXPECT_EQ(parse("SERVER_ERROR out of memory storing object\r\n").consumed, 43u);
}

TEST(KvReply, BadReplies) {
  for (std::string_view s :
       {"VALUE k1 0 3\r\nabcd\r\n", "VALUE k1 0 x\r\n", "VALUE k1 0\r\n", "VALUE  0 3\r\n",
        "VALUE k1 4294967296 1\r\nx\r\n", "VALUE k1 0 1 2 3\r\nx\r\n", "VA\r\n", "VA 1 \r\n",
        "VALUE k 0 1 \r\nx\r\n", "VA 101\r\n", "END\n", "\r\n", "HTTP/1.1 200 OK\r\n", "HDX\r\n",
        "HD \r\n", "STORED \r\n", "VALUE k1 0 99999999999999999999999\r\n"})
    EXPECT_EQ(parse(s).kind, Elem::bad) << s;
  EXPECT_EQ(parse(std::string(kv::kMaxReplyLine, 'x')).kind, Elem::bad) << "no newline";
  EXPECT_EQ(parse(std::string(kv::kMaxReplyLine - 1, 'x')).kind, Elem::need_more);
}

TEST(KvReply, EveryCutOfAReplyNeedsMore) {
  const std::string r = "VALUE k00001 0 10 5\r\n0123456789\r\n";
  for (size_t n = 0; n < r.size(); ++n) {
    const auto e = parse(r.substr(0, n));
    ASSERT_EQ(e.kind, Elem::need_more) << n;
    if (n >= 21) {
      EXPECT_EQ(e.need, r.size()) << "known once the value line is whole";
    }
  }
  EXPECT_EQ(parse(r).consumed, r.size());
}

TEST(KvReply, FollowingWholeReplies) {
  using kv::Step;
  kv::ReplyState st;
  // text multi-get of 3 keys, one hit
  EXPECT_EQ(kv::follow(KvProto::text, true, 3, st, Elem::value), Step::more);
  EXPECT_EQ(kv::follow(KvProto::text, true, 3, st, Elem::end), Step::done);
  EXPECT_EQ(st.hits, 1u);
  st = {};
  EXPECT_EQ(kv::follow(KvProto::text, true, 1, st, Elem::value), Step::more);
  EXPECT_EQ(kv::follow(KvProto::text, true, 1, st, Elem::value), Step::bad) << "2 values, 1 key";
  st = {};
  EXPECT_EQ(kv::follow(KvProto::text, true, 1, st, Elem::meta_end), Step::bad);
  EXPECT_EQ(kv::follow(KvProto::text, false, 1, st, Elem::stored), Step::done);
  EXPECT_EQ(kv::follow(KvProto::text, false, 1, st, Elem::value), Step::bad);
  EXPECT_EQ(kv::follow(KvProto::text, false, 1, st, Elem::not_stored), Step::done);
  EXPECT_TRUE(st.error);
  st = {};
  EXPECT_EQ(kv::follow(KvProto::text, true, 2, st, Elem::error), Step::done);
  EXPECT_TRUE(st.error);
  // meta: one key ends at VA or EN; several at MN, an error line in between
  st = {};
  EXPECT_EQ(kv::follow(KvProto::meta, true, 1, st, Elem::miss), Step::done);
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(kv::follow(KvProto::meta, true, 1, st, Elem::value), Step::done);
  EXPECT_EQ(st.hits, 1u);
  st = {};
  EXPECT_EQ(kv::follow(KvProto::meta, true, 3, st, Elem::value), Step::more);
  EXPECT_EQ(kv::follow(KvProto::meta, true, 3, st, Elem::error), Step::more);
  EXPECT_EQ(kv::follow(KvProto::meta, true, 3, st, Elem::meta_end), Step::done);
  EXPECT_TRUE(st.error);
  EXPECT_EQ(kv::follow(KvProto::meta, true, 3, st, Elem::end), Step::bad);
}

// ---- UDP reassembly --------------------------------------------------------------------------

std::vector<uint8_t> dgram(uint16_t id, uint16_t seq, uint16_t total, std::string_view payload) {
  std::vector<uint8_t> d(8 + payload.size());
  cw::kv::proto::encode_udp_header(d.data(), {id, seq, total, 0});
  std::memcpy(d.data() + 8, payload.data(), payload.size());
  return d;
}

TEST(KvUdp, MessagesInAnyOrderThenAppended) {
  kv::UdpReassembly ra(2, 8000);
  bool ev = false;
  auto& s = ra.slot_for(5, ev);
  EXPECT_FALSE(ev);
  const std::string a(1392, 'a');
  using A = kv::UdpReassembly::Add;
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 1, 2, "tail"))), A::partial);
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 1, 2, "tail"))), A::partial) << "duplicate";
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 0, 2, a))), A::message);
  EXPECT_EQ(s.have, 1396u);
  EXPECT_EQ(std::string_view(reinterpret_cast<char*>(s.buf.data()) + 1392, 4), "tail");
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 0, 1, "END\r\n"))), A::message);
  EXPECT_EQ(s.have, 1401u);
  ra.consume(s, 1396);
  EXPECT_EQ(std::string_view(reinterpret_cast<char*>(s.buf.data()), s.have), "END\r\n");
  // A short non-last datagram, seq past total, or a total that changes mid-message: bad.
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 0, 2, "short"))), A::bad);
  EXPECT_EQ(ra.add(s, kv::parse_udp_reply(dgram(5, 2, 2, "x"))), A::bad);
  // Three requests, two slots: the oldest is given up.
  auto& t = ra.slot_for(6, ev);
  EXPECT_FALSE(ev);
  auto& u = ra.slot_for(7, ev);
  EXPECT_TRUE(ev);
  EXPECT_EQ(&u, &s);
  EXPECT_EQ(&ra.slot_for(6, ev), &t);
  // More than the buffer holds.
  kv::UdpReassembly small(1, 1392);
  auto& w = small.slot_for(1, ev);
  EXPECT_EQ(small.add(w, kv::parse_udp_reply(dgram(1, 1, 3, a))), A::bad);
}

// ---- the client over the fake backend ----------------------------------------------------

class KvClientTest : public ClientFixture {
 protected:
  void make_kv(dp::Transport t, KvProto p, double get_ratio, uint32_t multiget, uint32_t count) {
    ClientConfig c;
    c.dialect = Dialect::memcached;
    c.transport = t;
    c.mode = LoopMode::closed;
    c.window = 4;
    c.count = count;
    c.timeout_ns = 1'000'000'000;
    c.kv.proto = p;
    c.kv.get_ratio = get_ratio;
    c.kv.multiget = multiget;
    c.kv.key_size = 8;
    c.kv.value_min = c.kv.value_max = 2000;
    c.kv.keys = std::make_shared<const kv::KeyDist>(100, 0.99);
    make(c);
  }
  void reply(uint64_t now, const std::vector<uint8_t>& d) { reply_dgram(now, 0, d); }
  static std::string text_of(const std::vector<uint8_t>& d, size_t from = 0) {
    return {reinterpret_cast<const char*>(d.data()) + from, d.size() - from};
  }
};

TEST_F(KvClientTest, UdpGetsWithMultiDatagramRepliesHitsAndMisses) {
  make_kv(dp::Transport::udp, KvProto::text, 1.0, 2, 4);
  auto out = tick(0);
  ASSERT_EQ(out.size(), 4u) << "window 4";
  EXPECT_EQ(res->kv_gets.get(), 4u);
  EXPECT_EQ(res->kv_keys.get(), 8u);
  for (uint16_t i = 0; i < 4; ++i) {
    const auto h = kv::parse_udp_reply(out[i].bytes);
    EXPECT_EQ(h.request_id, i);
    EXPECT_EQ(h.total, 1u);
    EXPECT_TRUE(text_of(out[i].bytes, 8).starts_with("get k")) << text_of(out[i].bytes, 8);
    EXPECT_EQ(out[i].bytes.size(), 8 + 3 + 2 * 9 + 2u);
  }
  // Request 1: a 2000-byte value in two datagrams (out of order), then END: 1 hit 1 miss.
  const std::string v = "VALUE k0000001 0 2000\r\n" + std::string(2000, 'x') + "\r\n";
  reply(10, dgram(1, 1, 2, v.substr(1392)));
  reply(20, dgram(1, 0, 2, v.substr(0, 1392)));
  EXPECT_EQ(res->received.get(), 0u) << "END still to come";
  reply(30, dgram(1, 0, 1, "END\r\n"));
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->kv_hits.get(), 1u);
  EXPECT_EQ(res->kv_misses.get(), 1u);
  EXPECT_EQ(res->hist.max(), 30u);
  // Request 0: all missed; request 2: an error line; request 3: garbage.
  reply(40, dgram(0, 0, 1, "END\r\n"));
  EXPECT_EQ(res->kv_misses.get(), 3u);
  reply(50, dgram(2, 0, 1, "SERVER_ERROR out of memory\r\n"));
  EXPECT_EQ(res->kv_error_replies.get(), 1u);
  reply(60, dgram(3, 0, 1, "HTTP/1.0 400\r\n"));
  EXPECT_EQ(res->kv_bad_replies.get(), 1u);
  EXPECT_EQ(res->errors.get(), 2u);
  EXPECT_EQ(res->received.get(), 2u);
  // A reply to an answered request, and one to a request id never sent: late.
  reply(70, dgram(0, 0, 1, "END\r\n"));
  reply(70, dgram(9, 0, 1, "END\r\n"));
  EXPECT_EQ(res->late.get(), 2u);
  reply(70, {1, 2, 3});
  EXPECT_EQ(res->kv_bad_replies.get(), 2u) << "shorter than the frame header";
  tick(100);
  EXPECT_TRUE(res->done());
}

TEST_F(KvClientTest, UdpSetsAndLoss) {
  make_kv(dp::Transport::udp, KvProto::meta, 0.0, 1, 2);
  auto out = tick(0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(res->kv_sets.get(), 2u);
  const std::string s = text_of(out[0].bytes, 8);
  EXPECT_TRUE(s.starts_with("ms k")) << s;
  EXPECT_EQ(s.size(), 3 + 8 + 1 + 4 + 2 + 2000 + 2u);
  reply(5, dgram(0, 0, 1, "HD\r\n"));
  EXPECT_EQ(res->received.get(), 1u);
  tick(1'000'000'001);
  EXPECT_EQ(res->lost.get(), 1u) << "request 1 never answered";
  EXPECT_TRUE(res->done());
}

TEST_F(KvClientTest, TcpRepliesInOrderAcrossSegments) {
  make_kv(dp::Transport::tcp, KvProto::meta, 0.5, 1, 8);
  const dp::ConnId conn = connect();
  tick(1);
  const std::string req = text_of(io.take_stream_out(conn));
  // Answer each of the 4 requests as memcached would, in order: sets stored, gets hit.
  std::string rep;
  size_t at = 0, gets = 0;
  for (int i = 0; i < 4; ++i) {
    if (req.compare(at, 3, "mg ") == 0) {
      rep += "VA 2\r\nhi\r\n";
      at = req.find('\n', at) + 1;
      ++gets;
    } else {
      ASSERT_EQ(req.compare(at, 3, "ms "), 0) << req.substr(at);
      rep += "HD\r\n";
      at = req.find('\n', req.find('\n', at) + 1) + 1;
    }
  }
  EXPECT_EQ(at, req.size());
  auto c2 = ctx(100);
  auto v = client->on_stream(c2, conn, bytes(rep).first(7));
  EXPECT_FALSE(v.close);
  const uint32_t first = v.consumed;
  v = client->on_stream(c2, conn, bytes(rep).subspan(first));
  EXPECT_EQ(first + v.consumed, rep.size());
  EXPECT_EQ(res->received.get(), 4u);
  EXPECT_EQ(res->kv_hits.get(), gets);
  EXPECT_EQ(res->kv_misses.get(), 0u);
  // A partial value asks the runtime for the whole element at once.
  tick(200);
  v = client->on_stream(c2, conn, bytes("VA 1000\r\nabc"));
  EXPECT_EQ(v.consumed, 0u);
  EXPECT_EQ(v.need, 9 + 1000 + 2u);
  // Garbage closes the connection.
  v = client->on_stream(c2, conn, bytes("garbage\r\n"));
  EXPECT_TRUE(v.close);
  EXPECT_EQ(res->kv_bad_replies.get(), 1u);
}

TEST_F(KvClientTest, TcpValuesOverTheFrameLimitPassUnbuffered) {
  make_kv(dp::Transport::tcp, KvProto::text, 1.0, 1, 1);
  const dp::ConnId conn = connect();
  tick(1);
  EXPECT_TRUE(text_of(io.take_stream_out(conn)).starts_with("get k"));
  auto c = ctx(50);
  const std::string line = "VALUE k0000001 0 100000\r\n";
  auto v = client->on_stream(c, conn, bytes(line + std::string(1000, 'x')));
  EXPECT_EQ(v.consumed, line.size() + 1000) << "taken as it comes, not buffered";
  EXPECT_EQ(v.need, 0u);
  v = client->on_stream(c, conn, bytes(std::string(98999, 'y')));
  EXPECT_EQ(v.consumed, 98999u);
  v = client->on_stream(c, conn, bytes("z\r"));
  EXPECT_EQ(v.consumed, 1u);
  EXPECT_EQ(v.need, 2u) << "the CRLF after the value";
  EXPECT_EQ(res->received.get(), 0u);
  v = client->on_stream(c, conn, bytes("\r\nEND\r\n"));
  EXPECT_EQ(v.consumed, 7u);
  EXPECT_FALSE(v.close);
  EXPECT_EQ(res->received.get(), 1u);
  EXPECT_EQ(res->kv_hits.get(), 1u);
  EXPECT_EQ(res->errors.get(), 0u);
}

}  // namespace
}  // namespace cw::bench
