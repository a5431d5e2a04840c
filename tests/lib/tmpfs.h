// TmpfsDir: a private tmpfs mounted on a fresh directory for one test (the
// model checker's reference, a memory tier), unmounted and removed after.
#pragma once

#include <string>

namespace detourfs::testing {

class TmpfsDir {
 public:
  // `size` is tmpfs's size= option ("256M"); `flags` are mount(2)'s flags
  // (MS_NODEV | MS_NOSUID for a reference to a FUSE mount, which has both).
  explicit TmpfsDir(const std::string& size = "256M", unsigned long flags = 0);  // NOLINT
  ~TmpfsDir();
  TmpfsDir(const TmpfsDir&) = delete;
  TmpfsDir& operator=(const TmpfsDir&) = delete;

  bool ok() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

}  // namespace detourfs::testing
