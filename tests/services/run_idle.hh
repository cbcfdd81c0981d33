// Runs several workers over fake backends until none has anything left: no item delivered,
// no mail in or waiting, in one round over all of them. Shared by the multi-worker service
// tests and fuzz targets. False when they did not go idle within max_rounds (a livelock).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "app/runtime/mailbox.hh"
#include "app/runtime/stats.hh"

namespace cw::testing {

template <class W>
bool run_until_idle(std::span<const std::unique_ptr<W>> workers, std::span<rt::WorkerStats> stats,
                    rt::Mailboxes& mail, int max_rounds) {
  for (int i = 0; i < max_rounds; ++i) {
    bool busy = false;
    for (size_t w = 0; w < workers.size(); ++w) {
      const uint64_t items = stats[w].items.get(), mail_in = stats[w].mail_in.get();
      workers[w]->run_once();
      busy = busy || stats[w].items.get() != items || stats[w].mail_in.get() != mail_in ||
             mail.has_mail(unsigned(w)) || mail.parked(unsigned(w)) != 0;
    }
    if (!busy) return true;
  }
  return false;
}

}  // namespace cw::testing
