// The fixture of the routing mount tests: a detourfs mount of a separate
// volume directory with a tmpfs memory tier and a directory disk tier, so a
// test can look at the volume and the tiers directly. Rules: **/node_modules
// to memory, **/dist/ to disk, /.cache to memory (never persisted).
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "lib/files.h"
#include "lib/mount_test.h"
#include "lib/tmpfs.h"

namespace detourfs::testing {

class RoutingTest : public MountTest {
 protected:
  RoutingTest() {
    char tmpl[] = "/tmp/detourfs-disk-tier.XXXXXX";
    disk_ = ::mkdtemp(tmpl) != nullptr ? tmpl : "";
    char ctmpl[] = "/tmp/detourfs-routing.XXXXXX.toml";
    int fd = ::mkstemps(ctmpl, 5);
    if (fd >= 0) ::close(fd);
    config_ = ctmpl;
    WriteFile(config_,
              "[tiers.memory]\nroot = \"" + memory_.path() + "/tier\"\n" +
                  "[tiers.disk]\nroot = \"" + disk_ + "/tier\"\n" +
                  "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n" +
                  "[[route]]\nmatch = \"**/dist/\"\ntier = \"disk\"\n" +
                  "[[route]]\nmatch = \"/.cache\"\ntier = \"memory\"\npersist = \"never\"\n");
  }
  ~RoutingTest() override {
    ::unlink(config_.c_str());
    if (!disk_.empty()) Shell("rm -rf '" + disk_ + "'");
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

  TmpfsDir memory_{"256M"};
  std::string disk_;
  std::string config_;
};

}  // namespace detourfs::testing
