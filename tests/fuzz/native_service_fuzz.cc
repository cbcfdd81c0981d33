// libFuzzer target: NativeEcho over the fake backend (see service_harness.hh).
#include "app/services/echo_native.hh"
#include "tests/fuzz/service_harness.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cw::fuzz::run_one<cw::svc::NativeEcho>(data, size);
}
