// The enabled/disabled switch a service gets by deriving from ServiceSwitch: on_mail applies
// `corewirectl service enable|disable` (rt::kMailServiceDisable/Enable, control_contract.hh),
// and the service checks enabled() per request and refuses (counted) while disabled, each in
// its protocol's way. Plain base class, nothing virtual; one instance per worker like the
// service itself.
#pragma once

#include "app/runtime/control_contract.hh"
#include "app/runtime/service.hh"

namespace cw::svc {

class ServiceSwitch {
 public:
  template <class Io>
  void on_mail(rt::Ctx<Io>&, const rt::Mail& m) {
    if (m.kind == rt::kMailServiceDisable) enabled_ = false;
    if (m.kind == rt::kMailServiceEnable) enabled_ = true;
  }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_ = true;  // owner worker only
};

}  // namespace cw::svc
