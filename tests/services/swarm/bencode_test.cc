// The bencode codec against BEP 3: each type, nesting and the skip indices; every malformed
// integer, length and key an error; strict key order; every truncation of a valid document
// an error (never a read past it); the writer's output decodes back to the same tree.
#include "app/services/swarm/bencode.hh"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace cw::swarm::bencode {
namespace {

Bytes B(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Dec {
  std::array<Token, 64> toks;
  Doc doc;
  Error run(std::string_view s, Limits lim = {}) { return decode(B(s), toks, lim, doc); }
};

TEST(Bencode, Scalars) {
  Dec d;
  ASSERT_EQ(d.run("i42e"), Error::ok);
  EXPECT_EQ(d.doc.toks.size(), 1u);
  EXPECT_EQ(d.doc.at(0).type, Type::integer);
  EXPECT_EQ(d.doc.at(0).value, 42);
  ASSERT_EQ(d.run("i-9223372036854775808e"), Error::ok);
  EXPECT_EQ(d.doc.at(0).value, INT64_MIN);
  ASSERT_EQ(d.run("i9223372036854775807e"), Error::ok);
  EXPECT_EQ(d.doc.at(0).value, INT64_MAX);
  ASSERT_EQ(d.run("i0e"), Error::ok);
  EXPECT_EQ(d.doc.at(0).value, 0);
  ASSERT_EQ(d.run("4:spam"), Error::ok);
  EXPECT_EQ(d.doc.str(0), "spam");
  ASSERT_EQ(d.run("0:"), Error::ok);
  EXPECT_EQ(d.doc.str(0), "");
}

TEST(Bencode, BadIntegers) {
  Dec d;
  for (const char* s : {"ie", "i-e", "i03e", "i-0e", "i-03e", "i1x2e", "i9223372036854775808e",
                        "i-9223372036854775809e", "i99999999999999999999e", "i+1e"}) {
    EXPECT_EQ(d.run(s), Error::bad_int) << s;
  }
  EXPECT_EQ(d.run("i12"), Error::truncated);
}

TEST(Bencode, BadStrings) {
  Dec d;
  EXPECT_EQ(d.run("01:a"), Error::bad_length);
  EXPECT_EQ(d.run("4x:spam"), Error::bad_length);
  EXPECT_EQ(d.run("5:spam"), Error::truncated);
  EXPECT_EQ(d.run("4:spamx"), Error::trailing);
  EXPECT_EQ(d.run("5:hello", {.max_string = 4}), Error::too_long);
  EXPECT_EQ(d.run("99999999999999999999999:x"), Error::too_long);
  EXPECT_EQ(d.run("x"), Error::bad_char);
  EXPECT_EQ(d.run(""), Error::truncated);
  EXPECT_EQ(d.run("e"), Error::bad_char);
}

TEST(Bencode, NestedAndSkip) {
  Dec d;
  // d{ "a": [1, [2], "x"], "b": {"c": 3} }
  ASSERT_EQ(d.run("d1:ali1eli2ee1:xe1:bd1:ci3eee"), Error::ok);
  const Doc& doc = d.doc;
  ASSERT_EQ(doc.toks.size(), 11u);
  EXPECT_EQ(doc.at(0).type, Type::dict);
  EXPECT_EQ(doc.at(0).count, 2u);
  EXPECT_EQ(doc.at(0).next, 11u);
  const uint32_t a = doc.find(0, "a");
  ASSERT_EQ(a, 2u);
  EXPECT_EQ(doc.at(a).type, Type::list);
  EXPECT_EQ(doc.at(a).count, 3u);
  uint32_t c = a + 1;
  EXPECT_EQ(doc.at(c).value, 1);
  c = doc.next_item(c);
  EXPECT_EQ(doc.at(c).type, Type::list);
  c = doc.next_item(c);
  EXPECT_EQ(doc.str(c), "x");
  const uint32_t b = doc.find(0, "b");
  ASSERT_NE(b, kNone);
  EXPECT_EQ(doc.at(doc.find(b, "c")).value, 3);
  EXPECT_EQ(doc.find(0, "zz"), kNone);
  EXPECT_EQ(doc.find(a, "a"), kNone);  // not a dict
  const Bytes r = doc.raw(b);
  EXPECT_EQ(std::string(r.begin(), r.end()), "d1:ci3ee");
}

TEST(Bencode, Keys) {
  Dec d;
  EXPECT_EQ(d.run("di1e1:ae"), Error::bad_key);
  EXPECT_EQ(d.run("dlee1:ae"), Error::bad_key);
  EXPECT_EQ(d.run("d1:ae"), Error::missing_value);
  EXPECT_EQ(d.run("d1:bi1e1:ai2ee"), Error::unsorted_key);
  EXPECT_EQ(d.run("d1:ai1e1:ai2ee"), Error::unsorted_key);
  EXPECT_EQ(d.run("d1:ai1e2:aai2ee"), Error::ok);  // a prefix sorts first
  EXPECT_EQ(d.run("d2:aai1e1:ai2ee"), Error::unsorted_key);
  EXPECT_EQ(d.run("d1:bi1e1:ai2ee", {.strict = false}), Error::ok);
  EXPECT_EQ(d.run("de"), Error::ok);
  EXPECT_EQ(d.run("le"), Error::ok);
}

TEST(Bencode, Limits) {
  Dec d;
  std::string deep(33, 'l');
  deep += std::string(33, 'e');
  EXPECT_EQ(d.run(deep), Error::too_deep);
  EXPECT_EQ(d.run(deep, {.max_depth = 40}), Error::ok);
  std::string wide = "l";
  for (int i = 0; i < 64; ++i) wide += "i1e";
  wide += "e";
  EXPECT_EQ(d.run(wide), Error::too_many_tokens);  // 65 tokens, 64 slots
  // Deeper than the hard ceiling even if the limit asks for more.
  std::string deeper(kMaxDepth + 1, 'l');
  deeper += std::string(kMaxDepth + 1, 'e');
  std::vector<Token> many(200);
  Doc doc;
  EXPECT_EQ(decode(B(deeper), many, {.max_depth = 1000}, doc), Error::too_deep);
}

TEST(Bencode, Trailing) {
  Dec d;
  EXPECT_EQ(d.run("d1:ai1eeXYZ"), Error::trailing);
  ASSERT_EQ(d.run("d1:ai1eeXYZ", {.allow_trailing = true}), Error::ok);
  EXPECT_EQ(d.doc.consumed, 8u);
}

TEST(Bencode, EveryTruncationFails) {
  const std::string s = "d4:infod6:lengthi12345e4:name3:abce5:otherl1:xi-7eee";
  Dec d;
  ASSERT_EQ(d.run(s), Error::ok);
  for (size_t i = 0; i < s.size(); ++i) {
    // Copy to a heap buffer of exact size so ASan catches a read past it.
    std::vector<uint8_t> cut(s.begin(), s.begin() + static_cast<long>(i));
    Doc doc;
    EXPECT_NE(decode(cut, d.toks, {}, doc), Error::ok) << i;
  }
}

TEST(BencodeWriter, RoundTrip) {
  std::array<uint8_t, 128> buf{};
  Writer w(buf);
  w.dict().string("a").list().integer(-5).integer(0).string("xy").end();
  w.string("b").dict().string("c").integer(INT64_MAX).end().end();
  ASSERT_TRUE(w.ok());
  const std::string out(buf.begin(), buf.begin() + static_cast<long>(w.size()));
  EXPECT_EQ(out, "d1:ali-5ei0e2:xye1:bd1:ci9223372036854775807eee");
  Dec d;
  ASSERT_EQ(d.run(out), Error::ok);
  EXPECT_EQ(d.doc.at(d.doc.find(0, "a") + 1).value, -5);
}

TEST(BencodeWriter, Overflow) {
  std::array<uint8_t, 8> buf{};
  Writer w(buf);
  w.string("12345");
  EXPECT_TRUE(w.ok());
  w.string("x");  // "1:x" needs 3, 1 left
  EXPECT_FALSE(w.ok());
  w.integer(1);
  EXPECT_FALSE(w.ok());
}

}  // namespace
}  // namespace cw::swarm::bencode
