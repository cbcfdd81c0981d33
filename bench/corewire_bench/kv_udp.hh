// Reassembly of memcached UDP replies for the load generator. A reply comes as one or more
// messages, each cut into datagrams numbered 0..total-1 of at most kUdpMaxPayload bytes
// (memcached 1.6 sends every internal response object as its own message; corewire numbers
// the whole reply as one). A message's bytes are appended to its request's stream once all
// its datagrams came, in any order; the caller parses that stream. A lost datagram leaves
// the request incomplete until it times out. Buffers are sized at setup: `slots` requests
// per flow reassembled at once, each holding up to `cap` bytes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bench/corewire_bench/kv_codec.hh"

namespace cw::bench::kv {

class UdpReassembly {
 public:
  struct Slot {
    bool used = false;
    uint64_t seq = 0;            // the request this slot follows
    uint32_t have = 0;           // bytes of whole messages, not yet consumed, at buf[0..have)
    uint16_t msg_total = 0;      // datagrams of the message being assembled (0: none)
    uint16_t msg_got = 0;        // of them received
    uint32_t msg_last = 0;       // payload bytes of its last datagram
    ReplyState st;               // the caller's parse state of this request's reply
    std::vector<uint64_t> bits;  // datagrams of the message received
    std::vector<uint8_t> buf;
  };
  enum class Add : uint8_t { partial, message, bad };

  UdpReassembly(uint32_t slots, uint32_t cap);  // setup: allocates everything

  // The slot following `seq`: its own, a free one, or else the one following the oldest
  // request, reset (evicted is then set).
  Slot& slot_for(uint64_t seq, bool& evicted);
  // Adds one datagram of s's request. message: a message completed (buf[0..have) grew);
  // bad: the datagram cannot be part of a well-formed reply (the caller drops the slot).
  Add add(Slot& s, const UdpReply& d);
  // Drops the first n bytes of the stream (parsed elements).
  void consume(Slot& s, uint32_t n);
  void release(Slot& s) { s.used = false; }
  uint32_t cap() const { return cap_; }

 private:
  uint32_t cap_;
  uint32_t max_dgrams_;
  std::vector<Slot> slots_;
};

}  // namespace cw::bench::kv
