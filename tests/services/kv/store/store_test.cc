// The kv store's operations against memcached 1.6's rules, with a controlled clock.
#include "app/services/kv/store/store.hh"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace cw::kv {
namespace {

constexpr uint32_t kT0 = 1'700'000'000;  // a plausible unix time

Store make_store(std::size_t mem = std::size_t{8} << 20, std::size_t item_max = 1 << 20,
                 uint32_t bump_interval = 0) {
  StoreConfig cfg;
  cfg.memory_limit = mem;
  cfg.item_size_max = item_max;
  cfg.lru_bump_interval_s = bump_interval;  // exact LRU unless a test says otherwise
  Result<Store> s = Store::create(cfg);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return std::move(s).value();
}

StoreResult put(Store& s, std::string_view k, std::string_view v, uint32_t now, int64_t exptime = 0,
                uint32_t flags = 0, StoreMode mode = StoreMode::set, uint64_t cas = 0) {
  StoreRequest r;
  r.mode = mode;
  r.key = k;
  r.value = v;
  r.exptime = exptime;
  r.flags = flags;
  r.cas = cas;
  return s.store(r, now);
}

std::string value_of(Store& s, std::string_view k, uint32_t now) {
  GetResult g = s.get(k, now);
  return g.outcome == Outcome::hit ? std::string(g.item.value) : std::string("<miss>");
}

void expect_sane(const Store& s) {
  Result<void> v = s.verify();
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
}

TEST(KvStore, ConfigIsValidated) {
  StoreConfig c;
  c.item_size_max = 100;
  EXPECT_FALSE(Store::create(c).ok());
  c = {};
  c.memory_limit = 1000;
  EXPECT_FALSE(Store::create(c).ok());
  c = {};
  c.growth_factor = 1.0;
  EXPECT_FALSE(Store::create(c).ok());
  c = {};
  c.hash_buckets = 1000;
  EXPECT_FALSE(Store::create(c).ok());
  c = {};
  c.memory_limit = std::size_t{64} << 30;
  EXPECT_FALSE(Store::create(c).ok());
}

TEST(KvStore, SetGetMissAndCounters) {
  Store s = make_store();
  EXPECT_EQ(s.get("a", kT0).outcome, Outcome::miss);
  StoreResult r = put(s, "a", "hello", kT0, 0, 42);
  EXPECT_EQ(r.outcome, Outcome::stored);
  GetResult g = s.get("a", kT0);
  ASSERT_EQ(g.outcome, Outcome::hit);
  EXPECT_EQ(g.item.value, "hello");
  EXPECT_EQ(g.item.key, "a");
  EXPECT_EQ(g.item.flags, 42u);
  EXPECT_EQ(g.item.cas, r.cas);
  EXPECT_EQ(put(s, "a", "bye", kT0).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, "a", kT0), "bye");
  const StoreStats& st = s.stats();
  EXPECT_EQ(st.cmd_get.get(), 3u);
  EXPECT_EQ(st.get_hits.get(), 2u);
  EXPECT_EQ(st.get_misses.get(), 1u);
  EXPECT_EQ(st.cmd_set.get(), 2u);
  EXPECT_EQ(st.curr_items.get(), 1u);
  EXPECT_EQ(st.total_items.get(), 2u);
  EXPECT_EQ(st.bytes.get(), kItemHeaderBytes + 1 + 3);
  EXPECT_EQ(st.limit_maxbytes.get(), std::size_t{8} << 20);
  expect_sane(s);
}

TEST(KvStore, KeyLimits) {
  Store s = make_store();
  const std::string k250(250, 'k'), k251(251, 'k');
  EXPECT_EQ(put(s, k250, "v", kT0).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, k250, kT0), "v");
  EXPECT_EQ(put(s, k251, "v", kT0).outcome, Outcome::bad_key);
  EXPECT_EQ(put(s, "", "v", kT0).outcome, Outcome::bad_key);
  EXPECT_EQ(s.get(k251, kT0).outcome, Outcome::bad_key);
  EXPECT_EQ(s.remove({.key = ""}, kT0), Outcome::bad_key);
}

TEST(KvStore, BinaryValuesAndEmptyValue) {
  Store s = make_store();
  const std::string bin("a\0b\r\n\xff", 6);
  EXPECT_EQ(put(s, "bin", bin, kT0).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, "bin", kT0), bin);
  EXPECT_EQ(put(s, "empty", "", kT0).outcome, Outcome::stored);
  GetResult g = s.get("empty", kT0);
  EXPECT_EQ(g.outcome, Outcome::hit);
  EXPECT_TRUE(g.item.value.empty());
}

TEST(KvStore, ExptimeRules) {
  Store s = make_store();
  put(s, "never", "v", kT0, 0);
  put(s, "rel", "v", kT0, 10);
  put(s, "neg", "v", kT0, -1);
  put(s, "max_rel", "v", kT0, kMaxRelativeExptime);       // 30 days, still relative
  put(s, "abs_past", "v", kT0, kMaxRelativeExptime + 1);  // absolute: 1970 + 30 days
  put(s, "abs", "v", kT0, int64_t{kT0} + 100);
  EXPECT_EQ(s.get("neg", kT0).outcome, Outcome::expired);
  EXPECT_EQ(s.get("abs_past", kT0).outcome, Outcome::expired);
  EXPECT_EQ(s.get("rel", kT0 + 9).outcome, Outcome::hit);
  EXPECT_EQ(s.get("rel", kT0 + 10).outcome, Outcome::expired);  // exptime <= now is gone
  EXPECT_EQ(s.get("rel", kT0 + 10).outcome, Outcome::miss);     // and reclaimed
  EXPECT_EQ(s.get("abs", kT0 + 99).item.exptime, kT0 + 100);
  EXPECT_EQ(s.get("abs", kT0 + 100).outcome, Outcome::expired);
  EXPECT_EQ(s.get("max_rel", kT0 + kMaxRelativeExptime - 1).outcome, Outcome::hit);
  EXPECT_EQ(s.get("max_rel", kT0 + kMaxRelativeExptime).outcome, Outcome::expired);
  EXPECT_EQ(s.get("never", kT0 + 400'000'000).outcome, Outcome::hit);
  EXPECT_EQ(s.stats().get_expired.get(), 5u);
  EXPECT_EQ(s.stats().get_misses.get(), 6u);
  EXPECT_EQ(s.stats().expired_unfetched.get(), 2u);  // neg and abs_past were never read
  EXPECT_EQ(s.stats().curr_items.get(), 1u);
  expect_sane(s);
}

TEST(KvStore, AddReplace) {
  Store s = make_store();
  EXPECT_EQ(put(s, "k", "1", kT0, 0, 0, StoreMode::replace).outcome, Outcome::not_stored);
  EXPECT_EQ(put(s, "k", "1", kT0, 0, 0, StoreMode::add).outcome, Outcome::stored);
  EXPECT_EQ(put(s, "k", "2", kT0, 0, 0, StoreMode::add).outcome, Outcome::not_stored);
  EXPECT_EQ(value_of(s, "k", kT0), "1");
  EXPECT_EQ(put(s, "k", "3", kT0, 0, 7, StoreMode::replace).outcome, Outcome::stored);
  EXPECT_EQ(s.get("k", kT0).item.flags, 7u);
  // add over an expired item stores
  put(s, "e", "old", kT0, 5);
  EXPECT_EQ(put(s, "e", "new", kT0 + 5, 0, 0, StoreMode::add).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, "e", kT0 + 5), "new");
}

TEST(KvStore, AppendPrependKeepFlagsAndExptimeAndGrow) {
  Store s = make_store(std::size_t{64} << 20);  // a page for each class it passes through
  EXPECT_EQ(put(s, "k", "x", kT0, 0, 0, StoreMode::append).outcome, Outcome::not_stored);
  EXPECT_EQ(put(s, "k", "x", kT0, 0, 0, StoreMode::prepend).outcome, Outcome::not_stored);
  put(s, "k", "mid", kT0, 100, 9);
  EXPECT_EQ(put(s, "k", "<", kT0, 5, 1, StoreMode::prepend).outcome, Outcome::stored);
  EXPECT_EQ(put(s, "k", ">", kT0, 5, 1, StoreMode::append).outcome, Outcome::stored);
  GetResult g = s.get("k", kT0);
  EXPECT_EQ(g.item.value, "<mid>");
  EXPECT_EQ(g.item.flags, 9u);
  EXPECT_EQ(g.item.exptime, kT0 + 100);
  // Grow across many slab classes.
  std::string want = "<mid>";
  const std::string chunk(100, 'a');
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(put(s, "k", chunk, kT0, 0, 0, StoreMode::append).outcome, Outcome::stored);
    want += chunk;
  }
  EXPECT_EQ(value_of(s, "k", kT0), want);
  EXPECT_EQ(s.stats().curr_items.get(), 1u);
  expect_sane(s);
}

TEST(KvStore, CasRules) {
  Store s = make_store();
  EXPECT_EQ(put(s, "k", "v", kT0, 0, 0, StoreMode::cas, 1).outcome, Outcome::not_found);
  const uint64_t c1 = put(s, "k", "v1", kT0).cas;
  const uint64_t c2 = put(s, "other", "v", kT0).cas;
  EXPECT_GT(c2, c1);
  EXPECT_EQ(s.get("k", kT0).item.cas, c1);
  EXPECT_EQ(put(s, "k", "bad", kT0, 0, 0, StoreMode::cas, c1 + 100).outcome, Outcome::exists);
  EXPECT_EQ(put(s, "k", "bad", kT0, 0, 0, StoreMode::cas, 0).outcome, Outcome::exists);
  StoreResult ok = put(s, "k", "v2", kT0, 0, 0, StoreMode::cas, c1);
  EXPECT_EQ(ok.outcome, Outcome::stored);
  EXPECT_GT(ok.cas, c2);
  EXPECT_EQ(put(s, "k", "v3", kT0, 0, 0, StoreMode::cas, c1).outcome, Outcome::exists);
  EXPECT_EQ(value_of(s, "k", kT0), "v2");
  // ms C on set and replace means cas; on append it is a precondition.
  EXPECT_EQ(put(s, "k", "x", kT0, 0, 0, StoreMode::set, c1).outcome, Outcome::exists);
  EXPECT_EQ(put(s, "k", "x", kT0, 0, 0, StoreMode::append, c1).outcome, Outcome::exists);
  EXPECT_EQ(put(s, "k", "!", kT0, 0, 0, StoreMode::append, ok.cas).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, "k", kT0), "v2!");
  EXPECT_EQ(s.stats().cas_misses.get(), 1u);
  EXPECT_EQ(s.stats().cas_hits.get(), 1u);
  EXPECT_EQ(s.stats().cas_badval.get(), 4u);
}

// Meta E: the client's CAS for the changed item (ms, md I, ma, mg N), and generated ones
// move past it so a later flush_all still covers it.
TEST(KvStore, ExplicitCas) {
  Store s = make_store();
  StoreRequest q;
  q.key = "k";
  q.value = "v";
  q.new_cas = 5000;
  EXPECT_EQ(s.store(q, kT0).cas, 5000u);
  EXPECT_EQ(s.get("k", kT0).item.cas, 5000u);
  EXPECT_GT(put(s, "other", "v", kT0).cas, 5000u);  // the counter moved past it
  q.mode = StoreMode::cas;
  q.cas = 5000;
  q.new_cas = 7;  // lower than generated ones: kept as given
  EXPECT_EQ(s.store(q, kT0).outcome, Outcome::stored);
  EXPECT_EQ(s.get("k", kT0).item.cas, 7u);
  DeleteRequest d;
  d.key = "k";
  d.invalidate = true;
  d.new_cas = 9000;
  EXPECT_EQ(s.remove(d, kT0), Outcome::deleted);
  EXPECT_EQ(s.get("k", kT0).item.cas, 9000u);
  ArithRequest a;
  a.key = "n";
  a.vivify = true;
  a.initial = 3;
  a.new_cas = 9100;
  EXPECT_EQ(s.arith(a, kT0).cas, 9100u);
  a.new_cas = 9200;
  const ArithResult r = s.arith(a, kT0);
  EXPECT_EQ(r.value, 4u);
  EXPECT_EQ(r.cas, 9200u);
  GetOptions g;
  g.vivify = true;
  g.new_cas = 9300;
  EXPECT_EQ(s.get("viv", kT0, g).item.cas, 9300u);
  EXPECT_EQ(s.get("viv", kT0, g).item.cas, 9300u);  // a hit changes nothing
  // A huge client CAS is kept but does not move the counter (it must not wrap).
  q.mode = StoreMode::set;
  q.cas = 0;
  q.new_cas = ~uint64_t{0};
  EXPECT_EQ(s.store(q, kT0).cas, ~uint64_t{0});
  const uint64_t next = put(s, "after", "v", kT0).cas;
  EXPECT_GT(next, 9300u);
  EXPECT_LT(next, uint64_t{1} << 62);
  // flush_all covers items with client CASes below the counter.
  s.flush_all(0, kT0 + 1);
  EXPECT_EQ(s.get("n", kT0 + 1).outcome, Outcome::flushed);
  EXPECT_EQ(s.get("viv", kT0 + 1).outcome, Outcome::flushed);
  expect_sane(s);
}

TEST(KvStore, DeleteAndTouch) {
  Store s = make_store();
  EXPECT_EQ(s.remove({.key = "k"}, kT0), Outcome::not_found);
  const uint64_t c = put(s, "k", "v", kT0, 10).cas;
  EXPECT_EQ(s.remove({.key = "k", .cas = c + 1}, kT0), Outcome::exists);
  EXPECT_EQ(s.touch("k", 100, kT0 + 5), Outcome::hit);
  EXPECT_EQ(s.get("k", kT0 + 50).outcome, Outcome::hit);  // was to expire at +10
  EXPECT_EQ(s.get("k", kT0 + 50).item.cas, c);            // touch keeps the cas
  EXPECT_EQ(s.touch("nope", 100, kT0), Outcome::not_found);
  EXPECT_EQ(s.remove({.key = "k", .cas = c}, kT0), Outcome::deleted);
  EXPECT_EQ(s.get("k", kT0).outcome, Outcome::miss);
  EXPECT_EQ(s.touch("k", -1, kT0), Outcome::not_found);
  put(s, "t", "v", kT0);
  EXPECT_EQ(s.touch("t", -1, kT0), Outcome::hit);  // negative: expire now
  EXPECT_EQ(s.get("t", kT0).outcome, Outcome::expired);
  const StoreStats& st = s.stats();
  EXPECT_EQ(st.delete_hits.get(), 1u);
  EXPECT_EQ(st.delete_misses.get(), 2u);  // the cas mismatch counts as a miss (memcached md)
  EXPECT_EQ(st.cmd_touch.get(), 4u);
  EXPECT_EQ(st.touch_hits.get(), 2u);
  EXPECT_EQ(st.touch_misses.get(), 2u);
}

TEST(KvStore, GatCountsAsTouch) {
  Store s = make_store();
  put(s, "k", "v", kT0, 10);
  GetOptions gat{.touch = true, .exptime = 1000, .counts_as_touch = true};
  GetResult g = s.get("k", kT0 + 1, gat);
  EXPECT_EQ(g.outcome, Outcome::hit);
  EXPECT_EQ(g.item.exptime, kT0 + 1 + 1000);
  EXPECT_EQ(s.get("k", kT0 + 500).outcome, Outcome::hit);
  EXPECT_EQ(s.get("x", kT0, gat).outcome, Outcome::miss);
  EXPECT_EQ(s.stats().touch_hits.get(), 1u);
  EXPECT_EQ(s.stats().touch_misses.get(), 1u);
  EXPECT_EQ(s.stats().cmd_get.get(), 1u);
}

ArithResult arith(Store& s, std::string_view k, bool incr, uint64_t delta, uint32_t now) {
  return s.arith({.key = k, .incr = incr, .delta = delta}, now);
}

TEST(KvStore, IncrDecr) {
  Store s = make_store();
  EXPECT_EQ(arith(s, "n", true, 1, kT0).outcome, Outcome::not_found);
  put(s, "n", "99", kT0, 0, 5);
  ArithResult r = arith(s, "n", true, 1, kT0);
  EXPECT_EQ(r.outcome, Outcome::hit);
  EXPECT_EQ(r.value, 100u);
  EXPECT_EQ(value_of(s, "n", kT0), "100");  // grew by a digit
  EXPECT_EQ(s.get("n", kT0).item.flags, 5u);
  EXPECT_EQ(s.get("n", kT0).item.cas, r.cas);
  r = arith(s, "n", false, 91, kT0);
  EXPECT_EQ(r.value, 9u);
  EXPECT_EQ(value_of(s, "n", kT0), "9  ");  // memcached pads in place
  EXPECT_EQ(arith(s, "n", true, 1, kT0).value, 10u);
  EXPECT_EQ(arith(s, "n", false, 1000, kT0).value, 0u);  // floors at 0
  put(s, "w", "18446744073709551615", kT0);
  EXPECT_EQ(arith(s, "w", true, 2, kT0).value, 1u);  // wraps at 2^64
  std::string one(20, ' ');
  one[0] = '1';
  EXPECT_EQ(value_of(s, "w", kT0), one);
  put(s, "big", "18446744073709551616", kT0);  // 2^64: not a number
  EXPECT_EQ(arith(s, "big", true, 1, kT0).outcome, Outcome::non_numeric);
  for (const char* bad : {"", "abc", "12abc", "-5", " ", "1.5"}) {
    put(s, "x", bad, kT0);
    EXPECT_EQ(arith(s, "x", true, 1, kT0).outcome, Outcome::non_numeric) << bad;
  }
  put(s, "x", " 7 trailing", kT0);  // strtoull: blanks before, a blank after the digits
  EXPECT_EQ(arith(s, "x", true, 1, kT0).value, 8u);
  EXPECT_EQ(s.stats().incr_hits.get(), 4u);
  EXPECT_EQ(s.stats().decr_hits.get(), 2u);
  EXPECT_EQ(s.stats().incr_misses.get(), 1u);
  expect_sane(s);
}

TEST(KvStore, MetaArithmetic) {
  Store s = make_store();
  ArithResult r = s.arith({.key = "c", .vivify = true, .vivify_exptime = 60, .initial = 5}, kT0);
  EXPECT_EQ(r.outcome, Outcome::hit);
  EXPECT_EQ(r.value, 5u);
  EXPECT_EQ(r.exptime, kT0 + 60);
  EXPECT_EQ(value_of(s, "c", kT0), "5");
  EXPECT_EQ(s.stats().incr_misses.get(), 0u);  // a vivified miss is not counted (memcached ma)
  EXPECT_EQ(s.arith({.key = "c", .delta = 3, .cas = r.cas + 1}, kT0).outcome, Outcome::exists);
  r = s.arith({.key = "c", .delta = 3, .cas = r.cas, .update_ttl = true, .exptime = 0}, kT0);
  EXPECT_EQ(r.value, 8u);
  EXPECT_EQ(r.exptime, 0u);
}

TEST(KvStore, FlushAllNow) {
  Store s = make_store();
  put(s, "a", "1", kT0);
  put(s, "b", "2", kT0 - 100);
  s.flush_all(0, kT0);
  put(s, "c", "3", kT0);  // same second, after the flush: survives (told apart by cas)
  EXPECT_EQ(s.get("a", kT0).outcome, Outcome::flushed);
  EXPECT_EQ(s.get("b", kT0 + 1).outcome, Outcome::flushed);
  EXPECT_EQ(s.get("c", kT0).outcome, Outcome::hit);
  EXPECT_EQ(s.get("c", kT0 + 10).outcome, Outcome::hit);
  EXPECT_EQ(s.stats().get_flushed.get(), 2u);
  EXPECT_EQ(s.stats().curr_items.get(), 1u);
}

TEST(KvStore, FlushAllWithDelay) {
  Store s = make_store();
  put(s, "a", "1", kT0);
  s.flush_all(10, kT0);
  put(s, "b", "2", kT0 + 5);
  // As memcached: a delayed flush takes effect one second before its time.
  EXPECT_EQ(s.get("a", kT0 + 8).outcome, Outcome::hit);
  EXPECT_EQ(s.get("b", kT0 + 8).outcome, Outcome::hit);
  EXPECT_EQ(s.get("a", kT0 + 9).outcome, Outcome::flushed);
  EXPECT_EQ(s.get("b", kT0 + 9).outcome, Outcome::flushed);
  put(s, "c", "3", kT0 + 10);
  EXPECT_EQ(s.get("c", kT0 + 11).outcome, Outcome::hit);
  // absolute delay
  put(s, "d", "4", kT0 + 20);
  s.flush_all(int64_t{kT0} + 30, kT0 + 20);
  EXPECT_EQ(s.get("d", kT0 + 28).outcome, Outcome::hit);
  EXPECT_EQ(s.get("d", kT0 + 29).outcome, Outcome::flushed);
  // Stored in the second the flush took effect, after it did: kept (memcached loses it).
  put(s, "e", "5", kT0 + 40);
  s.flush_all(2, kT0 + 40);
  put(s, "f", "6", kT0 + 40);
  EXPECT_EQ(s.get("f", kT0 + 40).outcome, Outcome::hit);  // pending until kT0 + 41
  EXPECT_EQ(s.get("e", kT0 + 41).outcome, Outcome::flushed);
  put(s, "g", "7", kT0 + 41);
  EXPECT_EQ(s.get("g", kT0 + 41).outcome, Outcome::hit);
  EXPECT_EQ(s.get("f", kT0 + 41).outcome, Outcome::flushed);
  // A flush time in the past is a flush now.
  s.flush_all(int64_t{kT0}, kT0 + 50);
  EXPECT_EQ(s.get("g", kT0 + 50).outcome, Outcome::flushed);
}

TEST(KvStore, DueFlushIsSeenBySave) {
  Store s = make_store();
  put(s, "a", "1", kT0);
  s.flush_all(5, kT0);
  EXPECT_EQ(s.get("a", kT0 + 3).outcome, Outcome::hit);
  expect_sane(s);
  char tmpl[] = "/tmp/cw-kvstore-flush-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  unlink(tmpl);
  Result<SaveSummary> r = s.save(fd, kT0 + 4);  // due, no op has settled it yet
  close(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().items, 0u);
}

TEST(KvStore, FetchedAndLastAccess) {
  Store s = make_store();
  put(s, "k", "v", kT0);
  GetResult g = s.get("k", kT0 + 3);
  EXPECT_FALSE(g.item.fetched);
  EXPECT_EQ(g.item.last_access, kT0);
  g = s.get("k", kT0 + 7);
  EXPECT_TRUE(g.item.fetched);
  EXPECT_EQ(g.item.last_access, kT0 + 3);
}

TEST(KvStore, MetaInvalidateStaleWin) {
  Store s = make_store();
  const uint64_t c = put(s, "k", "v", kT0, 100).cas;
  GetResult g = s.get("k", kT0);
  EXPECT_FALSE(g.item.stale || g.item.win || g.item.token_sent);
  EXPECT_EQ(s.remove({.key = "k", .invalidate = true, .update_ttl = true, .exptime = 30}, kT0),
            Outcome::deleted);
  g = s.get("k", kT0);
  ASSERT_EQ(g.outcome, Outcome::hit);  // still served, stale
  EXPECT_TRUE(g.item.stale);
  EXPECT_TRUE(g.item.win);  // first reader wins the recache
  EXPECT_FALSE(g.item.token_sent);
  EXPECT_EQ(g.item.exptime, kT0 + 30);
  EXPECT_GT(g.item.cas, c);
  const uint64_t stale_cas = g.item.cas;
  g = s.get("k", kT0);
  EXPECT_TRUE(g.item.stale);
  EXPECT_FALSE(g.item.win);
  EXPECT_TRUE(g.item.token_sent);  // Z: someone else is on it
  // ms I with an older cas: stored but still stale, TTL and token kept.
  StoreRequest late{.key = "k", .value = "late", .cas = c, .invalidate = true};
  EXPECT_EQ(s.store(late, kT0).outcome, Outcome::stored);
  g = s.get("k", kT0);
  EXPECT_EQ(g.item.value, "late");
  EXPECT_TRUE(g.item.stale);
  EXPECT_TRUE(g.item.token_sent);
  EXPECT_EQ(g.item.exptime, kT0 + 30);
  // Without I an old cas is refused; the winner's store with the current cas clears it.
  EXPECT_EQ(put(s, "k", "x", kT0, 0, 0, StoreMode::set, c).outcome, Outcome::exists);
  const uint64_t cur = s.get("k", kT0).item.cas;
  EXPECT_NE(cur, stale_cas);
  EXPECT_EQ(put(s, "k", "fresh", kT0, 100, 0, StoreMode::set, cur).outcome, Outcome::stored);
  g = s.get("k", kT0);
  EXPECT_FALSE(g.item.stale || g.item.win || g.item.token_sent);
}

TEST(KvStore, MetaVivifyAndRecache) {
  Store s = make_store();
  GetOptions viv{.vivify = true, .vivify_exptime = 30};
  GetResult g = s.get("k", kT0, viv);
  ASSERT_EQ(g.outcome, Outcome::hit);
  EXPECT_TRUE(g.item.win);
  EXPECT_TRUE(g.item.value.empty());
  EXPECT_EQ(g.item.exptime, kT0 + 30);
  g = s.get("k", kT0, viv);
  EXPECT_FALSE(g.item.win);
  EXPECT_TRUE(g.item.token_sent);
  EXPECT_EQ(s.stats().get_misses.get(), 0u);  // memcached counts the vivified miss as a hit
  EXPECT_EQ(s.stats().get_hits.get(), 2u);
  // R: win once the remaining TTL drops below the threshold.
  put(s, "r", "v", kT0, 100);
  GetOptions rc{.recache = true, .recache_ttl = 30};
  EXPECT_FALSE(s.get("r", kT0 + 60, rc).item.win);  // 40 s left
  EXPECT_TRUE(s.get("r", kT0 + 80, rc).item.win);   // 20 s left
  g = s.get("r", kT0 + 81, rc);
  EXPECT_FALSE(g.item.win);
  EXPECT_TRUE(g.item.token_sent);
  // ms N in append mode creates the item.
  StoreRequest ap{
      .mode = StoreMode::append, .key = "ap", .value = "x", .vivify = true, .vivify_exptime = 9};
  EXPECT_EQ(s.store(ap, kT0).outcome, Outcome::stored);
  EXPECT_EQ(s.get("ap", kT0).item.exptime, kT0 + 9);
}

TEST(KvStore, TooLargeAndFailedSetDropsOld) {
  Store s = make_store(std::size_t{4} << 20, 4096);
  EXPECT_EQ(s.item_size_max(), 4096u);
  const std::string fits(4096 - kItemHeaderBytes - 1, 'v');
  EXPECT_EQ(put(s, "k", fits, kT0).outcome, Outcome::stored);
  EXPECT_EQ(s.chunk_bytes(1, fits.size()), 4096u);
  EXPECT_EQ(put(s, "k", fits + "v", kT0).outcome, Outcome::too_large);
  EXPECT_EQ(s.get("k", kT0).outcome, Outcome::miss);  // as memcached: no stale value left
  put(s, "a", "abc", kT0);
  EXPECT_EQ(put(s, "a", fits, kT0, 0, 0, StoreMode::append).outcome, Outcome::too_large);
  EXPECT_EQ(value_of(s, "a", kT0), "abc");  // append failure keeps the item
}

TEST(KvStore, LruEvictionOrder) {
  // 8 pages of 1 KiB; items of one class fill them, then the least recent goes.
  Store s = make_store(8 * 1024, 1024);
  const std::string v(100, 'v');
  const std::size_t chunk = s.chunk_bytes(4, v.size());
  const std::size_t capacity = 8 * (1024 / chunk);
  auto key = [](std::size_t i) {  // "k000".."k999"
    std::string k = "k000";
    for (int d = 3; d > 0; --d, i /= 10)
      k[static_cast<std::size_t>(d)] = static_cast<char>('0' + i % 10);
    return k;
  };
  for (std::size_t i = 0; i < capacity; ++i)
    ASSERT_EQ(put(s, key(i), v, kT0).outcome, Outcome::stored);
  EXPECT_EQ(s.stats().evictions.get(), 0u);
  EXPECT_EQ(s.get(key(0), kT0).outcome, Outcome::hit);  // k000 becomes most recent
  std::vector<std::string> lru = s.lru_keys_for_test(4, v.size());
  ASSERT_EQ(lru.size(), capacity);
  EXPECT_EQ(lru.front(), key(0));
  EXPECT_EQ(lru.back(), key(1));
  EXPECT_EQ(put(s, "new1", v, kT0).outcome, Outcome::stored);
  EXPECT_EQ(put(s, "new2", v, kT0).outcome, Outcome::stored);
  EXPECT_EQ(s.stats().evictions.get(), 2u);
  EXPECT_EQ(s.stats().evicted_unfetched.get(), 2u);
  EXPECT_EQ(s.get(key(1), kT0).outcome, Outcome::miss);
  EXPECT_EQ(s.get(key(2), kT0).outcome, Outcome::miss);
  EXPECT_EQ(s.get(key(0), kT0).outcome, Outcome::hit);
  EXPECT_EQ(s.get(key(3), kT0).outcome, Outcome::hit);
  lru = s.lru_keys_for_test(4, v.size());
  EXPECT_EQ(lru[0], key(3));
  EXPECT_EQ(lru[1], key(0));
  EXPECT_EQ(lru[2], "new2");
  EXPECT_EQ(lru.back(), key(4));
  // An expired tail is reclaimed, not counted as an eviction.
  EXPECT_EQ(s.touch(key(4), 1, kT0), Outcome::hit);  // to the head; let it age to the tail
  for (std::size_t i = 5; i < capacity; ++i) s.get(key(i), kT0);
  s.get(key(3), kT0);
  s.get(key(0), kT0);
  s.get("new1", kT0);
  s.get("new2", kT0);
  EXPECT_EQ(s.lru_keys_for_test(4, v.size()).back(), key(4));
  const uint64_t ev = s.stats().evictions.get();
  EXPECT_EQ(put(s, "new3", v, kT0 + 5).outcome, Outcome::stored);
  EXPECT_EQ(s.stats().evictions.get(), ev);
  EXPECT_EQ(s.stats().curr_items.get(), capacity);
  expect_sane(s);
}

TEST(KvStore, LruBumpIsRateLimited) {
  Store s = make_store(std::size_t{8} << 20, 1 << 20, 60);
  put(s, "a", "1", kT0);
  put(s, "b", "2", kT0);
  EXPECT_EQ(s.get("a", kT0 + 59).item.last_access, kT0);
  EXPECT_EQ(s.lru_keys_for_test(1, 1), (std::vector<std::string>{"b", "a"}));  // not moved
  EXPECT_EQ(s.get("a", kT0 + 60).item.last_access, kT0);
  EXPECT_EQ(s.lru_keys_for_test(1, 1), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.get("a", kT0 + 61).item.last_access, kT0 + 60);
  EXPECT_TRUE(s.get("a", kT0 + 61).item.fetched);
}

TEST(KvStore, ReplacingTheLruTailInAFullClass) {
  Store s = make_store(1024, 1024);  // one page
  const std::string v(100, 'v');
  const std::size_t cap = 1024 / s.chunk_bytes(1, v.size());
  for (std::size_t i = 0; i < cap; ++i) put(s, std::string(1, static_cast<char>('a' + i)), v, kT0);
  // "a" is the tail: appending to it must not evict it mid-copy.
  EXPECT_EQ(put(s, "a", "", kT0, 0, 0, StoreMode::append).outcome, Outcome::stored);
  EXPECT_EQ(value_of(s, "a", kT0), v);
  EXPECT_EQ(s.stats().evictions.get(), 1u);  // "b", the next least recent
  EXPECT_EQ(s.get("b", kT0).outcome, Outcome::miss);
  EXPECT_EQ(put(s, "b", "w", kT0).outcome, Outcome::no_memory);  // its class has no page
  expect_sane(s);
}

TEST(KvStore, NoMemoryWhenAClassHasNoPage) {
  Store s = make_store(1024, 1024);
  put(s, "a", "small", kT0);  // takes the only page
  EXPECT_EQ(put(s, "b", std::string(500, 'x'), kT0).outcome, Outcome::no_memory);
  EXPECT_EQ(s.stats().outofmemory.get(), 1u);
  EXPECT_EQ(value_of(s, "a", kT0), "small");
}

TEST(KvStore, ExpireSomeIsBoundedAndReclaims) {
  Store s = make_store(std::size_t{1} << 20, 64 * 1024);
  for (int i = 0; i < 1000; ++i) put(s, std::to_string(i), "v", kT0, i % 2 ? 10 : 0);
  EXPECT_EQ(s.expire_some(kT0 + 5, 100000), 0u);
  const uint32_t first = s.expire_some(kT0 + 10, 100);
  EXPECT_LE(first, 100u);
  EXPECT_GT(first, 0u);
  uint32_t total = first;
  for (int i = 0; i < 100 && total < 500; ++i) total += s.expire_some(kT0 + 10, 1000);
  EXPECT_EQ(total, 500u);
  EXPECT_EQ(s.stats().curr_items.get(), 500u);
  EXPECT_EQ(s.stats().expired_unfetched.get(), 500u);
  s.flush_all(0, kT0 + 20);
  total = 0;
  for (int i = 0; i < 100 && total < 500; ++i) total += s.expire_some(kT0 + 20, 1000);
  EXPECT_EQ(total, 500u);
  EXPECT_EQ(s.stats().curr_items.get(), 0u);
  expect_sane(s);
}

TEST(KvStore, ViewsSurviveAMultiGet) {
  Store s = make_store();
  put(s, "a", "1", kT0);
  put(s, "b", "2", kT0);
  GetResult a = s.get("a", kT0), b = s.get("b", kT0), a2 = s.get("a", kT0);
  EXPECT_EQ(a.item.value, "1");
  EXPECT_EQ(b.item.value, "2");
  EXPECT_EQ(a2.item.value, "1");
}

TEST(KvStore, KeyHashSpreadsOverBuckets) {
  EXPECT_NE(key_hash("a"), key_hash("b"));
  EXPECT_EQ(key_hash("same"), key_hash("same"));
  Store s = make_store();
  EXPECT_EQ(s.hash_buckets(), std::size_t{1} << 16);  // 8 MiB / 192 rounded up
}

// Bytes per item for the benchmark shape (32-byte key, 100-byte value).
TEST(KvStore, MemoryPerItem) {
  Store s = make_store(std::size_t{64} << 20);
  const std::size_t chunk = s.chunk_bytes(32, 100);
  EXPECT_EQ(chunk, 176u);  // 40 header + 132 data, rounded to the 176-byte class
  const double index = 4.0 * static_cast<double>(s.hash_buckets()) /
                       (static_cast<double>(64 << 20) / static_cast<double>(chunk));
  std::printf("item chunk %zu B, index %.1f B/item, overhead %.1f B over 132 B of data\n", chunk,
              index, static_cast<double>(chunk) + index - 132.0);
  EXPECT_LT(static_cast<double>(chunk) + index, 192.0);  // memcached 1.6: a 192-byte chunk + 8 B
}

}  // namespace
}  // namespace cw::kv
