// etcd v3's JSON gateway: request bodies and reply parsers (etcd.hh).
#include "app/services/peer/etcd.hh"

#include <nettle/base64.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace cw::peer::etcd {
namespace {

using Json = nlohmann::json;

// One JSON object, or a discarded value (never throws: allow_exceptions is off).
Json parse_object(std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  return j.is_object() ? j : Json(Json::value_t::discarded);
}

// A gateway int64: a JSON string of digits (what etcd sends) or a JSON integer. Absent is 0.
bool int64_field(const Json& o, const char* key, int64_t& out) {
  const auto it = o.find(key);
  if (it == o.end()) {
    out = 0;
    return true;
  }
  if (it->is_number_integer()) {
    out = it->get<int64_t>();
    return true;
  }
  if (!it->is_string()) return false;
  const std::string& s = it->get_ref<const std::string&>();
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size() && !s.empty();
}

// A bytes field (base64), decoded; absent is empty.
bool bytes_field(const Json& o, const char* key, std::string& out) {
  out.clear();
  const auto it = o.find(key);
  if (it == o.end()) return true;
  return it->is_string() && base64_decode(it->get_ref<const std::string&>(), out);
}

const std::string* string_field(const Json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool valid_node_id(std::string_view s) {
  if (s.empty() || s.size() > kMaxNodeId) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string base64_encode(std::string_view in) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(in.size()), '\0');
  base64_encode_raw(out.data(), in.size(), reinterpret_cast<const uint8_t*>(in.data()));
  return out;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.assign(BASE64_DECODE_LENGTH(in.size()), '\0');
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  size_t n = 0;
  if (!base64_decode_update(&ctx, &n, reinterpret_cast<uint8_t*>(out.data()), in.size(),
                            in.data()) ||
      !base64_decode_final(&ctx)) {
    out.clear();
    return false;
  }
  out.resize(n);
  return true;
}

std::string prefix_end(std::string_view prefix) {
  std::string e(prefix);
  while (!e.empty()) {
    if (uint8_t(e.back()) != 0xff) {
      e.back() = char(uint8_t(e.back()) + 1);
      return e;
    }
    e.pop_back();
  }
  return std::string(1, '\0');
}

std::string grant_body(int64_t ttl_s) {
  return Json{{"TTL", std::to_string(ttl_s)}}.dump();
}

std::string lease_body(int64_t lease) {
  return Json{{"ID", std::to_string(lease)}}.dump();
}

std::string put_body(std::string_view key, std::string_view value, int64_t lease) {
  return Json{{"key", base64_encode(key)},
              {"value", base64_encode(value)},
              {"lease", std::to_string(lease)}}
      .dump();
}

std::string range_body(std::string_view prefix) {
  return Json{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}}
      .dump();
}

std::string member_value(std::string_view id, dp::Endpoint addr, const Fingerprint& fp) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : fp) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  return Json{{"id", std::string(id)}, {"addr", dp::to_string(addr)}, {"fp", hex}}.dump();
}

std::string_view error_name(Error e) {
  switch (e) {
    case Error::ok:
      return "ok";
    case Error::json:
      return "not a JSON object";
    case Error::etcd:
      return "etcd answered with an error";
    case Error::bad_field:
      return "a field missing or malformed";
    case Error::kCount:
      break;
  }
  return "?";
}

Error parse_reply(std::string_view body) {
  const Json j = parse_object(body);
  if (j.is_discarded()) return Error::json;
  return j.contains("error") ? Error::etcd : Error::ok;
}

Error parse_grant(std::string_view body, Grant& g) {
  const Json j = parse_object(body);
  if (j.is_discarded()) return Error::json;
  if (j.contains("error")) return Error::etcd;
  if (!int64_field(j, "ID", g.id) || !int64_field(j, "TTL", g.ttl) || g.id == 0 || g.ttl <= 0)
    return Error::bad_field;
  return Error::ok;
}

Error parse_keepalive(std::string_view body, int64_t& ttl) {
  // A stream's messages are one per line; the first is the answer to our one request.
  const Json j = parse_object(body.substr(0, body.find('\n')));
  if (j.is_discarded()) return Error::json;
  if (j.contains("error")) return Error::etcd;
  const auto r = j.find("result");
  const Json& m = r != j.end() ? *r : j;
  int64_t id = 0;
  if (!m.is_object() || !int64_field(m, "ID", id) || !int64_field(m, "TTL", ttl) || ttl < 0)
    return Error::bad_field;
  return Error::ok;
}

bool parse_member(std::string_view id, std::string_view value, int64_t lease, Member& m) {
  if (!valid_node_id(id)) return false;
  const Json j = parse_object(value);
  if (j.is_discarded()) return false;
  const std::string* vid = string_field(j, "id");
  const std::string* addr = string_field(j, "addr");
  const std::string* fp = string_field(j, "fp");
  if (!vid || *vid != id || !addr || !fp || fp->size() != 2 * m.fp.size()) return false;
  auto ep = dp::parse_endpoint(*addr);
  if (!ep || ep->addr_be == 0 || ep->port_be == 0) return false;
  for (size_t i = 0; i < m.fp.size(); ++i) {
    const int hi = hex_digit((*fp)[2 * i]), lo = hex_digit((*fp)[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    m.fp[i] = uint8_t(hi << 4 | lo);
  }
  std::copy(id.begin(), id.end(), m.id.begin());
  m.id_len = uint8_t(id.size());
  m.addr = *ep;
  m.lease = lease;
  return true;
}

Error parse_range(std::string_view body, std::string_view prefix, std::span<Member> out, size_t* n,
                  size_t* bad) {
  *n = 0;
  *bad = 0;
  const Json j = parse_object(body);
  if (j.is_discarded()) return Error::json;
  if (j.contains("error")) return Error::etcd;
  const auto kvs = j.find("kvs");
  if (kvs == j.end()) return Error::ok;  // no keys
  if (!kvs->is_array()) return Error::bad_field;
  std::string key, value;
  for (const Json& kv : *kvs) {
    int64_t lease = 0;
    Member m;
    const bool ok = kv.is_object() && bytes_field(kv, "key", key) &&
                    bytes_field(kv, "value", value) && int64_field(kv, "lease", lease) &&
                    key.starts_with(prefix) &&
                    parse_member(std::string_view(key).substr(prefix.size()), value, lease, m);
    if (!ok || *n == out.size()) {
      ++*bad;
      continue;
    }
    out[(*n)++] = m;
  }
  // etcd returns keys in order, but nothing here depends on it.
  std::sort(out.begin(), out.begin() + ptrdiff_t(*n),
            [](const Member& a, const Member& b) { return a.name() < b.name(); });
  return Error::ok;
}

}  // namespace cw::peer::etcd
