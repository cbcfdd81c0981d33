// The backend conformance suite (tests/dataplane/conformance.hh) for the io_uring backend.
// Skipped as a whole when this process cannot use io_uring (sysctl, seccomp, old kernel).
#include "dataplane/uring/uring_io.hh"
#include "tests/dataplane/conformance.hh"

namespace cw::dp::conformance {

class UringAvailable : public ::testing::Environment {
 public:
  void SetUp() override {
    auto ok = UringBackend::probe();
    if (!ok) GTEST_SKIP() << "io_uring unavailable: " << ok.error().message;
  }
};
const auto* const kUringEnv = ::testing::AddGlobalTestEnvironment(new UringAvailable);

using UringBackends = ::testing::Types<UringBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Uring, BackendConformance, UringBackends);

}  // namespace cw::dp::conformance
