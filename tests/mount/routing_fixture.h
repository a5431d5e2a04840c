// Fixtures of the routing and capacity mount tests: a detourfs mount of a
// separate volume directory with a tmpfs memory tier and a directory disk
// tier, so a test can look at the volume and the tiers directly.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/tmpfs.h"

namespace detourfs::testing {

// A mount over a separate volume directory with a tmpfs memory tier of
// `memory_size` and a disk tier — a directory, or a tmpfs of `disk_size`
// (a filesystem of its own, so its fullness is the tier's); `disk_extra` is
// added to the disk tier's section, `routes` after the tiers.
class TieredMountTest : public MountTest {
 protected:
  TieredMountTest(const std::string& memory_size, const std::string& disk_extra,
                  const std::string& routes, const std::string& disk_size = "")
      : memory_(memory_size) {
    if (!disk_size.empty()) {
      disk_tmpfs_ = std::make_unique<TmpfsDir>(disk_size);
      disk_ = disk_tmpfs_->ok() ? disk_tmpfs_->path() : "";
    } else {
      char tmpl[] = "/tmp/detourfs-disk-tier.XXXXXX";
      disk_ = ::mkdtemp(tmpl) != nullptr ? tmpl : "";
    }
    char ctmpl[] = "/tmp/detourfs-tiers.XXXXXX.toml";
    int fd = ::mkstemps(ctmpl, 5);
    if (fd >= 0) ::close(fd);
    config_ = ctmpl;
    WriteFile(config_, "[tiers.memory]\nroot = \"" + memory_.path() + "/tier\"\n" +
                           "[tiers.disk]\nroot = \"" + disk_ + "/tier\"\n" + disk_extra + routes);
  }
  ~TieredMountTest() override {
    ::unlink(config_.c_str());
    if (!disk_.empty() && !disk_tmpfs_) Shell("rm -rf '" + disk_ + "'");
  }
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.separate_lower = true;
    c.extra_args = {"-c", config_};
    return c;
  }
  std::string V(const std::string& rel) const { return fs_->lower() + "/" + rel; }  // volume
  std::string Mem(const std::string& rel) const { return memory_.path() + "/tier/upper/" + rel; }
  std::string Disk(const std::string& rel) const { return disk_ + "/tier/upper/" + rel; }
  static bool Exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }
  void Restart() {
    ASSERT_EQ(fs_->Stop(), 0);
    std::string error;
    ASSERT_TRUE(fs_->Restart(&error)) << error;
  }

  TmpfsDir memory_;
  std::unique_ptr<TmpfsDir> disk_tmpfs_;
  std::string disk_;
  std::string config_;
};

// The routing tests' tiers: **/node_modules to memory, **/dist/ to disk,
// /.cache to memory (never persisted).
class RoutingTest : public TieredMountTest {
 protected:
  RoutingTest()
      : TieredMountTest(
            "256M", "",
            "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n"
            "[[route]]\nmatch = \"**/dist/\"\ntier = \"disk\"\n"
            "[[route]]\nmatch = \"/.cache\"\ntier = \"memory\"\npersist = \"never\"\n") {}
};

}  // namespace detourfs::testing
