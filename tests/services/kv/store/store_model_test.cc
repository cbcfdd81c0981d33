// Randomized operations against a plain std::unordered_map model (no eviction: the store is
// large enough), with a clock that moves forward. Every reply and every read must agree.
#include <gtest/gtest.h>

#include <charconv>
#include <random>
#include <string>
#include <unordered_map>

#include "app/services/kv/store/store.hh"

namespace cw::kv {
namespace {

struct Entry {
  std::string value;
  uint32_t flags = 0;
  uint32_t exptime = 0;
  uint64_t cas = 0;
};

class Model {
 public:
  uint32_t abs_time(int64_t exptime, uint32_t now) const {
    if (exptime == 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > kMaxRelativeExptime) return exptime <= now ? 1 : static_cast<uint32_t>(exptime);
    return static_cast<uint32_t>(now + exptime);
  }
  Entry* find(const std::string& k, uint32_t now) {
    auto it = m.find(k);
    if (it == m.end()) return nullptr;
    if (it->second.exptime != 0 && it->second.exptime <= now) {
      m.erase(it);
      return nullptr;
    }
    return &it->second;
  }
  std::unordered_map<std::string, Entry> m;
};

// Values here are digits, letters, spaces: memcached reads the leading digits up to a blank.
bool parse_num(std::string_view v, uint64_t* out) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && (p == v.data() + v.size() || *p == ' ');
}

TEST(KvStoreModel, RandomOpsAgreeWithAMap) {
  StoreConfig cfg;
  cfg.memory_limit = std::size_t{32} << 20;
  cfg.item_size_max = 64 * 1024;
  Result<Store> made = Store::create(cfg);
  ASSERT_TRUE(made.ok());
  Store& s = made.value();
  Model model;
  std::mt19937_64 rng(12345);
  auto pick = [&](uint64_t n) { return rng() % n; };
  uint32_t now = 1'700'000'000;
  const char* letters = "abcdefghij";

  for (int step = 0; step < 60000; ++step) {
    now += static_cast<uint32_t>(pick(3) == 0 ? pick(4) : 0);
    const std::string key = "key" + std::to_string(pick(300));
    std::string value;
    if (pick(2)) {
      value = std::to_string(rng() >> pick(64));
    } else {
      value.assign(pick(40), letters[pick(10)]);
    }
    const int64_t choices[] = {0, 0, 0, -1, 1, 5, 30, int64_t{now} + 20, int64_t{now} - 5};
    const int64_t exptime = choices[pick(std::size(choices))];
    const uint32_t flags = static_cast<uint32_t>(rng());
    Entry* e = model.find(key, now);
    const int op = static_cast<int>(pick(12));
    SCOPED_TRACE("step " + std::to_string(step) + " op " + std::to_string(op) + " key " + key);
    switch (op) {
      case 0:
      case 1:
      case 2: {  // set / add / replace
        const StoreMode mode = op == 0   ? StoreMode::set
                               : op == 1 ? StoreMode::add
                                         : StoreMode::replace;
        StoreResult r = s.store(
            {.mode = mode, .key = key, .value = value, .flags = flags, .exptime = exptime}, now);
        const bool should = mode == StoreMode::set || (mode == StoreMode::add) == (e == nullptr);
        ASSERT_EQ(r.outcome, should ? Outcome::stored : Outcome::not_stored);
        if (should) model.m[key] = {value, flags, model.abs_time(exptime, now), r.cas};
        break;
      }
      case 3:
      case 4: {  // append / prepend
        const StoreMode mode = op == 3 ? StoreMode::append : StoreMode::prepend;
        StoreResult r = s.store({.mode = mode, .key = key, .value = value}, now);
        ASSERT_EQ(r.outcome, e ? Outcome::stored : Outcome::not_stored);
        if (e) {
          e->value = op == 3 ? e->value + value : value + e->value;
          e->cas = r.cas;
        }
        break;
      }
      case 5: {  // cas
        const uint64_t cas = e && pick(2) ? e->cas : rng() % 100000;
        StoreResult r = s.store({.mode = StoreMode::cas,
                                 .key = key,
                                 .value = value,
                                 .flags = flags,
                                 .exptime = exptime,
                                 .cas = cas},
                                now);
        if (!e) {
          ASSERT_EQ(r.outcome, Outcome::not_found);
        } else if (cas != e->cas) {
          ASSERT_EQ(r.outcome, Outcome::exists);
        } else {
          ASSERT_EQ(r.outcome, Outcome::stored);
          *e = {value, flags, model.abs_time(exptime, now), r.cas};
        }
        break;
      }
      case 6: {  // delete
        ASSERT_EQ(s.remove({.key = key}, now), e ? Outcome::deleted : Outcome::not_found);
        model.m.erase(key);
        break;
      }
      case 7:
      case 8: {  // incr / decr
        const uint64_t delta = pick(2) ? pick(100) : rng();
        ArithResult r = s.arith({.key = key, .incr = op == 7, .delta = delta}, now);
        uint64_t v;
        if (!e) {
          ASSERT_EQ(r.outcome, Outcome::not_found);
        } else if (!parse_num(e->value, &v)) {
          ASSERT_EQ(r.outcome, Outcome::non_numeric) << e->value;
        } else {
          ASSERT_EQ(r.outcome, Outcome::hit);
          v = op == 7 ? v + delta : (delta > v ? 0 : v - delta);
          ASSERT_EQ(r.value, v);
          std::string digits = std::to_string(v);
          if (digits.size() < e->value.size()) digits.resize(e->value.size(), ' ');
          e->value = digits;
          e->cas = r.cas;
        }
        break;
      }
      case 9: {  // touch
        ASSERT_EQ(s.touch(key, exptime, now), e ? Outcome::hit : Outcome::not_found);
        if (e) e->exptime = model.abs_time(exptime, now);
        break;
      }
      case 10: {
        if (pick(500) == 0) {
          s.flush_all(0, now);
          model.m.clear();
        }
        break;
      }
      default:
        break;  // the read below checks
    }
    e = model.find(key, now);
    GetResult g = s.get(key, now);
    if (e == nullptr) {
      ASSERT_NE(g.outcome, Outcome::hit);
    } else {
      ASSERT_EQ(g.outcome, Outcome::hit);
      ASSERT_EQ(g.item.value, e->value);
      ASSERT_EQ(g.item.flags, e->flags);
      ASSERT_EQ(g.item.exptime, e->exptime);
      ASSERT_EQ(g.item.cas, e->cas);
    }
    if (step % 1000 == 0) {
      Result<void> v = s.verify();
      ASSERT_TRUE(v.ok()) << v.error().message;
      if (pick(2)) s.expire_some(now, 500);
    }
  }
  // Everything the model holds is in the store, and the store holds nothing more.
  std::size_t live = 0;
  for (auto& [k, e] : model.m) {
    if (e.exptime != 0 && e.exptime <= now) continue;
    ++live;
    ASSERT_EQ(s.get(k, now).item.value, e.value);
  }
  while (s.expire_some(now, 1 << 20) != 0) {
  }
  EXPECT_EQ(s.stats().curr_items.get(), live);
  EXPECT_EQ(s.stats().evictions.get(), 0u);
  ASSERT_TRUE(s.verify().ok());
}

}  // namespace
}  // namespace cw::kv
