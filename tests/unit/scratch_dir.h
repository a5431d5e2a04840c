// ScratchDir: a fresh directory for one unit test (mkdtemp under `parent`),
// removed with everything in it when the test ends.
#pragma once

#include <stdlib.h>

#include <string>

namespace detourfs {

class ScratchDir {
 public:
  // `prefix`: the directory's name before the random part, e.g.
  // "/dev/shm/detourfs-markers" (tmpfs) or "/tmp/detourfs-resolver".
  explicit ScratchDir(const std::string& prefix) {
    std::string tmpl = prefix + ".XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    if (!path_.empty()) (void)::system(("rm -rf '" + path_ + "'").c_str());
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace detourfs
