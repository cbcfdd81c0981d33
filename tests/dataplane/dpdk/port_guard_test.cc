// The burst guard (dataplane/dpdk/port_guard.hh) must never swallow a fault that is not a
// port going down under a burst: outside a guarded burst a SIGSEGV still kills the process
// (a core with the real stack), and a handler installed before the guard still gets it. The
// case the guard exists for (a memif peer leaving mid-burst) needs two DPDK processes and is
// in tests/integration/test_dpdk_memif.py. Needs no EAL.
#include "dataplane/dpdk/port_guard.hh"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>

namespace cw::dp {
namespace {

[[gnu::noinline]] void fault() {
  // An unmapped page (below vm.mmap_min_addr), not null: UBSan's null check would abort
  // first. Both volatile: the compiler can neither see the address nor drop the store.
  volatile int* volatile p = reinterpret_cast<volatile int*>(uintptr_t{64});
  *p = 1;
}

void exit_42(int, siginfo_t*, void*) {
  _exit(42);
}

TEST(PortGuardDeathTest, AFaultOutsideABurstStillKills) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        signal(SIGSEGV, SIG_DFL);
        install_port_guard();
        fault();
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

TEST(PortGuardDeathTest, TheHandlerInstalledBeforeStillRuns) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_sigaction = exit_42;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
        install_port_guard();
        fault();
      },
      ::testing::ExitedWithCode(42), "");
}

TEST(PortGuardDeathTest, InstallingTwiceKeepsTheFirstPrevious) {
  // The second call must not record the guard itself as "the previous handler" (which would
  // loop instead of dying).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        signal(SIGSEGV, SIG_DFL);
        install_port_guard();
        install_port_guard();
        fault();
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
}  // namespace cw::dp
