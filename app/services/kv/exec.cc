// The kv commands against one partition. Each function maps the store's outcome to
// memcached 1.6's reply: text replies for the text commands, meta codes and return flags
// (in the order the request gave them) for the meta ones.
#include "app/services/kv/exec.hh"

#include <algorithm>
#include <array>
#include <cstdio>

namespace cw::kv {

namespace {

using proto::Cmd;
using proto::MetaCode;
using proto::MetaRet;

constexpr std::string_view kNonNumeric = "cannot increment or decrement non-numeric value";
constexpr std::string_view kTooLarge = "object too large for cache";
constexpr std::string_view kNoMemory = "out of memory storing object";
constexpr std::string_view kBadFormat = "bad command line format";

// An encoder's 0 means "did not fit".
size_t fit(size_t n) {
  return n == 0 ? kOverflow : n;
}

int64_t ttl_left(uint32_t exptime, uint32_t now) {
  return exptime == 0 ? -1 : int64_t(exptime) - int64_t(now);
}

// Meta return flags a request asked for, in its order, from what the command knows.
struct MetaFacts {
  const ItemView* item = nullptr;  // mg, and ma's item facts
  uint64_t cas = 0;                // ms, ma: the item's CAS after the command
  bool has_cas = false;
  int64_t ttl = 0;  // ma: t
  bool has_ttl = false;
};

size_t meta_rets(const proto::Request& r, const MetaFacts& f, uint32_t now,
                 std::span<MetaRet> out) {
  size_t n = 0;
  const proto::MetaFlags& m = r.meta;
  for (uint8_t i = 0; i < m.count && n < out.size(); ++i) {
    const char c = m.order[i];
    switch (c) {
      case 'O':
        out[n++] = MetaRet::str('O', m.opaque);
        break;
      case 'k':  // a base64 key says so right after it, wherever b was (memcached 1.6.18)
        out[n++] = MetaRet::str('k', r.key);
        if (m.has('b') && n < out.size()) out[n++] = MetaRet::bare('b');
        break;
      case 'c':
        if (f.item)
          out[n++] = MetaRet::num('c', f.item->cas);
        else if (f.has_cas)
          out[n++] = MetaRet::num('c', f.cas);
        break;
      case 'f':
        if (f.item) out[n++] = MetaRet::num('f', f.item->flags);
        break;
      case 'h':
        if (f.item) out[n++] = MetaRet::num('h', f.item->fetched ? 1 : 0);
        break;
      case 'l':
        if (f.item) out[n++] = MetaRet::num('l', now - std::min(now, f.item->last_access));
        break;
      case 's':
        if (f.item) out[n++] = MetaRet::num('s', f.item->value.size());
        break;
      case 't':
        if (f.item)
          out[n++] = MetaRet::snum('t', ttl_left(f.item->exptime, now));
        else if (f.has_ttl)
          out[n++] = MetaRet::snum('t', f.ttl);
        break;
      default:
        break;  // input-only flags
    }
  }
  // memcached 1.6.18's order (replayed against it, tests/integration/test_kv.py): Z (a
  // token went out before), X (stale), W (this caller won).
  if (f.item && n + 3 <= out.size()) {
    if (f.item->token_sent && !f.item->win) out[n++] = MetaRet::bare('Z');
    if (f.item->stale) out[n++] = MetaRet::bare('X');
    if (f.item->win) out[n++] = MetaRet::bare('W');
  }
  return n;
}

// Flags carried on a failure or miss: O, k, b (memcached echoes these on EN/NF/NS/EX).
size_t meta_echo(const proto::Request& r, uint32_t now, std::span<MetaRet> out) {
  return meta_rets(r, MetaFacts{}, now, out);
}

size_t meta_code(std::span<char> out, MetaCode code, const proto::Request& r, uint32_t now) {
  std::array<MetaRet, proto::kMaxMetaFlags + 3> rets;
  return fit(proto::encode_meta(out, code, {rets.data(), meta_echo(r, now, rets)}));
}

size_t text(std::span<char> out, const proto::Request& r, proto::Reply reply) {
  if (r.noreply) return 0;
  return fit(proto::encode(out, reply));
}

size_t server_error(std::span<char> out, bool quiet, std::string_view msg) {
  if (quiet) return 0;
  return fit(proto::encode_server_error(out, msg));
}

size_t store_failure(std::span<char> out, bool quiet, Outcome o) {
  if (o == Outcome::too_large) return server_error(out, quiet, kTooLarge);
  if (o == Outcome::no_memory) return server_error(out, quiet, kNoMemory);
  if (quiet) return 0;
  return fit(proto::encode_client_error(out, kBadFormat));  // bad_key: the codec refuses first
}

// ms's M token (memcached takes either case): E add, A append, P prepend, R replace, else set.
StoreMode meta_mode(char m) {
  switch (m | 0x20) {
    case 'e':
      return StoreMode::add;
    case 'a':
      return StoreMode::append;
    case 'p':
      return StoreMode::prepend;
    case 'r':
      return StoreMode::replace;
    default:
      return StoreMode::set;
  }
}

size_t text_store(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  // The storage commands and StoreMode name the same modes in the same order.
  static_assert(size_t(Cmd::cas) - size_t(Cmd::set) == size_t(StoreMode::cas));
  StoreRequest q;
  q.mode = StoreMode(size_t(r.cmd) - size_t(Cmd::set));
  q.cas = r.cmd == Cmd::cas ? r.cas : 0;
  q.key = r.key;
  q.value = r.data;
  q.flags = r.client_flags;
  q.exptime = r.exptime;
  const StoreResult res = s.store(q, now);
  switch (res.outcome) {
    case Outcome::stored:
      return text(out, r, proto::Reply::stored);
    case Outcome::not_stored:
      return text(out, r, proto::Reply::not_stored);
    case Outcome::exists:
      return text(out, r, proto::Reply::exists);
    case Outcome::not_found:
      return text(out, r, proto::Reply::not_found);
    default:
      return store_failure(out, r.noreply, res.outcome);
  }
}

size_t text_arith(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  ArithRequest q;
  q.key = r.key;
  q.incr = r.cmd == Cmd::incr;
  q.delta = r.delta;
  const ArithResult res = s.arith(q, now);
  if (res.outcome == Outcome::hit) return r.noreply ? 0 : fit(proto::encode_number(out, res.value));
  if (res.outcome == Outcome::not_found) return text(out, r, proto::Reply::not_found);
  if (res.outcome == Outcome::non_numeric)
    return r.noreply ? 0 : fit(proto::encode_client_error(out, kNonNumeric));
  return store_failure(out, r.noreply, res.outcome);
}

size_t meta_get(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  const proto::MetaFlags& m = r.meta;
  GetOptions o;
  o.touch = m.has('T');
  o.exptime = m.ttl;
  o.vivify = m.has('N');
  o.vivify_exptime = m.vivify_ttl;
  o.recache = m.has('R');
  o.recache_ttl = m.recache_ttl;
  o.new_cas = m.has('E') ? m.explicit_cas : 0;
  const GetResult g = s.get(r.item_key(), now, o);
  if (g.outcome != Outcome::hit) return r.noreply ? 0 : meta_code(out, MetaCode::en, r, now);
  std::array<MetaRet, proto::kMaxMetaFlags + 3> rets;
  MetaFacts f;
  f.item = &g.item;
  const size_t n = meta_rets(r, f, now, rets);
  if (m.has('v')) return fit(proto::encode_meta_value(out, g.item.value, {rets.data(), n}));
  return fit(proto::encode_meta(out, MetaCode::hd, {rets.data(), n}));
}

size_t meta_set(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  const proto::MetaFlags& m = r.meta;
  StoreRequest q;
  q.mode = meta_mode(m.mode);
  q.key = r.item_key();
  q.value = r.data;
  q.flags = m.client_flags;
  q.exptime = m.has('T') ? m.ttl : 0;
  q.cas = m.has('C') ? m.compare_cas : 0;
  q.invalidate = m.has('I');
  q.vivify = m.has('N');
  q.vivify_exptime = m.vivify_ttl;
  q.new_cas = m.has('E') ? m.explicit_cas : 0;
  const StoreResult res = s.store(q, now);
  MetaFacts f;
  f.cas = res.cas;
  f.has_cas = res.outcome == Outcome::stored;
  std::array<MetaRet, proto::kMaxMetaFlags + 3> rets;
  const size_t n = meta_rets(r, f, now, rets);
  switch (res.outcome) {
    case Outcome::stored:
      return r.noreply ? 0 : fit(proto::encode_meta(out, MetaCode::hd, {rets.data(), n}));
    case Outcome::not_stored:
      return fit(proto::encode_meta(out, MetaCode::ns, {rets.data(), n}));
    case Outcome::exists:
      return fit(proto::encode_meta(out, MetaCode::ex, {rets.data(), n}));
    case Outcome::not_found:
      return fit(proto::encode_meta(out, MetaCode::nf, {rets.data(), n}));
    default:
      return store_failure(out, false, res.outcome);
  }
}

size_t meta_delete(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  const proto::MetaFlags& m = r.meta;
  DeleteRequest q;
  q.key = r.item_key();
  q.cas = m.has('C') ? m.compare_cas : 0;
  q.invalidate = m.has('I');
  q.update_ttl = m.has('T');
  q.exptime = m.ttl;
  q.new_cas = m.has('E') ? m.explicit_cas : 0;
  const Outcome o = s.remove(q, now);
  if (o == Outcome::deleted) return r.noreply ? 0 : meta_code(out, MetaCode::hd, r, now);
  // q hides HD only: memcached 1.6.18 answers NF to `md <key> q`.
  if (o == Outcome::not_found) return meta_code(out, MetaCode::nf, r, now);
  if (o == Outcome::exists) return meta_code(out, MetaCode::ex, r, now);
  return store_failure(out, false, o);
}

size_t meta_arith(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  const proto::MetaFlags& m = r.meta;
  ArithRequest q;
  q.key = r.item_key();
  q.incr = !(m.mode == 'D' || m.mode == 'd' || m.mode == '-');
  q.delta = m.has('D') ? m.delta : 1;
  q.cas = m.has('C') ? m.compare_cas : 0;
  q.vivify = m.has('N');
  q.vivify_exptime = m.vivify_ttl;
  q.initial = m.initial;
  q.update_ttl = m.has('T');
  q.exptime = m.ttl;
  q.new_cas = m.has('E') ? m.explicit_cas : 0;
  const ArithResult res = s.arith(q, now);
  switch (res.outcome) {
    case Outcome::hit: {
      if (r.noreply) return 0;
      MetaFacts f;
      f.cas = res.cas;
      f.has_cas = true;
      f.ttl = ttl_left(res.exptime, now);
      f.has_ttl = true;
      std::array<MetaRet, proto::kMaxMetaFlags + 3> rets;
      const size_t n = meta_rets(r, f, now, rets);
      if (!m.has('v')) return fit(proto::encode_meta(out, MetaCode::hd, {rets.data(), n}));
      char num[24];
      const int len = std::snprintf(num, sizeof num, "%llu", (unsigned long long)res.value);
      return fit(proto::encode_meta_value(out, {num, size_t(len)}, {rets.data(), n}));
    }
    case Outcome::not_found:  // answered with q too, as memcached 1.6.18 does
      return meta_code(out, MetaCode::nf, r, now);
    case Outcome::exists:
      return meta_code(out, MetaCode::ex, r, now);
    case Outcome::non_numeric:
      return fit(proto::encode_client_error(out, kNonNumeric));
    default:
      return store_failure(out, false, res.outcome);
  }
}

// me <key>: memcached's debug line, from a plain read of the item (counted as a get).
size_t meta_debug(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  const GetResult g = s.get(r.item_key(), now);
  if (g.outcome != Outcome::hit) return fit(proto::encode(out, proto::Reply::en));
  char line[160];
  const int n = std::snprintf(line, sizeof line, "exp=%lld la=%u cas=%llu fetch=%s cls=1 size=%zu",
                              (long long)ttl_left(g.item.exptime, now),
                              now - std::min(now, g.item.last_access),
                              (unsigned long long)g.item.cas, g.item.fetched ? "yes" : "no",
                              kItemHeaderBytes + g.item.key.size() + g.item.value.size());
  return fit(proto::encode_meta_debug(out, r.key, {line, size_t(n)}));
}

}  // namespace

bool is_keyed(Cmd c) {
  // Cmd lists set..touch and mg..me together (protocol.hh); mn is the one meta without a key.
  return (c >= Cmd::set && c <= Cmd::touch) || (c >= Cmd::mg && c <= Cmd::me && c != Cmd::mn);
}

bool is_get(Cmd c) {
  return c == Cmd::get || c == Cmd::gets || c == Cmd::gat || c == Cmd::gats;
}

size_t execute_keyed(Store& s, const proto::Request& r, uint32_t now, std::span<char> out) {
  switch (r.cmd) {
    case Cmd::set:
    case Cmd::add:
    case Cmd::replace:
    case Cmd::append:
    case Cmd::prepend:
    case Cmd::cas:
      return text_store(s, r, now, out);
    case Cmd::del: {
      DeleteRequest q;
      q.key = r.key;
      const Outcome o = s.remove(q, now);
      return text(out, r, o == Outcome::deleted ? proto::Reply::deleted : proto::Reply::not_found);
    }
    case Cmd::incr:
    case Cmd::decr:
      return text_arith(s, r, now, out);
    case Cmd::touch:
      return text(out, r,
                  s.touch(r.key, r.exptime, now) == Outcome::hit ? proto::Reply::touched
                                                                 : proto::Reply::not_found);
    case Cmd::mg:
      return meta_get(s, r, now, out);
    case Cmd::ms:
      return meta_set(s, r, now, out);
    case Cmd::md:
      return meta_delete(s, r, now, out);
    case Cmd::ma:
      return meta_arith(s, r, now, out);
    case Cmd::me:
      return meta_debug(s, r, now, out);
    default:
      return fit(proto::encode(out, proto::Reply::error));  // not keyed: a caller bug
  }
}

size_t execute_get_key(Store& s, Cmd cmd, std::string_view key, int64_t exptime, uint32_t now,
                       std::span<char> out) {
  GetOptions o;
  if (cmd == Cmd::gat || cmd == Cmd::gats) {
    o.touch = true;
    o.exptime = exptime;
    o.counts_as_touch = true;
  }
  const GetResult g = s.get(key, now, o);
  if (g.outcome != Outcome::hit) return 0;
  const bool with_cas = cmd == Cmd::gets || cmd == Cmd::gats;
  return fit(proto::encode_value(out, g.item.key, g.item.flags, g.item.value,
                                 with_cas ? &g.item.cas : nullptr));
}

size_t encode_get_key(std::span<char> out, Cmd cmd, int64_t exptime, std::string_view key) {
  static constexpr std::string_view kNames[] = {"get", "gets", "gat", "gats"};
  const std::string_view name = kNames[size_t(cmd) - size_t(Cmd::get)];
  int n;
  if (cmd == Cmd::gat || cmd == Cmd::gats)
    n = std::snprintf(out.data(), out.size(), "%.*s %lld %.*s\r\n", int(name.size()), name.data(),
                      (long long)exptime, int(key.size()), key.data());
  else
    n = std::snprintf(out.data(), out.size(), "%.*s %.*s\r\n", int(name.size()), name.data(),
                      int(key.size()), key.data());
  return n > 0 && size_t(n) < out.size() ? size_t(n) : 0;
}

}  // namespace cw::kv
