// A worker's subscription table: fixed-capacity entries (subject, queue group, sid, owner)
// found by literal subject through a hash index; a wildcard subject is indexed by its
// literal prefix (the tokens before its first wildcard: "a.b" for "a.b.*.c", "" for
// "*.x"), so a publish looks up each of its own prefixes (one hash step per token) and
// checks only the wildcard entries filed under them. No I/O; owner worker only; sized at
// setup, never grows.
//
// The pubsub service keeps two: its own connections' subscriptions (owner = ConnId) and the
// interest other workers announced (owner = worker index, `count` = how many of that
// worker's subscriptions have this subject and queue).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "app/services/pubsub/protocol.hh"

namespace cw::pubsub {

// Limits of a stored subscription (a SUB beyond them is answered 'Invalid Subject'; a PUB
// subject is never stored and may be as long as the control line).
inline constexpr size_t kMaxSubjectLen = 256;
inline constexpr size_t kMaxQueueLen = 64;
inline constexpr size_t kMaxSidLen = 32;
inline constexpr uint32_t kNil = ~uint32_t{0};

// FNV-1a; the seed separates the subject index from the (subject, queue, owner) index.
inline constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;
inline uint64_t hash_step(uint64_t h, char c) {
  return (h ^ uint8_t(c)) * 0x100000001b3ull;
}
inline uint64_t hash_bytes(std::string_view s, uint64_t h = kFnvBasis) {
  for (char c : s) h = hash_step(h, c);
  return h;
}

// The length of a wildcard subject's literal prefix: the bytes before the '.' that ends
// the last literal token ahead of its first wildcard token (0 when the first is one).
inline size_t literal_prefix_len(std::string_view subject) {
  size_t start = 0;
  while (start <= subject.size()) {
    size_t end = subject.find('.', start);
    if (end == std::string_view::npos) end = subject.size();
    const std::string_view tok = subject.substr(start, end - start);
    if (tok == "*" || tok == ">") return start == 0 ? 0 : start - 1;
    start = end + 1;
  }
  return subject.size();
}

// memcpy of a view that may be empty (an empty view may hold a null pointer).
inline void copy_bytes(void* dst, std::string_view s) {
  if (!s.empty()) std::memcpy(dst, s.data(), s.size());
}

// Trivially constructible: Sublist::add writes every field, so the table's entries cost
// memory only once used.
struct Sub {
  uint64_t owner;      // ConnId, or a worker index (remote interest)
  uint64_t max;        // deliveries before it goes (UNSUB <sid> <max>); 0: none
  uint64_t delivered;  // deliveries so far
  uint64_t count;      // remote interest: subscriptions behind this entry
  uint64_t queue_hash;
  uint32_t key_next, key_prev;    // literal subject chain, or wildcard prefix chain
  uint32_t own_next, own_prev;    // the owner's subscriptions (service's)
  uint32_t full_next, full_prev;  // (subject, queue, owner) chain
  uint32_t sid_next, sid_prev;    // (owner, sid) chain
  uint16_t subject_len;
  uint16_t prefix_len;  // wildcard entries: literal_prefix_len(subject)
  uint8_t queue_len, sid_len;
  bool live, wildcard;
  char subject[kMaxSubjectLen];
  char queue[kMaxQueueLen];
  char sid[kMaxSidLen];

  std::string_view subject_sv() const { return {subject, subject_len}; }
  std::string_view queue_sv() const { return {queue, queue_len}; }
  std::string_view sid_sv() const { return {sid, sid_len}; }
};

class Sublist {
 public:
  Sublist() = default;
  explicit Sublist(uint32_t capacity)
      : subs_(std::make_unique_for_overwrite<Sub[]>(capacity)), capacity_(capacity) {
    uint32_t b = 64;
    while (b < capacity) b <<= 1;
    buckets_.assign(b, kNil);
    wild_.assign(b, kNil);
    full_.assign(b, kNil);
    sids_.assign(b, kNil);
    free_.reserve(capacity);
  }

  // Whether the fields fit an entry (the caller answers 'Invalid Subject' otherwise).
  static bool fits(std::string_view subject, std::string_view queue, std::string_view sid) {
    return subject.size() <= kMaxSubjectLen && queue.size() <= kMaxQueueLen &&
           sid.size() <= kMaxSidLen;
  }

  // A new entry (fields must fit); kNil when the table is full. `own_head` is the owner's
  // list the entry joins (the service keeps one per connection; pass a dummy otherwise).
  uint32_t add(std::string_view subject, std::string_view queue, std::string_view sid,
               uint64_t owner, uint32_t& own_head) {
    uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else if (fresh_ < capacity_) {
      id = fresh_++;
    } else {
      return kNil;
    }
    Sub& s = subs_[id];
    s.owner = owner;
    s.max = s.delivered = 0;
    s.count = 1;
    s.subject_len = uint16_t(subject.size());
    s.queue_len = uint8_t(queue.size());
    s.sid_len = uint8_t(sid.size());
    copy_bytes(s.subject, subject);
    copy_bytes(s.queue, queue);
    copy_bytes(s.sid, sid);
    s.queue_hash = queue.empty() ? 0 : hash_bytes(queue) | 1;
    s.wildcard = proto::has_wildcard(subject);
    s.prefix_len = s.wildcard ? uint16_t(literal_prefix_len(subject)) : 0;
    s.live = true;
    link(key_head(s), id, &Sub::key_next, &Sub::key_prev);
    wild_count_ += s.wildcard;
    link(own_head, id, &Sub::own_next, &Sub::own_prev);
    link(full_[full_bucket(subject, queue, owner)], id, &Sub::full_next, &Sub::full_prev);
    link(sids_[sid_bucket(owner, sid)], id, &Sub::sid_next, &Sub::sid_prev);
    ++size_;
    return id;
  }

  void remove(uint32_t id, uint32_t& own_head) {
    Sub& s = subs_[id];
    if (!s.live) return;
    unlink(key_head(s), id, &Sub::key_next, &Sub::key_prev);
    wild_count_ -= s.wildcard;
    unlink(own_head, id, &Sub::own_next, &Sub::own_prev);
    unlink(full_[full_bucket(s.subject_sv(), s.queue_sv(), s.owner)], id, &Sub::full_next,
           &Sub::full_prev);
    unlink(sids_[sid_bucket(s.owner, s.sid_sv())], id, &Sub::sid_next, &Sub::sid_prev);
    s.live = false;
    free_.push_back(id);
    --size_;
  }

  // The entry with exactly these subject, queue and owner; kNil when none.
  uint32_t find(std::string_view subject, std::string_view queue, uint64_t owner) const {
    for (uint32_t i = full_[full_bucket(subject, queue, owner)]; i != kNil;
         i = subs_[i].full_next) {
      const Sub& s = subs_[i];
      if (s.owner == owner && s.subject_sv() == subject && s.queue_sv() == queue) return i;
    }
    return kNil;
  }

  // The owner's entry with this sid; kNil when none.
  uint32_t find_sid(uint64_t owner, std::string_view sid) const {
    for (uint32_t i = sids_[sid_bucket(owner, sid)]; i != kNil; i = subs_[i].sid_next)
      if (subs_[i].owner == owner && subs_[i].sid_sv() == sid) return i;
    return kNil;
  }

  // f(id) once for every entry matching the literal `subject`: literal entries first,
  // then wildcard entries by the length of their literal prefix.
  template <class F>
  void match(std::string_view subject, F&& f) const {
    for (uint32_t i = buckets_[bucket(subject)]; i != kNil; i = subs_[i].key_next)
      if (subs_[i].subject_sv() == subject) f(i);
    if (wild_count_ == 0) return;
    // A wildcard entry's prefix ends before a token boundary of the subject: the empty
    // prefix, then subject[0, i) at each '.'. An entry qualifies under one length only.
    uint64_t h = kFnvBasis;
    match_prefix(subject, 0, h, f);
    for (size_t i = 0; i < subject.size(); ++i) {
      if (subject[i] == '.') match_prefix(subject, i, h, f);
      h = hash_step(h, subject[i]);
    }
  }

  Sub& at(uint32_t id) { return subs_[id]; }
  const Sub& at(uint32_t id) const { return subs_[id]; }
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }

 private:
  size_t bucket(std::string_view subject) const {
    return size_t(hash_bytes(subject)) & (buckets_.size() - 1);
  }
  uint32_t& key_head(const Sub& s) {
    return s.wildcard ? wild_[size_t(hash_bytes({s.subject, s.prefix_len})) & (wild_.size() - 1)]
                      : buckets_[bucket(s.subject_sv())];
  }
  template <class F>
  void match_prefix(std::string_view subject, size_t len, uint64_t h, F& f) const {
    for (uint32_t i = wild_[size_t(h) & (wild_.size() - 1)]; i != kNil; i = subs_[i].key_next) {
      const Sub& s = subs_[i];
      if (s.prefix_len == len && std::memcmp(s.subject, subject.data(), len) == 0 &&
          proto::subject_matches(s.subject_sv(), subject))
        f(i);
    }
  }
  size_t full_bucket(std::string_view subject, std::string_view queue, uint64_t owner) const {
    uint64_t h = hash_bytes(queue, hash_bytes(subject) ^ 0x9e3779b97f4a7c15ull);
    h = (h ^ owner) * 0x100000001b3ull;
    return size_t(h ^ (h >> 29)) & (full_.size() - 1);
  }
  size_t sid_bucket(uint64_t owner, std::string_view sid) const {
    const uint64_t h = (hash_bytes(sid) ^ owner) * 0x9e3779b97f4a7c15ull;
    return size_t(h >> 20) & (sids_.size() - 1);
  }
  void link(uint32_t& head, uint32_t id, uint32_t Sub::*next, uint32_t Sub::*prev) {
    subs_[id].*next = head;
    subs_[id].*prev = kNil;
    if (head != kNil) subs_[head].*prev = id;
    head = id;
  }
  void unlink(uint32_t& head, uint32_t id, uint32_t Sub::*next, uint32_t Sub::*prev) {
    Sub& s = subs_[id];
    if (s.*prev != kNil)
      subs_[s.*prev].*next = s.*next;
    else
      head = s.*next;
    if (s.*next != kNil) subs_[s.*next].*prev = s.*prev;
    s.*next = s.*prev = kNil;
  }

  std::unique_ptr<Sub[]> subs_;
  std::vector<uint32_t> buckets_;  // literal subjects, by hash of the subject
  std::vector<uint32_t> wild_;     // wildcard subjects, by hash of their literal prefix
  std::vector<uint32_t> full_;     // every entry, by hash of (subject, queue, owner)
  std::vector<uint32_t> sids_;     // every entry, by hash of (owner, sid)
  std::vector<uint32_t> free_;     // removed entries (capacity reserved; never grows past it)
  uint32_t capacity_ = 0;
  uint32_t fresh_ = 0;  // entries [fresh_, capacity_) were never used
  uint32_t wild_count_ = 0;
  uint32_t size_ = 0;
};

}  // namespace cw::pubsub
