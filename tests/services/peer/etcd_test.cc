// The etcd v3 JSON gateway codec (app/services/peer/etcd.hh): request bodies as the gateway
// reads them, replies as etcd 3.4 writes them, and malformed replies refused.
#include "app/services/peer/etcd.hh"

#include <gtest/gtest.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>

namespace cw::peer::etcd {
namespace {

using Json = nlohmann::json;

Fingerprint fp_of(uint8_t seed) {
  Fingerprint f;
  for (size_t i = 0; i < f.size(); ++i) f[i] = uint8_t(seed + i * 9);
  return f;
}

// A range reply's kvs entry as etcd writes it: base64 key and value, int64s as strings.
Json kv(const std::string& key, const std::string& value, int64_t lease) {
  Json e{{"key", base64_encode(key)},
         {"create_revision", "5"},
         {"mod_revision", "7"},
         {"version", "2"},
         {"value", base64_encode(value)}};
  if (lease) e["lease"] = std::to_string(lease);
  return e;
}

std::string range_reply(const Json& kvs) {
  Json r{{"header",
          {{"cluster_id", "14841639068965178418"},
           {"member_id", "10276657743932975437"},
           {"revision", "9"},
           {"raft_term", "2"}}}};
  if (!kvs.empty()) {
    r["kvs"] = kvs;
    r["count"] = std::to_string(kvs.size());
  }
  return r.dump();
}

constexpr dp::Endpoint kAddrA{0x0100007f, 0x1f1d};  // 127.0.0.1:7455 (port in network order)

TEST(Etcd, Base64RoundTripAndRefusal) {
  const std::string cases[] = {
      "", "a", "ab", "abc", "/corewire/members/", std::string("\0\xff\x10", 3)};
  for (const std::string& s : cases) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), back)) << s;
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(base64_encode("/corewire/"), "L2NvcmV3aXJlLw==");
  std::string out;
  EXPECT_FALSE(base64_decode("L2N*", out));
  EXPECT_FALSE(base64_decode("L2NvcmV3aXJlLw=", out));  // padding cut short
}

TEST(Etcd, PrefixEnd) {
  EXPECT_EQ(prefix_end("/corewire/members/"), "/corewire/members0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

TEST(Etcd, RequestBodies) {
  const Json put = Json::parse(put_body("/p/a", "v", 7587848397530710026));
  EXPECT_EQ(put["key"], base64_encode("/p/a"));
  EXPECT_EQ(put["value"], base64_encode("v"));
  EXPECT_EQ(put["lease"], "7587848397530710026");  // a string: int64s do not fit a double
  const Json range = Json::parse(range_body("/p/"));
  EXPECT_EQ(range["key"], base64_encode("/p/"));
  EXPECT_EQ(range["range_end"], base64_encode("/p0"));
  EXPECT_EQ(Json::parse(grant_body(10))["TTL"], "10");
  EXPECT_EQ(Json::parse(lease_body(42))["ID"], "42");
  const Json v = Json::parse(member_value("node-a", kAddrA, fp_of(1)));
  EXPECT_EQ(v["id"], "node-a");
  EXPECT_EQ(v["addr"], "127.0.0.1:7455");
  EXPECT_EQ(v["fp"].get<std::string>().substr(0, 6), "010a13");
}

TEST(Etcd, GrantAndKeepalive) {
  Grant g;
  EXPECT_EQ(parse_grant(R"({"header":{"revision":"3"},"ID":"7587848397530710026","TTL":"3"})", g),
            Error::ok);
  EXPECT_EQ(g.id, 7587848397530710026);
  EXPECT_EQ(g.ttl, 3);
  EXPECT_EQ(parse_grant(R"({"header":{},"ID":"1"})", g), Error::bad_field);  // no TTL
  EXPECT_EQ(parse_grant(R"({"ID":"x1","TTL":"3"})", g), Error::bad_field);
  EXPECT_EQ(parse_grant(R"({"error":"etcdserver: too many requests","code":14})", g), Error::etcd);
  EXPECT_EQ(parse_grant("<html>", g), Error::json);
  EXPECT_EQ(parse_grant("[1]", g), Error::json);

  int64_t ttl = -1;
  EXPECT_EQ(parse_keepalive(R"({"result":{"header":{},"ID":"5","TTL":"3"}})"
                            "\n",
                            ttl),
            Error::ok);
  EXPECT_EQ(ttl, 3);
  // A lease etcd no longer holds: TTL left out (zero).
  EXPECT_EQ(parse_keepalive(R"({"result":{"header":{},"ID":"5"}})", ttl), Error::ok);
  EXPECT_EQ(ttl, 0);
  EXPECT_EQ(parse_keepalive(R"({"error":{"grpc_code":5,"message":"lease not found"}})", ttl),
            Error::etcd);
  EXPECT_EQ(parse_keepalive(R"({"result":{"TTL":"-4"}})", ttl), Error::bad_field);
  EXPECT_EQ(parse_keepalive(R"({"result":"x"})", ttl), Error::bad_field);
  EXPECT_EQ(parse_keepalive("", ttl), Error::json);
  EXPECT_EQ(parse_reply(R"({"header":{"revision":"4"}})"), Error::ok);
  EXPECT_EQ(parse_reply(R"({"error":"etcdserver: requested lease not found","code":5})"),
            Error::etcd);
}

TEST(Etcd, RangeTakesValidMembersSortedAndCountsTheRest) {
  const std::string p = "/corewire/members/";
  const Json kvs = Json::array({
      kv(p + "node-b", member_value("node-b", {0x0200007f, 0x0100}, fp_of(2)), 22),
      kv(p + "node-a", member_value("node-a", kAddrA, fp_of(1)), 11),
      kv(p + "node-c", member_value("node-x", kAddrA, fp_of(3)), 33),  // id is not the key's
      kv(p + "node-d", R"({"id":"node-d","addr":"0.0.0.0:1","fp":"00"})", 44),
      kv(p + "bad id!", member_value("bad id!", kAddrA, fp_of(4)), 55),
      kv(p + "node-e", "not json", 66),
      kv("/other/node-f", member_value("node-f", kAddrA, fp_of(6)), 77),
      Json{{"key", "***"}, {"value", "e30="}},
  });
  std::array<Member, 4> out;
  size_t n = 0, bad = 0;
  ASSERT_EQ(parse_range(range_reply(kvs), p, out, &n, &bad), Error::ok);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(bad, 6u);
  EXPECT_EQ(out[0].name(), "node-a");
  EXPECT_EQ(out[0].addr, kAddrA);
  EXPECT_EQ(out[0].fp, fp_of(1));
  EXPECT_EQ(out[0].lease, 11);
  EXPECT_EQ(out[1].name(), "node-b");
  EXPECT_EQ(out[1].lease, 22);
  EXPECT_FALSE(out[0].same(out[1]));
  Member again = out[0];
  EXPECT_TRUE(again.same(out[0]));
  again.lease = 12;  // the same node under a new lease is a new member
  EXPECT_FALSE(again.same(out[0]));

  // No keys: no "kvs" at all.
  ASSERT_EQ(parse_range(range_reply(Json::array()), p, out, &n, &bad), Error::ok);
  EXPECT_EQ(n, 0u);
  // More members than the view holds: the rest are counted.
  Json many = Json::array();
  for (int i = 0; i < 6; ++i) {
    const std::string id = "n" + std::to_string(i);
    many.push_back(kv(p + id, member_value(id, kAddrA, fp_of(uint8_t(i))), 1));
  }
  ASSERT_EQ(parse_range(range_reply(many), p, out, &n, &bad), Error::ok);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(bad, 2u);
  EXPECT_EQ(parse_range(R"({"kvs":{}})", p, out, &n, &bad), Error::bad_field);
  EXPECT_EQ(parse_range(R"({"kvs":[1,2]})", p, out, &n, &bad), Error::ok);
  EXPECT_EQ(bad, 2u);
  EXPECT_EQ(parse_range(R"({"kvs":[)", p, out, &n, &bad), Error::json);
  EXPECT_EQ(parse_range(R"({"error":"etcdserver: request timed out","code":14})", p, out, &n, &bad),
            Error::etcd);
}

TEST(Etcd, NodeIds) {
  EXPECT_TRUE(valid_node_id("node-a.eu_1"));
  EXPECT_TRUE(valid_node_id(std::string(kMaxNodeId, 'x')));
  EXPECT_FALSE(valid_node_id(std::string(kMaxNodeId + 1, 'x')));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id("a/b"));
  EXPECT_FALSE(valid_node_id("a b"));
}

}  // namespace
}  // namespace cw::peer::etcd
