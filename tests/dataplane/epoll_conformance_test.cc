// The backend conformance suite (conformance.hh) for the epoll backend.
#include "dataplane/epoll/epoll_io.hh"
#include "tests/dataplane/conformance.hh"

namespace cw::dp::conformance {

using EpollBackends = ::testing::Types<EpollBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Epoll, BackendConformance, EpollBackends);

}  // namespace cw::dp::conformance
