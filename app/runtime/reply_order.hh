// In-order replies on a pipelined stream whose requests are answered on different workers.
//
// A service reading a pipelined connection takes a sequence number per request (begin).
// Every reply goes through reply(): the reply to the oldest outstanding request is written
// to the stream at once, followed by any later replies already waiting; a reply that comes
// early (its request was answered here while an earlier one is still out on another core)
// is copied into this worker's hold pool (fixed blocks, chained; sized at setup, no
// allocation per request) and written when its turn comes. A connection with nothing
// outstanding costs nothing: when idle(c), a local reply may be written directly.
//
// Bounds: at most `window` requests outstanding per connection, and at most `windows`
// connections with requests outstanding per worker. begin() returns kFull beyond either;
// the service must then stop reading that connection (leave the frame unconsumed) until
// replies have gone out.
//
// Closing: call closed(c) from on_closed. Held replies are dropped and their blocks freed;
// replies for c that arrive later (by mail from another worker) are refused by reply()
// (Reply::dropped, counted) and the caller frees what carried them. A stale ConnId never
// matches a newer connection in the same slot (its generation differs).
//
// Owner-worker only.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "app/runtime/stats.hh"
#include "dataplane/io.hh"

namespace cw::rt {

struct ReplyOrderConfig {
  uint32_t max_conns = 16384;  // connection slots (IoConfig::max_conns)
  uint32_t window = 64;        // outstanding requests per connection (rounded to 2^k)
  uint32_t windows = 256;      // connections with requests outstanding at once
  uint32_t block_bytes = 256;  // hold pool block size (bytes)
  uint32_t blocks = 4096;      // hold pool blocks
};

struct alignas(64) ReplyOrderStats {
  Counter direct;        // replies written at once (their turn)
  Counter held;          // replies that waited for an earlier one
  Counter dropped;       // replies for a closed connection (late or held), discarded
  Counter no_buffer;     // a reply could not be held: pool exhausted (connection failed)
  Counter write_failed;  // the stream refused a reply (connection failed)
  Counter full;          // begin() refused: window or windows exhausted
};

enum class Reply : uint8_t {
  sent,     // written to the stream (with any replies that were waiting for it)
  held,     // waiting for an earlier reply
  dropped,  // connection closed or failed, or no such request: discarded (counted)
  failed,   // could not be held or written: the connection is failed; close it
};

class ReplyOrder {
 public:
  static constexpr uint32_t kFull = ~0u;

  explicit ReplyOrder(const ReplyOrderConfig& cfg)
      : window_(std::bit_ceil(std::max(cfg.window, 1u))),
        block_(cfg.block_bytes),
        conns_(cfg.max_conns),
        entries_(size_t(cfg.windows) * window_),
        pool_(new uint8_t[size_t(cfg.blocks) * cfg.block_bytes]),
        next_block_(cfg.blocks),
        free_blocks_(cfg.blocks) {
    free_windows_.reserve(cfg.windows);
    for (uint32_t w = cfg.windows; w-- > 0;) free_windows_.push_back(w);
  }

  // A request read from c: its sequence number, or kFull (stop reading c for now).
  uint32_t begin(dp::ConnId c) {
    Conn& k = conns_[dp::conn_slot(c)];
    if (k.conn != c) reset(k, c);
    if (k.failed || k.next - k.head >= window_) return full();
    if (k.win == kNone) {
      if (free_windows_.empty()) return full();
      k.win = free_windows_.back();
      free_windows_.pop_back();
    }
    entry(k, k.next) = Entry{kNone, 0, State::pending};
    return k.next++;
  }

  // Whether c has nothing outstanding: a reply may then be written straight to the stream
  // without begin()/reply().
  bool idle(dp::ConnId c) const {
    const Conn& k = conns_[dp::conn_slot(c)];
    return k.conn != c || k.head == k.next;
  }
  uint32_t outstanding(dp::ConnId c) const {
    const Conn& k = conns_[dp::conn_slot(c)];
    return k.conn == c ? k.next - k.head : 0;
  }

  // The reply to request seq on c.
  template <class Io>
  Reply reply(Io& io, dp::ConnId c, uint32_t seq, std::span<const uint8_t> bytes) {
    Conn& k = conns_[dp::conn_slot(c)];
    if (k.conn != c || k.failed || seq - k.head >= k.next - k.head ||
        entry(k, seq).state != State::pending) {
      stats_.dropped.add();
      return Reply::dropped;
    }
    if (seq != k.head) return hold(k, entry(k, seq), bytes);
    if (!write(io, c, bytes)) return fail(k);
    stats_.direct.add();
    entry(k, seq).state = State::free;
    ++k.head;
    return release_held(io, k) ? Reply::sent : fail(k);
  }

  // From on_closed: drops c's held replies; later replies for c are refused.
  void closed(dp::ConnId c) {
    Conn& k = conns_[dp::conn_slot(c)];
    if (k.conn == c) reset(k, dp::kNoConn);
  }

  uint32_t blocks_free() const { return free_blocks_; }
  uint32_t windows_free() const { return uint32_t(free_windows_.size()); }
  const ReplyOrderStats& stats() const { return stats_; }

 private:
  static constexpr uint32_t kNone = ~0u;
  enum class State : uint8_t { free, pending, held };
  struct Entry {
    uint32_t first = kNone;  // first hold block
    uint32_t len = 0;        // bytes held
    State state = State::free;
  };
  struct Conn {
    dp::ConnId conn = dp::kNoConn;
    uint32_t win = kNone;  // index of this connection's window in entries_
    uint32_t head = 0;     // oldest outstanding sequence number
    uint32_t next = 0;     // next sequence number to hand out
    bool failed = false;
  };

  Entry& entry(Conn& k, uint32_t seq) {
    return entries_[size_t(k.win) * window_ + (seq & (window_ - 1))];
  }
  uint32_t full() {
    stats_.full.add();
    return kFull;
  }

  Reply hold(Conn& k, Entry& e, std::span<const uint8_t> bytes) {
    const uint32_t need = block_ ? uint32_t((bytes.size() + block_ - 1) / block_) : kNone;
    if (need > free_blocks_) {
      stats_.no_buffer.add();
      return fail(k);
    }
    e.first = kNone;
    e.len = uint32_t(bytes.size());
    uint32_t* link = &e.first;
    for (size_t off = 0; off < bytes.size(); off += block_) {
      // Freed blocks first, then never-used ones (so start-up touches none of them).
      uint32_t b = block_head_;
      if (b != kNone)
        block_head_ = next_block_[b];
      else
        b = fresh_++;
      --free_blocks_;
      std::memcpy(&pool_[size_t(b) * block_], bytes.data() + off,
                  std::min<size_t>(block_, bytes.size() - off));
      *link = b;
      link = &next_block_[b];
    }
    *link = kNone;
    e.state = State::held;
    stats_.held.add();
    return Reply::held;
  }

  // Writes the replies that were waiting for the head, in order; false if the stream
  // refused one. Frees the window when nothing is outstanding.
  template <class Io>
  bool release_held(Io& io, Conn& k) {
    while (k.head != k.next) {
      Entry& e = entry(k, k.head);
      if (e.state != State::held) return true;
      if (e.len) {  // an empty reply (a get miss) reserves nothing: no reservation left open
        uint8_t* out = io.stream_reserve(k.conn, e.len);
        if (!out) {
          stats_.write_failed.add();
          return false;
        }
        for (uint32_t b = e.first, off = 0; b != kNone; b = next_block_[b], off += block_)
          std::memcpy(out + off, &pool_[size_t(b) * block_], std::min(block_, e.len - off));
        io.stream_commit(k.conn, e.len);
      }
      free_chain(e);
      e.state = State::free;
      ++k.head;
    }
    release_window(k);
    return true;
  }

  template <class Io>
  bool write(Io& io, dp::ConnId c, std::span<const uint8_t> bytes) {
    if (bytes.empty()) return true;
    uint8_t* out = io.stream_reserve(c, uint32_t(bytes.size()));
    if (!out) {
      stats_.write_failed.add();
      return false;
    }
    std::memcpy(out, bytes.data(), bytes.size());
    io.stream_commit(c, uint32_t(bytes.size()));
    return true;
  }

  Reply fail(Conn& k) {
    // Everything held is dropped now; replies still to come are refused.
    const dp::ConnId c = k.conn;
    reset(k, c);
    k.failed = true;
    return Reply::failed;
  }

  void free_chain(Entry& e) {
    for (uint32_t b = e.first; b != kNone;) {
      const uint32_t nx = next_block_[b];
      next_block_[b] = block_head_;
      block_head_ = b;
      ++free_blocks_;
      b = nx;
    }
    e.first = kNone;
  }

  void release_window(Conn& k) {
    if (k.win == kNone) return;
    free_windows_.push_back(k.win);
    k.win = kNone;
  }

  // Forgets k's requests (held replies dropped and counted) and gives the slot to c.
  void reset(Conn& k, dp::ConnId c) {
    if (k.win != kNone) {
      for (uint32_t s = k.head; s != k.next; ++s) {
        Entry& e = entry(k, s);
        if (e.state == State::held) {
          stats_.dropped.add();
          free_chain(e);
        }
        e.state = State::free;
      }
      release_window(k);
    }
    k = Conn{};
    k.conn = c;
  }

  uint32_t window_;
  uint32_t block_;
  std::vector<Conn> conns_;     // by connection slot
  std::vector<Entry> entries_;  // windows x window
  std::vector<uint32_t> free_windows_;
  // blocks x block_ bytes, not zeroed: a block is read only after it is written, so its
  // pages are touched (and resident) only once replies need them.
  std::unique_ptr<uint8_t[]> pool_;
  std::vector<uint32_t> next_block_;
  uint32_t block_head_ = kNone;  // freed blocks
  uint32_t fresh_ = 0;           // blocks [fresh_, blocks) were never used
  uint32_t free_blocks_;
  ReplyOrderStats stats_;
};

}  // namespace cw::rt
