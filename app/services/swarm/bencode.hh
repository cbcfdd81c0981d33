// Bencode (BEP 3): the encoding of .torrent files, tracker replies and the BEP 10 extension
// messages. Pure functions over bytes: no I/O, no globals, no allocation. The decoder checks a
// whole element and writes a flat token array into the caller's span (one token per element,
// in document order); containers carry the index just past their subtree, so a reader walks
// the tree without recursion. Tokens point into the input, which must outlive them.
// Limits and rules: docs/swarm.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cw::swarm::bencode {

using Bytes = std::span<const uint8_t>;

inline constexpr uint32_t kNone = UINT32_MAX;        // "no such token"
inline constexpr size_t kMaxDepth = 64;              // hard ceiling of Limits::max_depth
inline constexpr size_t kMaxInput = UINT32_MAX - 1;  // offsets are 32-bit

enum class Type : uint8_t { integer, string, list, dict };

struct Token {
  Type type = Type::integer;
  uint32_t begin = 0;  // offset of the element's first byte ('i', 'l', 'd' or a length digit)
  uint32_t end = 0;    // offset one past its last byte (its closing 'e' for containers)
  uint32_t next = 0;   // index of the first token after this element's subtree
  uint32_t count = 0;  // list: elements; dict: key/value pairs; string: data length
  int64_t value = 0;   // integer: its value; string: offset of the data
};

struct Limits {
  size_t max_depth = 32;                // nesting of lists/dicts (<= kMaxDepth)
  size_t max_string = size_t{1} << 26;  // bytes in one string (64 MiB)
  bool strict = true;                   // dict keys strictly ascending (sorted, unique)
  bool allow_trailing = false;          // bytes after the first element (BEP 9 pieces)
};

enum class Error : uint8_t {
  ok,
  truncated,        // the input ends inside an element
  bad_char,         // a byte that starts no element
  bad_int,          // empty, leading zero, "-0", not a digit, or beyond int64
  bad_length,       // a string length with a leading zero, not a digit, or no ':'
  too_long,         // a string longer than Limits::max_string
  too_deep,         // nesting beyond Limits::max_depth
  too_many_tokens,  // more elements than the token span holds
  bad_key,          // a dict key that is not a string
  unsorted_key,     // strict: a key not greater than the one before it
  missing_value,    // a dict key with no value before its 'e'
  trailing,         // bytes after the element (unless allowed)
  too_large,        // input beyond kMaxInput
  kCount,
};
std::string_view error_name(Error e);

// A decoded document: the input and its tokens (token 0 is the root).
struct Doc {
  Bytes buf;
  std::span<const Token> toks;
  size_t consumed = 0;  // bytes of the root element (== buf.size() unless trailing allowed)

  const Token& at(uint32_t i) const { return toks[i]; }
  std::string_view str(uint32_t i) const;  // a string token's data
  Bytes raw(uint32_t i) const;             // the element's exact encoding
  // The value of `key` in dict token d, or kNone (also when d is not a dict).
  uint32_t find(uint32_t d, std::string_view key) const;
  // The child after child c of a list (or the key after pair c of a dict: c is the key).
  uint32_t next_item(uint32_t c) const { return toks[c].next; }
  uint32_t next_pair(uint32_t key) const { return toks[key + 1].next; }
  bool is(uint32_t i, Type t) const { return i != kNone && toks[i].type == t; }
};

// Decodes one element from in. On ok, doc holds in, the first doc.toks.size() tokens of
// toks, and consumed. On error, err_at (if given) gets the offset of the offending byte.
Error decode(Bytes in, std::span<Token> toks, const Limits& lim, Doc& doc,
             size_t* err_at = nullptr);

// An encoder into a caller buffer. A write that does not fit sets overflow and writes nothing
// more; size() is then meaningless. Dict keys must be written in ascending order (BEP 3); the
// writer does not sort them.
class Writer {
 public:
  explicit Writer(std::span<uint8_t> out) : out_(out) {}
  Writer& integer(int64_t v);
  Writer& string(std::string_view s);
  Writer& string(Bytes b);
  Writer& list();  // opens a list; end() closes it
  Writer& dict();  // opens a dict; end() closes it
  Writer& end();
  Writer& raw(Bytes b);  // an already encoded element, as it is
  bool ok() const { return !overflow_; }
  size_t size() const { return n_; }

 private:
  void put(const void* p, size_t n);
  std::span<uint8_t> out_;
  size_t n_ = 0;
  bool overflow_ = false;
};

}  // namespace cw::swarm::bencode
