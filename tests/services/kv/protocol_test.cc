// The memcached codec against memcached 1.6's behaviour (proto_text.c): every command, each
// error path with its exact reply, noreply, limits, pipelining and requests cut at every
// byte; the reply encoders byte for byte; the UDP frame.
#include "app/services/kv/protocol.hh"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cw::kv::proto {
namespace {

Parsed P(std::string_view s, Limits l = {}) {
  return parse(s, l);
}

std::vector<std::string> keys_of(const Request& r) {
  std::vector<std::string> v;
  for (std::string_view k : r.keys) v.emplace_back(k);
  return v;
}

// An error answered with `reply` after dropping `consumed` bytes.
void expect_error(std::string_view in, std::string_view reply, size_t consumed,
                  bool noreply = false) {
  const Parsed p = P(in);
  ASSERT_EQ(p.status, Status::error) << in;
  EXPECT_EQ(p.reply, reply) << in;
  EXPECT_EQ(p.consumed, consumed) << in;
  EXPECT_EQ(p.noreply, noreply) << in;
  EXPECT_FALSE(p.close) << in;
}
void expect_error(std::string_view in, std::string_view reply) {
  expect_error(in, reply, in.size());
}
void expect_close(std::string_view in) {
  const Parsed p = P(in);
  ASSERT_EQ(p.status, Status::error) << in;
  EXPECT_TRUE(p.close);
  EXPECT_TRUE(p.reply.empty()) << "memcached closes without a reply";
}

// Every prefix of `in` is need_more, or (once the deciding bytes are there) the same result
// as the whole input; a known need never undershoots what the whole request takes.
void expect_split_invariant(std::string_view in) {
  const Parsed whole = P(in);
  for (size_t k = 0; k < in.size(); ++k) {
    const Parsed p = P(in.substr(0, k));
    if (p.status == Status::need_more) {
      EXPECT_TRUE(p.need == 0 || p.need > k) << k;
      if (p.need != 0 && whole.status == Status::ok) {
        EXPECT_EQ(p.need, whole.consumed) << in;
      }
      continue;
    }
    EXPECT_EQ(p.status, whole.status) << "prefix " << k << " of " << in;
    EXPECT_EQ(p.consumed, whole.consumed) << k;
    EXPECT_EQ(p.reply, whole.reply) << k;
    EXPECT_EQ(p.close, whole.close) << k;
    EXPECT_EQ(p.noreply, whole.noreply) << k;
    if (p.status == Status::ok) {
      EXPECT_LE(p.consumed, k);
      EXPECT_EQ(p.req.cmd, whole.req.cmd);
      EXPECT_EQ(p.req.data, whole.req.data);
    }
  }
}

TEST(KvText, GetFamily) {
  Parsed p = P("get foo\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::get);
  EXPECT_EQ(p.consumed, 9u);
  EXPECT_EQ(keys_of(p.req), (std::vector<std::string>{"foo"}));

  p = P("gets  a  bb ccc \r\nget x\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::gets);
  EXPECT_EQ(p.consumed, 18u);
  EXPECT_EQ(p.req.keys.size(), 3u);
  EXPECT_EQ(keys_of(p.req), (std::vector<std::string>{"a", "bb", "ccc"}));

  p = P("gat -5 k1 k2\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::gat);
  EXPECT_EQ(p.req.exptime, -5);
  EXPECT_EQ(keys_of(p.req), (std::vector<std::string>{"k1", "k2"}));

  p = P("gats 100 k\n");  // a bare \n ends a line too
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::gats);
  EXPECT_EQ(p.req.exptime, 100);
  EXPECT_EQ(p.consumed, 11u);

  p = P("gat 10\r\n");  // memcached answers END: no keys
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_TRUE(p.req.keys.empty());

  p = P("bget k\r\n");  // memcached's ancient alias
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::get);
}

TEST(KvText, GetErrors) {
  expect_error("get\r\n", "ERROR");
  expect_error("gets \r\n", "ERROR");
  expect_error("gat\r\n", "ERROR");
  expect_error("gat x k\r\n", "CLIENT_ERROR invalid exptime argument");
  expect_error("gats 1.5 k\r\n", "CLIENT_ERROR invalid exptime argument");
  const std::string k250(250, 'k'), k251(251, 'k');
  EXPECT_EQ(P("get " + k250 + "\r\n").status, Status::ok);
  expect_error("get a " + k251 + " b\r\n", "CLIENT_ERROR bad command line format");
  // Only ' ' separates keys; other control bytes are key bytes, as in memcached, but not
  // NUL or a lone CR (memcached would end the key or the line there).
  Parsed tab = P("get a\tb \x10\x10k\x7f\r\n");
  ASSERT_EQ(tab.status, Status::ok);
  EXPECT_EQ(tab.req.keys.size(), 2u);
  expect_error(std::string("get a\0b\r\n", 9), "CLIENT_ERROR bad command line format");
  expect_error("get a\rb\r\n", "CLIENT_ERROR bad command line format");
  std::string many = "get";
  for (size_t i = 0; i < kMaxGetKeys; ++i) many += " k";
  Parsed p = P(many + "\r\n");
  ASSERT_EQ(p.status, Status::ok) << "a get line may exceed kMaxLine";
  EXPECT_EQ(p.req.keys.size(), kMaxGetKeys);
  expect_error(many + " k\r\n", "CLIENT_ERROR bad command line format");
}

TEST(KvText, StorageCommands) {
  const struct {
    const char* name;
    Cmd cmd;
  } cmds[] = {{"set", Cmd::set},
              {"add", Cmd::add},
              {"replace", Cmd::replace},
              {"append", Cmd::append},
              {"prepend", Cmd::prepend}};
  for (const auto& c : cmds) {
    const std::string line = std::string(c.name) + " key 4294967295 -1 7\r\n";
    const std::string value("a\r\nb\0cd", 7);
    const std::string in = line + value + "\r\nget key\r\n";
    const Parsed p = P(in);
    ASSERT_EQ(p.status, Status::ok) << c.name;
    EXPECT_EQ(p.req.cmd, c.cmd);
    EXPECT_EQ(p.req.key, "key");
    EXPECT_EQ(p.req.client_flags, 4294967295u);
    EXPECT_EQ(p.req.exptime, -1);
    EXPECT_EQ(p.req.data, value);
    EXPECT_EQ(p.consumed, line.size() + 7 + 2);
    EXPECT_FALSE(p.req.noreply);
  }
  Parsed p = P("set k 0 0 0 noreply\r\n\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_TRUE(p.req.noreply);
  EXPECT_TRUE(p.req.data.empty());
  p = P("set k 0 0 1 junk\r\nx\r\n");  // memcached ignores a sixth token that is not noreply
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_FALSE(p.req.noreply);
  p = P("cas k 1 2 3 18446744073709551615\r\nabc\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::cas);
  EXPECT_EQ(p.req.cas, 18446744073709551615u);
  EXPECT_EQ(p.req.data, "abc");
  p = P("cas k 1 2 3 4 noreply\r\nabc\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_TRUE(p.req.noreply);
  EXPECT_EQ(p.req.cas, 4u);
}

TEST(KvText, StorageNeedsItsDataBlock) {
  const std::string line = "set k 0 0 10\r\n";
  Parsed p = P(line);
  ASSERT_EQ(p.status, Status::need_more);
  EXPECT_EQ(p.need, line.size() + 12) << "the runtime can grow its buffer straight to it";
  p = P(line + "0123456789\r");
  ASSERT_EQ(p.status, Status::need_more);
  EXPECT_EQ(p.need, line.size() + 12);
  p = P("set k 0 0 10");
  ASSERT_EQ(p.status, Status::need_more);
  EXPECT_EQ(p.need, 0u) << "line not whole: length unknown";
}

TEST(KvText, StorageErrors) {
  const std::string bf = "CLIENT_ERROR bad command line format";
  expect_error("set k 0 0\r\n", "ERROR");
  expect_error("set k 0 0 1 noreply x\r\n", "ERROR");
  expect_error("cas k 0 0 1\r\n", "ERROR");
  expect_error("set " + std::string(251, 'k') + " 0 0 1\r\n", bf);
  expect_error(std::string("set k\0 0 0 1\r\n", 14), bf);
  EXPECT_EQ(P("set \x10\x10k\x01 0 0 1\r\nv\r\n").status, Status::ok);
  expect_error("set k x 0 1\r\n", bf);
  expect_error("set k 4294967296 0 1\r\n", bf);
  expect_error("set k -1 0 1\r\n", bf);
  expect_error("set k 0 x 1\r\n", bf);
  expect_error("set k 0 0 -1\r\n", bf);
  expect_error("set k 0 0 2147483646\r\n", bf);
  expect_error("set k 0 0 1x\r\n", bf);
  expect_error("cas k 0 0 1 -1\r\n", bf);
  expect_error("cas k 0 0 1 18446744073709551616\r\n", bf);
  // A bad line is not followed by a swallow: memcached reads the data as the next command.
  const Parsed p = P("set k 0 0 -1 noreply\r\nxx\r\n");
  ASSERT_EQ(p.status, Status::error);
  EXPECT_EQ(p.consumed, 22u);
  EXPECT_TRUE(p.noreply) << "noreply silences text errors (memcached out_string)";
  // The data block must end in \r\n; the whole block is consumed.
  expect_error("set k 0 0 3\r\nabcd\r\n", "CLIENT_ERROR bad data chunk", 18);
  expect_error("set k 0 0 3 noreply\r\nabc\n\r\n", "CLIENT_ERROR bad data chunk", 26, true);
}

TEST(KvText, TooLargeIsSwallowed) {
  Limits l;
  l.max_value = 100;
  const std::string line = "set k 0 0 101\r\n";
  Parsed p = P(line, l);
  ASSERT_EQ(p.status, Status::error);
  EXPECT_EQ(p.reply, "SERVER_ERROR object too large for cache");
  EXPECT_EQ(p.consumed, line.size() + 103) << "the value still to come is discarded";
  EXPECT_EQ(P("set k 0 0 100\r\n", l).status, Status::need_more);
  p = P("append k 0 0 5000000 noreply\r\n");
  ASSERT_EQ(p.status, Status::error);
  EXPECT_TRUE(p.noreply);
  EXPECT_EQ(p.consumed, 30u + 5000002);
}

TEST(KvText, IncrDecr) {
  Parsed p = P("incr n 18446744073709551615\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::incr);
  EXPECT_EQ(p.req.key, "n");
  EXPECT_EQ(p.req.delta, 18446744073709551615u);
  p = P("decr n 0 noreply\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::decr);
  EXPECT_TRUE(p.req.noreply);
  const std::string bad = "CLIENT_ERROR invalid numeric delta argument";
  expect_error("incr n 18446744073709551616\r\n", bad);
  expect_error("incr n -1\r\n", bad);
  expect_error("incr n abc\r\n", bad);
  expect_error("decr n 1a noreply\r\n", bad, 19, true);
  expect_error("incr n\r\n", "ERROR");
  expect_error("incr n 1 noreply x\r\n", "ERROR");
  expect_error("incr " + std::string(251, 'n') + " 1\r\n", "CLIENT_ERROR bad command line format");
}

TEST(KvText, Delete) {
  Parsed p = P("delete k\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::del);
  EXPECT_FALSE(p.req.noreply);
  EXPECT_TRUE(P("delete k noreply\r\n").req.noreply);
  EXPECT_EQ(P("delete k 0\r\n").status, Status::ok);
  EXPECT_TRUE(P("delete k 0 noreply\r\n").req.noreply);
  p = P("delete noreply\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.key, "noreply");
  EXPECT_FALSE(p.req.noreply);
  const std::string usage = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
  expect_error("delete k 5\r\n", usage);
  expect_error("delete k noreply 0\r\n", usage);
  expect_error("delete k 5 noreply\r\n", usage, 20, true);
  expect_error("delete\r\n", "ERROR");
  expect_error("delete k 0 noreply x\r\n", "ERROR");
  expect_error("delete " + std::string(251, 'k') + "\r\n", "CLIENT_ERROR bad command line format");
}

TEST(KvText, Touch) {
  Parsed p = P("touch k -3\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::touch);
  EXPECT_EQ(p.req.exptime, -3);
  EXPECT_TRUE(P("touch k 3 noreply\r\n").req.noreply);
  expect_error("touch k x\r\n", "CLIENT_ERROR invalid exptime argument");
  expect_error("touch k\r\n", "ERROR");
}

TEST(KvText, FlushVersionVerbosityStatsQuit) {
  Parsed p = P("flush_all\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::flush_all);
  EXPECT_EQ(p.req.exptime, 0);
  p = P("flush_all 30\r\n");
  EXPECT_EQ(p.req.exptime, 30);
  p = P("flush_all noreply\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_TRUE(p.req.noreply);
  EXPECT_EQ(p.req.exptime, 0);
  p = P("flush_all 7 noreply\r\n");
  EXPECT_TRUE(p.req.noreply);
  EXPECT_EQ(p.req.exptime, 7);
  expect_error("flush_all x\r\n", "CLIENT_ERROR invalid exptime argument");
  expect_error("flush_all 1 2 3\r\n", "ERROR");

  EXPECT_EQ(P("version\r\n").req.cmd, Cmd::version);
  EXPECT_EQ(P("version with junk\r\n").req.cmd, Cmd::version);
  EXPECT_EQ(P("quit\r\n").req.cmd, Cmd::quit);

  p = P("verbosity 1\r\n");
  EXPECT_EQ(p.req.cmd, Cmd::verbosity);
  EXPECT_EQ(p.req.verbosity, 1u);
  EXPECT_TRUE(P("verbosity 0 noreply\r\n").req.noreply);
  expect_error("verbosity\r\n", "ERROR");
  expect_error("verbosity x\r\n", "CLIENT_ERROR bad command line format");

  p = P("stats\r\n");
  EXPECT_EQ(p.req.cmd, Cmd::stats);
  EXPECT_TRUE(p.req.args.empty());
  EXPECT_EQ(P("stats  settings \r\n").req.args, "settings");
  EXPECT_EQ(P("stats detail on\r\n").req.args, "detail on");
}

TEST(KvText, UnknownEmptyAndHttp) {
  expect_error("\r\n", "ERROR");
  expect_error("\n", "ERROR");
  expect_error("   \r\n", "ERROR");
  expect_error("x\r\n", "ERROR");
  expect_error("foo bar\r\n", "ERROR");
  expect_error("GETS k\r\n", "ERROR");
  expect_error("lru_crawler HTTP/1.1\r\n", "ERROR");
  expect_close("GET / HTTP/1.1\r\n");
  expect_close("POST /x HTTP/1.0\r\nHost: y\r\n\r\n");
  // memcached dispatches on the first letter first: these are its commands gone wrong.
  expect_error("set / HTTP/1.1\r\n", "ERROR");
  EXPECT_EQ(P("get / HTTP/1.1\r\n").status, Status::ok);
}

TEST(KvText, LineLimits) {
  // kMaxLine bytes, newline included, is accepted; one more closes.
  std::string ok_line = "version " + std::string(kMaxLine - 10, 'x') + "\r\n";
  ASSERT_EQ(ok_line.size(), kMaxLine);
  EXPECT_EQ(P(ok_line).status, Status::ok);
  expect_close("version " + std::string(kMaxLine - 9, 'x') + "\r\n");
  // Without a newline: need more until kMaxLine bytes, then close.
  EXPECT_EQ(P(std::string(kMaxLine - 1, 'x')).status, Status::need_more);
  expect_close(std::string(kMaxLine, 'x'));
  // A TLS ClientHello (binary, no newline) is closed once it is long enough.
  expect_close(std::string("\x16\x03\x01\x02\x00\x01", 6) + std::string(kMaxLine, '\0'));
  // A get line may grow to kMaxGetLine.
  std::string get = "get";
  while (get.size() < kMaxLine + 100) get += " abcdefgh";
  EXPECT_EQ(P(get).status, Status::need_more);
  EXPECT_EQ(P(get + "\r\n").status, Status::ok);
  EXPECT_EQ(P("  " + get).status, Status::need_more) << "leading spaces are skipped";
  std::string huge = "get ";
  huge.resize(kMaxGetLine, 'k');
  expect_close(huge);
  huge.back() = '\n';
  expect_error(huge, "CLIENT_ERROR bad command line format");  // one key of 65 KB
}

// More cases whose answers were taken from memcached 1.6.18 (Debian) on loopback.
TEST(KvText, AsMemcachedAnswers) {
  EXPECT_EQ(P(" get k\r\n").req.cmd, Cmd::get);
  EXPECT_EQ(P("set k 0 0 1 \r\nx\r\n").status, Status::ok);
  EXPECT_EQ(P("set k 0 0 1\nx\r\n").status, Status::ok);
  expect_error("\r\r\n", "ERROR");
  expect_error("cas k 0 0 1 5 noreply x\r\n", "ERROR");
  EXPECT_FALSE(P("incr k 1 junk\r\n").req.noreply);
  EXPECT_EQ(P("verbosity 5 6\r\n").req.verbosity, 5u);
  EXPECT_EQ(P("flush_all -1\r\n").req.exptime, -1);
  // Bad chunk under noreply: silent, the block (line + 1 + 2 bytes) consumed; memcached
  // then reads the leftover "\n" as an empty line: ERROR.
  const std::string in = "set k 0 0 1 noreply\r\nxy\r\n";
  expect_error(in, "CLIENT_ERROR bad data chunk", in.size() - 1, true);
  expect_error(std::string_view(in).substr(in.size() - 1), "ERROR");
  expect_error("ms k 2 b\r\nhi\r\n", "CLIENT_ERROR error decoding key", 14);
  expect_error("ms k 1 MS MS\r\nx\r\n", "CLIENT_ERROR duplicate flag", 17);
  expect_error("ms k 1 S5\r\nx\r\n", "CLIENT_ERROR invalid flag", 14);
  expect_error("mg k M\r\n", "CLIENT_ERROR incorrect length for M token");
  expect_error("ma k M\r\n", "CLIENT_ERROR invalid or duplicate flag");
  expect_error("mg k O1 O2\r\n", "CLIENT_ERROR duplicate flag");
}

TEST(KvText, ALineTricklingInIsScannedOnce) {
  // The runtime passes back the size of the input that needed more: the scan resumes there.
  std::string in = "get";
  size_t known = 0;
  for (int i = 0; i < 1000; ++i) {
    in += " key";
    const Parsed p = parse(in, {}, known);
    ASSERT_EQ(p.status, Status::need_more);
    ASSERT_EQ(p.need, 0u);
    known = in.size();
  }
  in += "\r\n";
  const Parsed p = parse(in, {}, known);
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.keys.size(), 1000u);
  EXPECT_EQ(p.consumed, in.size());
  // The hint only skips the scan: a wrong one past the newline cannot find it.
  EXPECT_EQ(parse("get k\r\n", {}, 7).status, Status::need_more);
  EXPECT_EQ(parse("get k\r\n", {}, 100).status, Status::need_more);
}

TEST(KvText, Pipelined) {
  const std::string in =
      "set a 1 0 1\r\nx\r\nget a b\r\nincr n 5\r\ndelete a noreply\r\nbogus\r\n"
      "ms k 2 T0\r\nhi\r\nmn\r\nversion\r\n";
  const Cmd want[] = {Cmd::set, Cmd::get, Cmd::incr,   Cmd::del, Cmd::version /*error*/,
                      Cmd::ms,  Cmd::mn,  Cmd::version};
  std::string_view rest = in;
  size_t i = 0;
  while (!rest.empty()) {
    const Parsed p = P(rest);
    ASSERT_NE(p.status, Status::need_more) << rest;
    ASSERT_LT(i, std::size(want));
    if (i == 4) {
      EXPECT_EQ(p.status, Status::error);
      EXPECT_EQ(p.reply, "ERROR");
    } else {
      ASSERT_EQ(p.status, Status::ok) << rest;
      EXPECT_EQ(p.req.cmd, want[i]);
    }
    ASSERT_GT(p.consumed, 0u);
    ASSERT_LE(p.consumed, rest.size());
    rest.remove_prefix(p.consumed);
    ++i;
  }
  EXPECT_EQ(i, std::size(want));
}

TEST(KvMeta, GetFlags) {
  Parsed p = P("mg foo v k c f t s O1234 q h l T30 N-1 R5\r\n");
  ASSERT_EQ(p.status, Status::ok);
  const Request& r = p.req;
  EXPECT_EQ(r.cmd, Cmd::mg);
  EXPECT_EQ(r.key, "foo");
  EXPECT_EQ(r.item_key(), "foo");
  EXPECT_TRUE(r.noreply) << "q";
  for (char f : std::string_view("vkcftsOqhlTNR")) EXPECT_TRUE(r.meta.has(f)) << f;
  for (char f : std::string_view("bEIMFCDJPLux")) EXPECT_FALSE(r.meta.has(f)) << f;
  EXPECT_EQ(std::string(r.meta.order.data(), r.meta.count), "vkcftsOqhlTNR");
  EXPECT_EQ(r.meta.opaque, "1234");
  EXPECT_EQ(r.meta.ttl, 30);
  EXPECT_EQ(r.meta.vivify_ttl, -1);
  EXPECT_EQ(r.meta.recache_ttl, 5);
  p = P("mg foo\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.meta.count, 0);
  EXPECT_FALSE(p.req.noreply);
}

TEST(KvMeta, BinaryKey) {
  Parsed p = P("mg Zm9vAGJhcg== b v\r\n");  // "foo\0bar"
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.key, "Zm9vAGJhcg==");
  EXPECT_EQ(p.req.item_key(), std::string_view("foo\0bar", 7));
  expect_error("mg Zm9v! b\r\n", "CLIENT_ERROR error decoding key");
  expect_error("md Zm9 b\r\n", "CLIENT_ERROR invalid or duplicate flag");
  p = P("me Zm9v b\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::me);
  EXPECT_EQ(p.req.item_key(), "foo");
  expect_error("me Zm9 b\r\n", "CLIENT_ERROR bad command line format");
}

TEST(KvMeta, FlagErrors) {
  expect_error("mg\r\n", "ERROR");
  expect_error("mx k\r\n", "ERROR");
  expect_error("mg k v v\r\n", "CLIENT_ERROR duplicate flag");
  expect_error("mg k \xff\r\n", "CLIENT_ERROR duplicate flag");  // memcached: byte >= 127
  expect_error("mg k Z\r\n", "CLIENT_ERROR invalid flag");
  expect_error("mg k 1\r\n", "CLIENT_ERROR invalid flag");
  expect_error("mg k Tx\r\n", "CLIENT_ERROR bad token in command line format");
  expect_error("mg k N\r\n", "CLIENT_ERROR bad token in command line format");
  expect_error("mg k C-1\r\n", "CLIENT_ERROR bad token in command line format");
  expect_error("mg k E1x\r\n", "CLIENT_ERROR bad token in command line format");
  expect_error("mg k Fx\r\n", "CLIENT_ERROR bad command line format");
  expect_error("mg k MSS\r\n", "CLIENT_ERROR incorrect length for M token");
  expect_error("mg k J-\r\n", "CLIENT_ERROR invalid numeric initial value");
  expect_error("mg k D\r\n", "CLIENT_ERROR invalid numeric delta value");
  // The scan goes on after a bad argument: the last message wins, F leaves it as it was.
  expect_error("mg k Tx D\r\n", "CLIENT_ERROR invalid numeric delta value");
  expect_error("mg k Tx Fx\r\n", "CLIENT_ERROR bad token in command line format");
  expect_error("mg k Tx v v\r\n", "CLIENT_ERROR duplicate flag");
  expect_error("mg " + std::string(251, 'k') + " v\r\n", "CLIENT_ERROR bad command line format");
  std::string o32(32, 'o');
  o32[0] = 'O';
  EXPECT_EQ(P("mg k " + o32 + "\r\n").status, Status::ok);
  expect_error("mg k " + o32 + "o\r\n", "CLIENT_ERROR opaque token too long");
  // 19 tokens pass, 20 do not (MFLAG_MAX_OPT_LENGTH counts the terminal token).
  const std::string f17 = " v k c f t s q h l u x I P L O1 T1 N1";
  EXPECT_EQ(P("mg k" + f17 + "\r\n").status, Status::ok);
  expect_error("mg k" + f17 + " R1\r\n", "CLIENT_ERROR options flags are too long");
  expect_error("md k" + f17 + " R1\r\n", "CLIENT_ERROR options flags too long");
  expect_error("ma k" + f17 + " R1\r\n", "CLIENT_ERROR options flags too long");
  // md and ma answer one message for every flag error.
  expect_error("md k Tx\r\n", "CLIENT_ERROR invalid or duplicate flag");
  expect_error("ma k q q\r\n", "CLIENT_ERROR invalid or duplicate flag");
  expect_error("ma k MX\r\n", "CLIENT_ERROR invalid mode for ma M token");
}

TEST(KvMeta, Set) {
  Parsed p = P("ms key 5 T-1 F7 C99 E100 I MA k O9 c s b\r\nhello\r\n");
  EXPECT_EQ(p.status, Status::error) << "b: key is not base64";
  p = P("ms key 5 T-1 F7 C99 E100 I MA k O9 c s q\r\nhello\r\n");
  ASSERT_EQ(p.status, Status::ok);
  const Request& r = p.req;
  EXPECT_EQ(r.cmd, Cmd::ms);
  EXPECT_EQ(r.data, "hello");
  EXPECT_EQ(r.meta.ttl, -1);
  EXPECT_EQ(r.meta.client_flags, 7u);
  EXPECT_EQ(r.meta.compare_cas, 99u);
  EXPECT_EQ(r.meta.explicit_cas, 100u);
  EXPECT_EQ(r.meta.mode, 'A');
  EXPECT_TRUE(r.meta.has('I'));
  EXPECT_TRUE(r.noreply);
  EXPECT_EQ(p.consumed, 42u + 7);
  for (char m : std::string_view("EAPRS")) {
    EXPECT_EQ(P(std::string("ms k 1 M") + m + "\r\nx\r\n").status, Status::ok) << m;
  }
  p = P("ms k 3\r\n");
  EXPECT_EQ(p.status, Status::need_more);
  EXPECT_EQ(p.need, 8u + 5);
}

TEST(KvMeta, SetErrors) {
  const std::string bf = "CLIENT_ERROR bad command line format";
  expect_error("ms\r\n", "ERROR");
  expect_error("ms k\r\n", bf);
  expect_error("ms k x\r\n", bf);
  expect_error("ms k -1\r\n", bf);
  expect_error("ms " + std::string(251, 'k') + " 1\r\n", bf);
  // Once the length is known, a refused ms swallows its value; errors ignore q.
  Parsed p = P("ms k 3 MX q\r\n");
  ASSERT_EQ(p.status, Status::error);
  EXPECT_EQ(p.reply, "CLIENT_ERROR invalid mode for ms M token");
  EXPECT_EQ(p.consumed, 13u + 5);
  EXPECT_FALSE(p.noreply);
  expect_error("ms k 3 Tz\r\nabc\r\n", "CLIENT_ERROR bad token in command line format", 16);
  expect_error("ms k 3 O" + std::string(32, 'o') + "\r\nabc\r\n",
               "CLIENT_ERROR opaque token too long", 47);
  expect_error("ms k 3 q\r\nabcd\r\n", "CLIENT_ERROR bad data chunk", 15);
  expect_error("ms k 2000000\r\n", "SERVER_ERROR object too large for cache", 14 + 2000002);
  const std::string f16 = " v k c f t s q h l u x I P L O1 T1";
  EXPECT_EQ(P("ms k 1" + f16 + "\r\nx\r\n").status, Status::ok);
  expect_error("ms k 1" + f16 + " N1\r\nx\r\n", "CLIENT_ERROR options flags too long",
               f16.size() + 11);
}

TEST(KvMeta, DeleteArithmeticNoopDebug) {
  Parsed p = P("md k q C5 I T30 x O7\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::md);
  EXPECT_EQ(p.req.meta.compare_cas, 5u);
  EXPECT_TRUE(p.req.meta.has('I'));
  EXPECT_TRUE(p.req.noreply);
  p = P("ma n N0 J10 D3 MD v t c\r\n");
  ASSERT_EQ(p.status, Status::ok);
  EXPECT_EQ(p.req.cmd, Cmd::ma);
  EXPECT_EQ(p.req.meta.initial, 10u);
  EXPECT_EQ(p.req.meta.delta, 3u);
  EXPECT_EQ(p.req.meta.mode, 'D');
  EXPECT_EQ(P("ma n\r\n").req.meta.delta, 1u) << "default delta";
  for (char m : std::string_view("I+D-")) {
    EXPECT_EQ(P(std::string("ma n M") + m + "\r\n").status, Status::ok) << m;
  }
  EXPECT_EQ(P("mn\r\n").req.cmd, Cmd::mn);
  EXPECT_EQ(P("mn anything at all\r\n").req.cmd, Cmd::mn);
  EXPECT_EQ(P("me k\r\n").req.cmd, Cmd::me);
  expect_error("me\r\n", "CLIENT_ERROR bad command line format");
  EXPECT_EQ(P("me Zm9 bx\r\n").req.item_key(), "Zm9") << "only a lone b decodes";
}

TEST(KvSplit, EveryPrefixAgreesWithTheWhole) {
  Limits small;
  small.max_value = 4;
  const std::string cases[] = {
      "get a bb ccc\r\n",
      "gats 10 k\r\n",
      "set k 1 2 5\r\nab\r\nc\r\n",
      "cas k 1 2 3 77 noreply\r\nxyz\r\n",
      "set k 0 0 3\r\nabcd\r\n",  // bad data chunk
      "set k 0 0 -1\r\n",
      "incr k 99\r\n",
      "delete k 5\r\n",
      "flush_all 10 noreply\r\n",
      "GET / HTTP/1.1\r\n",
      "stats items\r\n",
      "mg Zm9v b v k O1 T-1\r\n",
      "ms k 4 T0 MS c\r\n1234\r\n",
      "ms k 4 MQ\r\n1234\r\n",
      "ma k MX\r\n",
      "md k q\r\n",
      "mn\r\n",
      std::string(kMaxLine + 5, 'y'),
      "get " + std::string(kMaxLine, 'k') + "\r\n",
  };
  for (const std::string& c : cases) {
    SCOPED_TRACE(c.substr(0, 40));
    expect_split_invariant(c);
    // Followed by another request, the first parses the same.
    const Parsed a = P(c), b = P(c + "version\r\n");
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.consumed, b.consumed);
    EXPECT_EQ(a.reply, b.reply);
  }
  // The swallow of a too-large value is reported on the line, before the value.
  expect_split_invariant("set k 0 0 1000\r\n");
  const Parsed p = P("set k 0 0 5\r\n", small);
  EXPECT_EQ(p.status, Status::error);
  EXPECT_EQ(p.consumed, 13u + 7);
}

TEST(KvReplies, TextLines) {
  char b[256];
  const auto s = [&b](size_t n) { return std::string(b, n); };
  EXPECT_EQ(s(encode_value(b, "foo", 5, "bar")), "VALUE foo 5 3\r\nbar\r\n");
  const uint64_t cas = 18446744073709551615u;
  EXPECT_EQ(s(encode_value(b, "k", 0, "", &cas)), "VALUE k 0 0 18446744073709551615\r\n\r\n");
  EXPECT_EQ(s(encode_value_header(b, "k", 4294967295u, 1048576)), "VALUE k 4294967295 1048576\r\n");
  EXPECT_EQ(s(encode(b, Reply::end)), "END\r\n");
  EXPECT_EQ(s(encode(b, Reply::stored)), "STORED\r\n");
  EXPECT_EQ(s(encode(b, Reply::not_stored)), "NOT_STORED\r\n");
  EXPECT_EQ(s(encode(b, Reply::exists)), "EXISTS\r\n");
  EXPECT_EQ(s(encode(b, Reply::not_found)), "NOT_FOUND\r\n");
  EXPECT_EQ(s(encode(b, Reply::deleted)), "DELETED\r\n");
  EXPECT_EQ(s(encode(b, Reply::touched)), "TOUCHED\r\n");
  EXPECT_EQ(s(encode(b, Reply::ok)), "OK\r\n");
  EXPECT_EQ(s(encode(b, Reply::error)), "ERROR\r\n");
  EXPECT_EQ(s(encode(b, Reply::reset)), "RESET\r\n");
  EXPECT_EQ(s(encode_number(b, 0)), "0\r\n");
  EXPECT_EQ(s(encode_number(b, 18446744073709551615u)), "18446744073709551615\r\n");
  EXPECT_EQ(s(encode_client_error(b, "bad data chunk")), "CLIENT_ERROR bad data chunk\r\n");
  EXPECT_EQ(s(encode_server_error(b, "out of memory")), "SERVER_ERROR out of memory\r\n");
  EXPECT_EQ(s(encode_line(b, "VERSION 1.6.18")), "VERSION 1.6.18\r\n");
  EXPECT_EQ(s(encode_stat(b, "curr_items", 42)), "STAT curr_items 42\r\n");
  EXPECT_EQ(s(encode_stat(b, "version", "1.6.18")), "STAT version 1.6.18\r\n");
}

TEST(KvReplies, MetaLines) {
  char b[256];
  const auto s = [&b](size_t n) { return std::string(b, n); };
  const MetaRet fl[] = {MetaRet::num('f', 30),   MetaRet::num('c', 123),   MetaRet::snum('t', -1),
                        MetaRet::str('O', "op"), MetaRet::str('k', "foo"), MetaRet::bare('W')};
  EXPECT_EQ(s(encode_meta(b, MetaCode::hd, fl)), "HD f30 c123 t-1 Oop kfoo W\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::hd)), "HD\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::en)), "EN\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::nf)), "NF\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::ns)), "NS\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::ex)), "EX\r\n");
  EXPECT_EQ(s(encode_meta(b, MetaCode::mn)), "MN\r\n");
  EXPECT_EQ(s(encode_meta_value(b, "hello", std::span(fl, 2))), "VA 5 f30 c123\r\nhello\r\n");
  EXPECT_EQ(s(encode_meta_value(b, "")), "VA 0\r\n\r\n");
  EXPECT_EQ(s(encode_meta_debug(b, "k", "exp=-1 la=0")), "ME k exp=-1 la=0\r\n");
}

TEST(KvReplies, ZeroWhenItDoesNotFit) {
  char b[64];
  const uint64_t cas = 7;
  const size_t full = encode_value(b, "key", 1, "value", &cas);
  ASSERT_GT(full, 0u);
  for (size_t n = 0; n < full; ++n) EXPECT_EQ(encode_value({b, n}, "key", 1, "value", &cas), 0u);
  const MetaRet fl[] = {MetaRet::num('s', 5)};
  const size_t va = encode_meta_value(b, "value", fl);
  for (size_t n = 0; n < va; ++n) EXPECT_EQ(encode_meta_value({b, n}, "value", fl), 0u);
  for (size_t n = 0; n < 5; ++n) EXPECT_EQ(encode({b, n}, Reply::end), 0u);
  EXPECT_EQ(encode({b, 5}, Reply::end), 5u);
}

TEST(KvBase64, RoundTripAndRefusal) {
  uint8_t d[kMaxBinaryKeyLen];
  char e[kMaxKeyLen + 4];
  for (size_t n = 1; n <= kMaxBinaryKeyLen; ++n) {
    std::vector<uint8_t> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = uint8_t(i * 37 + n);
    const size_t el = base64_encode(in, e);
    ASSERT_EQ(el, (n + 2) / 3 * 4);
    ASSERT_LE(el, kMaxKeyLen);
    ASSERT_EQ(base64_decode({e, el}, d), n);
    EXPECT_EQ(std::vector<uint8_t>(d, d + n), in);
  }
  EXPECT_EQ(base64_decode("", d), 0u);
  EXPECT_EQ(base64_decode("Zm9", d), 0u);
  EXPECT_EQ(base64_decode("Zm9=v", d), 0u);
  EXPECT_EQ(base64_decode("Zm=v", d), 0u);
  EXPECT_EQ(base64_decode("Zh==", d), 0u) << "non-zero bits under the padding";
  EXPECT_EQ(base64_decode("====", d), 0u);
  EXPECT_EQ(base64_decode("Zm9v", {d, 2}), 0u) << "does not fit";
  char small[3];
  EXPECT_EQ(base64_encode(std::span<const uint8_t>(d, 1), small), 0u);
}

TEST(KvUdp, HeaderParseAndEncode) {
  const uint8_t req[] = {0x12, 0x34, 0, 0, 0, 1, 0, 0, 'g', 'e', 't', ' ', 'k', '\r', '\n'};
  UdpFrame f = parse_udp(req);
  ASSERT_EQ(f.status, UdpStatus::ok);
  EXPECT_EQ(f.header.request_id, 0x1234);
  EXPECT_EQ(f.header.total, 1);
  EXPECT_EQ(std::string(f.payload.begin(), f.payload.end()), "get k\r\n");
  EXPECT_EQ(parse_udp(std::span(req, 8)).status, UdpStatus::too_short);
  EXPECT_EQ(parse_udp(std::span(req, 3)).status, UdpStatus::too_short);
  uint8_t multi[sizeof req];
  std::copy(std::begin(req), std::end(req), multi);
  multi[5] = 2;
  EXPECT_EQ(parse_udp(multi).status, UdpStatus::multi_packet);
  multi[4] = 1;
  multi[5] = 1;
  EXPECT_EQ(parse_udp(multi).status, UdpStatus::multi_packet);

  uint8_t h[kUdpHeaderSize];
  encode_udp_header(h, {0xabcd, 0x0102, 0x0304, 0});
  EXPECT_EQ(std::vector<uint8_t>(h, h + 8),
            (std::vector<uint8_t>{0xab, 0xcd, 0x01, 0x02, 0x03, 0x04, 0, 0}));
}

TEST(KvUdp, RepliesSplitLikeMemcached) {
  EXPECT_EQ(kUdpMaxPayload, 1392u);
  EXPECT_EQ(udp_datagram_count(0), 0);
  EXPECT_EQ(udp_datagram_count(1), 1);
  EXPECT_EQ(udp_datagram_count(1392), 1);
  EXPECT_EQ(udp_datagram_count(1393), 2);
  EXPECT_EQ(udp_datagram_count(size_t(1392) * 70000), 0xffff);
  std::vector<uint8_t> reply(1392 * 3 + 5);
  for (size_t i = 0; i < reply.size(); ++i) reply[i] = uint8_t(i * 13);
  std::vector<uint8_t> joined;
  uint8_t dg[kUdpMaxDatagram];
  for (uint16_t seq = 0; seq < 4; ++seq) {
    const size_t n = udp_datagram(dg, 77, reply, seq);
    ASSERT_EQ(n, seq < 3 ? kUdpMaxDatagram : kUdpHeaderSize + 5);
    EXPECT_EQ(dg[0] << 8 | dg[1], 77);
    EXPECT_EQ(dg[2] << 8 | dg[3], seq);
    EXPECT_EQ(dg[4] << 8 | dg[5], 4);
    EXPECT_EQ(dg[6] << 8 | dg[7], 0);
    joined.insert(joined.end(), dg + kUdpHeaderSize, dg + n);
  }
  EXPECT_EQ(joined, reply);
  EXPECT_EQ(udp_datagram(dg, 77, reply, 4), 0u);
  EXPECT_EQ(udp_datagram({dg, 100}, 77, reply, 0), 0u) << "too small";
}

}  // namespace
}  // namespace cw::kv::proto
