// A private scratch directory under /tmp for one test, removed with everything in it when
// the owner goes away (the control tests put sockets, segments and run dirs there).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace cw::ctl::test {

class ScratchDir {
 public:
  // prefix: a short name that says which test made it, e.g. "cw-ctl".
  explicit ScratchDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cw::ctl::test
