// A test service for the full-mailbox policy, shared by the mailbox and cross-core tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "app/runtime/mailbox.hh"

namespace cw::rt {

// Issues numbered mail to worker 1 (its own
// service index there) on every tick, stopping while backpressured and
// resuming on on_mail_drained; worker 1 checks it arrives complete and in order.
struct Issuer {
  template <class Io>
  void on_tick(Ctx<Io>& ctx) {
    if (ctx.worker != 0 || paused) return;
    for (uint32_t k = 0; k < 16 && next < total; ++k) {
      Mail m;
      m.a = next;
      const Post p = ctx.post(1, m);
      ASSERT_NE(p, Post::failed);
      ++next;
      if (ctx.backpressured(1)) {
        paused = true;
        ++pauses;
        return;
      }
    }
  }
  template <class Io>
  void on_mail_drained(Ctx<Io>& ctx) {
    EXPECT_FALSE(ctx.backpressured(1));
    if (paused) ++resumes;
    paused = false;
  }
  template <class Io>
  void on_mail(Ctx<Io>&, const Mail& m) {
    if (m.a != received) ++out_of_order;
    ++received;
  }
  uint64_t total = 0, next = 0, received = 0, out_of_order = 0;
  bool paused = false;
  uint32_t pauses = 0, resumes = 0;
};

}  // namespace cw::rt
