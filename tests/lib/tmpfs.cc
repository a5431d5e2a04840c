// TmpfsDir (tmpfs.h).
#include "lib/tmpfs.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>

namespace detourfs::testing {

TmpfsDir::TmpfsDir(const std::string& size, unsigned long flags) {  // NOLINT
  char tmpl[] = "/tmp/detourfs-tmpfs.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return;
  path_ = tmpl;
  const std::string options = "size=" + size + ",mode=0755";
  mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", flags, options.c_str()) == 0;
}

TmpfsDir::~TmpfsDir() {
  if (mounted_ && ::umount2(path_.c_str(), 0) != 0) ::umount2(path_.c_str(), MNT_DETACH);
  if (!path_.empty()) ::rmdir(path_.c_str());
}

}  // namespace detourfs::testing
