// The NATS codec against nats-server 2.9.10's answers (recorded with a raw socket; the
// differential integration test replays them live): each op, the errors that close and
// the silent closes, ops cut at every byte, subjects and wildcards, CONNECT, the encoders.
#include "app/services/pubsub/protocol.hh"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cw::pubsub::proto {
namespace {

Parsed P(std::string_view s, Limits l = {}) {
  return parse({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, l);
}
std::string str(std::span<const uint8_t> b) {
  return {b.begin(), b.end()};
}

void expect_err(std::string_view in, Err e, Limits l = {}) {
  const Parsed p = P(in, l);
  ASSERT_EQ(p.status, Status::error) << in;
  EXPECT_EQ(p.err, e) << in;
}

TEST(PubsubProtocol, SimpleOps) {
  for (std::string_view s : {"PING\r\n", "ping\r\n", "PING\n", "PING x\r\n"}) {
    const Parsed p = P(s);
    ASSERT_EQ(p.status, Status::ok) << s;
    EXPECT_EQ(p.op, Op::ping);
    EXPECT_EQ(p.consumed, s.size());
  }
  EXPECT_EQ(P("PONG\r\n").op, Op::pong);
  EXPECT_EQ(P("+OK\r\n").op, Op::ok);
  EXPECT_EQ(P("INFO {}\r\n").op, Op::info);
  expect_err("-ERR 'x'\r\n", Err::silent);
  expect_err("FOO\r\n", Err::unknown_op);
  expect_err("MSG a 1 1\r\nx\r\n", Err::unknown_op);
  expect_err("PINGX\r\n", Err::unknown_op);
  expect_err("\r\n", Err::unknown_op);
  expect_err("X", Err::unknown_op);  // known before the line ends
  EXPECT_EQ(P("PIN").status, Status::need_more);
}

TEST(PubsubProtocol, Pub) {
  Parsed p = P("PUB foo 5\r\nhello\r\nPING\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.op, Op::pub);
  EXPECT_EQ(p.subject, "foo");
  EXPECT_EQ(p.reply, "");
  EXPECT_EQ(str(p.payload), "hello");
  EXPECT_EQ(p.consumed, 18u);
  p = P("pub\tfoo   _INBOX.1  0 \r\n\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.reply, "_INBOX.1");
  EXPECT_TRUE(p.payload.empty());
  p = P("PUB foo 5\r\nhel");
  EXPECT_EQ(p.status, Status::need_more);
  EXPECT_EQ(p.need, 18u);
  expect_err("PUB foo\r\n", Err::silent);
  expect_err("PUB foo bar x\r\n", Err::silent);
  expect_err("PUB foo -1\r\n", Err::silent);
  expect_err("PUB a b c 1\r\n", Err::silent);
  expect_err("PUB a 1\r\nxy\r\n", Err::unknown_op);
  expect_err("PUB a 3\r\nabcd\r\n", Err::unknown_op);
  expect_err("PUB a 2000000\r\n", Err::max_payload);
  Limits small;
  small.max_payload = 4;
  expect_err("PUB a 5\r\n", Err::max_payload, small);
  EXPECT_EQ(P("PUB a 4\r\nabcd\r\n", small).status, Status::ok);
  expect_err("PUB a 1234567890\r\n", Err::silent);
}

TEST(PubsubProtocol, Hpub) {
  expect_err("HPUB a 2 4\r\nab\r\n", Err::silent);  // headers not announced in CONNECT
  Limits l;
  l.headers = true;
  const Parsed p = P("HPUB a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", l);
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.op, Op::hpub);
  EXPECT_EQ(p.reply, "r");
  EXPECT_EQ(p.hdr_len, 12u);
  EXPECT_EQ(str(p.payload), "NATS/1.0\r\n\r\nhi");
  expect_err("HPUB a 5 4\r\n", Err::silent, l);
  expect_err("HPUB a 4\r\n", Err::silent, l);
}

TEST(PubsubProtocol, SubUnsub) {
  Parsed p = P("SUB foo.* 1\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.subject, "foo.*");
  EXPECT_EQ(p.queue, "");
  EXPECT_EQ(p.sid, "1");
  p = P("sub foo q 22\r\n");
  EXPECT_EQ(p.queue, "q");
  EXPECT_EQ(p.sid, "22");
  expect_err("SUB 1\r\n", Err::silent);
  expect_err("SUB a b c d\r\n", Err::silent);
  p = P("UNSUB 9 5\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.sid, "9");
  EXPECT_EQ(p.max_msgs, 5u);
  EXPECT_EQ(P("UNSUB 9 x\r\n").max_msgs, 0u);
  expect_err("UNSUB\r\n", Err::unknown_op);
}

TEST(PubsubProtocol, Connect) {
  Parsed p = P("CONNECT {\"verbose\":false}\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.json, "{\"verbose\":false}");
  expect_err("CONNECT\r\n", Err::silent);
  ConnectOpts o;
  EXPECT_TRUE(o.verbose && o.pedantic && o.echo);  // nats-server's defaults before CONNECT
  EXPECT_TRUE(parse_connect("{}", o));
  EXPECT_TRUE(o.verbose);
  EXPECT_TRUE(parse_connect(
      R"({"verbose":false,"pedantic":false,"tls_required":false,"name":"n","lang":"c",)"
      R"("version":"3.6.1","protocol":1,"echo":false,"headers":true,"no_responders":true,)"
      R"("user":"u","pass":"p\"q","sig":{"a":[1,2.5e3,null]}})",
      o));
  EXPECT_FALSE(o.verbose);
  EXPECT_FALSE(o.pedantic);
  EXPECT_FALSE(o.echo);
  EXPECT_TRUE(o.headers && o.no_responders);
  EXPECT_EQ(o.user, "u");
  EXPECT_EQ(o.pass, "p\\\"q");
  EXPECT_TRUE(o.user_set && o.pass_set && !o.token_set);
  EXPECT_EQ(o.name, "n");
  ConnectOpts keep;
  for (std::string_view bad : {"{bad", "", "{\"a\":}", "{\"a\":1", "{\"a\":1}x", "[1]"}) {
    ConnectOpts q = keep;
    EXPECT_FALSE(parse_connect(bad, q)) << bad;
  }
}

TEST(PubsubProtocol, ControlLineLimit) {
  const std::string big = "SUB a " + std::string(5000, 'x');
  expect_err(big, Err::max_control_line);
  expect_err(big + "\r\n", Err::max_control_line);
  const std::string ok = "SUB a " + std::string(4000, 'x') + "\r\n";
  EXPECT_EQ(P(ok).status, Status::ok);
  EXPECT_EQ(error_text(Err::max_control_line), "maximum control line exceeded");
  EXPECT_EQ(error_text(Err::unknown_op), "Unknown Protocol Operation");
  EXPECT_EQ(error_text(Err::max_payload), "Maximum Payload Violation");
  EXPECT_EQ(error_text(Err::silent), "");
}

// Every prefix of a pipelined session is need_more (or the same first op), never an error.
TEST(PubsubProtocol, CutAtEveryByte) {
  Limits l;
  l.headers = true;
  const std::string s =
      "CONNECT {\"verbose\":false}\r\nSUB a.> q 1\r\nPUB a.b r 3\r\nabc\r\n"
      "HPUB a.c 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1 2\r\nPING\r\n";
  size_t off = 0;
  int ops = 0;
  while (off < s.size()) {
    const std::string rest = s.substr(off);
    const Parsed whole = P(rest, l);
    ASSERT_EQ(whole.status, Status::ok) << rest;
    for (size_t k = 0; k < whole.consumed; ++k) {
      const Parsed part = P(rest.substr(0, k), l);
      ASSERT_EQ(part.status, Status::need_more) << k << ": " << rest.substr(0, k);
      if (part.need) {
        EXPECT_EQ(part.need, whole.consumed);
      }
    }
    off += whole.consumed;
    ++ops;
  }
  EXPECT_EQ(ops, 6);
}

TEST(PubsubProtocol, Subjects) {
  for (std::string_view s : {"a", "a.b", "a.*", "a.>", ">", "*", "a*.b", "a.*.c", "_INBOX.x"})
    EXPECT_TRUE(valid_subject(s)) << s;
  for (std::string_view s : {"", ".", "a.", ".a", "a..b", "a.>.b", "> .a", "a b", "a.\tb"})
    EXPECT_FALSE(valid_subject(s)) << s;
  EXPECT_TRUE(valid_literal_subject("a*.b>"));
  EXPECT_FALSE(valid_literal_subject("a.*"));
  EXPECT_FALSE(valid_literal_subject("a.>"));
}

TEST(PubsubProtocol, Matching) {
  struct C {
    std::string_view f, s;
    bool m;
  };
  for (const C& c : std::vector<C>{{"a", "a", true},
                                   {"a", "b", false},
                                   {"a", "a.b", false},
                                   {"a.b", "a", false},
                                   {"a.*", "a.b", true},
                                   {"a.*", "a", false},
                                   {"a.*", "a.b.c", false},
                                   {"a.>", "a.b", true},
                                   {"a.>", "a.b.c", true},
                                   {"a.>", "a", false},
                                   {">", "a", true},
                                   {">", "a.b", true},
                                   {"*", "a", true},
                                   {"*", "a.b", false},
                                   {"*.b.>", "x.b.c", true},
                                   {"*.b.>", "x.c.c", false},
                                   {"foo.*.>", "foo.a.b", true},
                                   {"a.*", "a.*", true},  // a published '*' is a token
                                   {"a", "a.*", false},
                                   {"a*", "a*", true},
                                   {"a*", "ab", false}})
    EXPECT_EQ(subject_matches(c.f, c.s), c.m) << c.f << " ~ " << c.s;
}

TEST(PubsubProtocol, Encoders) {
  char b[128];
  size_t n = encode_msg_head(b, "foo", "1", "", 5);
  EXPECT_EQ(std::string(b, n), "MSG foo 1 5\r\n");
  n = encode_msg_head(b, "foo", "1", "_INBOX.a", 0);
  EXPECT_EQ(std::string(b, n), "MSG foo 1 _INBOX.a 0\r\n");
  n = encode_hmsg_head(b, "_INBOX.x", "1", "", 16, 16);
  EXPECT_EQ(std::string(b, n), "HMSG _INBOX.x 1 16 16\r\n");
  n = encode_hmsg_head(b, "a", "22", "r", 12, 14);
  EXPECT_EQ(std::string(b, n), "HMSG a 22 r 12 14\r\n");
  EXPECT_LE(n, msg_head_max(1, 2, 1));
  n = encode_err(b, kErrAuth);
  EXPECT_EQ(std::string(b, n), "-ERR 'Authorization Violation'\r\n");
  EXPECT_EQ(encode_msg_head(std::span<char>(b, 8), "foo", "1", "", 5), 0u);
  EXPECT_EQ(kNoRespondersHdr.size(), 16u);
}

// The in-place head: exactly msg_head_size bytes, nothing past them, sizes at every digit
// boundary.
TEST(PubsubProtocol, HeadWrittenInPlace) {
  for (size_t total : {size_t{0}, size_t{9}, size_t{10}, size_t{99}, size_t{100}, size_t{1048576}})
    for (const char* reply : {"", "_INBOX.r"})
      for (const bool with_hdr : {false, true}) {
        const size_t hdr = total / 2;
        const size_t* h = with_hdr ? &hdr : nullptr;
        const size_t n = msg_head_size("s.t", "17", reply, h, total);
        std::string b(n + 4, '#');
        write_msg_head(b.data(), "s.t", "17", reply, h, total);
        std::string want = std::string(with_hdr ? "HMSG" : "MSG") + " s.t 17 ";
        if (*reply) want += std::string(reply) + " ";
        if (with_hdr) want += std::to_string(hdr) + " ";
        want += std::to_string(total) + "\r\n";
        EXPECT_EQ(b, want + "####") << total << " " << reply << " " << with_hdr;
      }
}

}  // namespace
}  // namespace cw::pubsub::proto
