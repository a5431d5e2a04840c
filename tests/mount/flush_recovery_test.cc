// Recovery of flush epochs a crash left on the volume, at mount and offline
// (detourctl recover): a committed epoch is finished before anything is
// served, an uncommitted one leaves the volume as it was, a corrupt
// manifest is never applied, and offline recovery refuses a FUSE mount.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <string>

#include "flush/epoch_area.h"
#include "flush/manifest_apply.h"
#include "lib/files.h"
#include "lib/process.h"
#include "mount/routing_fixture.h"
#include "sys/sys.h"

namespace detourfs::testing {
namespace {

class FlushRecoveryTest : public RoutingTest {
 protected:
  // Plants on the volume (detourfs stopped) the next epoch of a flush that puts
  // `content` in app/node_modules/pkg/index.js, committed or not.
  void PlantEpoch(const std::string& content, bool commit) {
    Result<UniqueFd> volume = sys::OpenPath(fs_->lower().c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(volume.ok());
    Result<UniqueFd> priv = sys::OpenBeneath(volume->get(), ".detourfs", O_PATH | O_DIRECTORY);
    ASSERT_TRUE(priv.ok());
    Result<flush::EpochArea> area = flush::EpochArea::Open(priv->get());
    ASSERT_TRUE(area.ok());
    Result<uint64_t> epoch = area->NextEpoch();
    ASSERT_TRUE(epoch.ok());
    ASSERT_TRUE(area->Begin(volume->get(), *epoch).ok());
    const std::string data = V(".detourfs/flush/" + flush::EpochDirName(*epoch) + "/data/");
    ASSERT_EQ(WriteFile(data + flush::StagedName(1), content), 0);
    flush::ManifestStep step =
        flush::MakeStep(flush::StepKind::kPlace, "app/node_modules/pkg/index.js");
    step.staged = 1;
    step.mode = S_IFREG | 0644;
    step.size = content.size();
    step.hash = XXH3_64bits(content.data(), content.size());
    if (commit) {
      ASSERT_TRUE(area->Commit(flush::Manifest{*epoch, {step}}).ok());
    }
  }

  // A volume's node_modules from before detourfs, then detourfs stopped.
  void VolumeWithOldContent() {
    ASSERT_EQ(fs_->Stop(), 0);
    ASSERT_EQ(::mkdir(V("app").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(V("app/node_modules").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(V("app/node_modules/pkg").c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(V("app/node_modules/pkg/index.js"), "old"), 0);
  }

  void Start() {
    std::string error;
    ASSERT_TRUE(fs_->Restart(&error)) << error;
  }

  static std::string Ctl() {
    const char* bin = std::getenv("DETOURCTL_BIN");
    return bin != nullptr ? bin : "detourctl";
  }

  // Runs detourctl with `args`; its output (both streams) in `*out`.
  int RunCtl(const std::string& args, std::string* out) {
    const std::string log = fs_->work() + "/detourctl.out";
    const int status = Shell(Ctl() + " " + args + " > '" + log + "' 2>&1");
    *out = ReadFile(log);
    return status;
  }
};

TEST_P(FlushRecoveryTest, ACommittedEpochIsFinishedBeforeTheMountServes) {
  ASSERT_NO_FATAL_FAILURE(VolumeWithOldContent());
  ASSERT_NO_FATAL_FAILURE(PlantEpoch("new", true));
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(ReadFile(M("app/node_modules/pkg/index.js")), "new");
  EXPECT_EQ(ReadFile(V("app/node_modules/pkg/index.js")), "new");
  EXPECT_FALSE(Exists(V(".detourfs/flush/" + flush::EpochDirName(1))));
  EXPECT_EQ(ReadFile(V(".detourfs/flush/last")), "1\n");
  const std::string log = fs_->Log();
  const size_t recovered =
      log.find("flush epoch 1 was committed when detourfs last stopped: finished");
  ASSERT_NE(recovered, std::string::npos) << log;
  // The log holds the fixture's first start too: the restart's serving
  // line is the last.
  EXPECT_LT(recovered, log.rfind("detourfs serving")) << "recovered before serving: " << log;
}

TEST_P(FlushRecoveryTest, AnUncommittedEpochLeavesTheVolumeAsItWas) {
  ASSERT_NO_FATAL_FAILURE(VolumeWithOldContent());
  ASSERT_NO_FATAL_FAILURE(PlantEpoch("new", false));
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(ReadFile(M("app/node_modules/pkg/index.js")), "old");
  EXPECT_FALSE(Exists(V(".detourfs/flush/" + flush::EpochDirName(1))));
  EXPECT_FALSE(Exists(V(".detourfs/flush/last")));
  EXPECT_NE(fs_->Log().find("flush epoch 1 was not committed"), std::string::npos) << fs_->Log();
}

TEST_P(FlushRecoveryTest, DetourctlRecoversAVolumeOffline) {
  ASSERT_NO_FATAL_FAILURE(VolumeWithOldContent());
  ASSERT_NO_FATAL_FAILURE(PlantEpoch("new", true));
  std::string out;
  EXPECT_EQ(RunCtl("recover '" + fs_->lower() + "'", &out), 0) << out;
  EXPECT_EQ(out, "epoch 1: committed, finished and verified\n");
  EXPECT_EQ(ReadFile(V("app/node_modules/pkg/index.js")), "new");
  EXPECT_EQ(RunCtl("recover '" + fs_->lower() + "'", &out), 0) << out;
  EXPECT_EQ(out, "nothing to recover: no flush was interrupted on '" + fs_->lower() + "'\n");
  // A committed manifest damaged since: never applied, and said.
  ASSERT_EQ(WriteFile(V("app/node_modules/pkg/index.js"), "old"), 0);
  ASSERT_NO_FATAL_FAILURE(PlantEpoch("newer", true));
  const std::string manifest = V(".detourfs/flush/" + flush::EpochDirName(2) + "/manifest");
  std::string bytes = ReadFile(manifest);
  bytes[bytes.size() - 3] ^= 0x10;
  ASSERT_EQ(WriteFile(manifest, bytes, 0600), 0);
  EXPECT_EQ(RunCtl("recover '" + fs_->lower() + "'", &out), 1) << out;
  EXPECT_NE(out.find("its manifest cannot be read"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(V("app/node_modules/pkg/index.js")), "old");
  // The way out: discarded on request.
  EXPECT_EQ(RunCtl("recover --discard 7 '" + fs_->lower() + "'", &out), 2) << out;
  EXPECT_NE(out.find("has no epoch 7 in flight"), std::string::npos) << out;
  EXPECT_EQ(RunCtl("recover --discard 2 '" + fs_->lower() + "'", &out), 0) << out;
  EXPECT_NE(out.find("epoch 2: discarded"), std::string::npos) << out;
  EXPECT_FALSE(Exists(V(".detourfs/flush/" + flush::EpochDirName(2))));
  EXPECT_EQ(ReadFile(V(".detourfs/flush/last")), "2\n");  // its number is never used again
  EXPECT_EQ(ReadFile(V("app/node_modules/pkg/index.js")), "old");
  ASSERT_NO_FATAL_FAILURE(PlantEpoch("third", true));
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(ReadFile(M("app/node_modules/pkg/index.js")), "third");
  EXPECT_EQ(RunCtl("recover '" + fs_->tree() + "'", &out), 2) << out;
  EXPECT_NE(out.find("is a FUSE mount"), std::string::npos) << out;
  // The volume itself (served from another path): the daemon holds it.
  EXPECT_EQ(RunCtl("recover '" + fs_->lower() + "'", &out), 2) << out;
  EXPECT_NE(out.find("is running on"), std::string::npos) << out;
  // And a second daemon on the same volume does not serve it.
  const std::string second = fs_->work() + "/second";
  ASSERT_EQ(::mkdir(second.c_str(), 0755), 0);
  const std::string log = fs_->work() + "/second.log";
  const char* bin = std::getenv("DETOURFS_BIN");
  ASSERT_NE(bin, nullptr);
  EXPECT_EQ(Shell(std::string(bin) + " -f --lower '" + fs_->lower() + "' -c '" + config_ + "' '" +
                  second + "' > '" + log + "' 2>&1"),
            3);
  EXPECT_NE(ReadFile(log).find("refusing to serve it twice"), std::string::npos) << ReadFile(log);
  EXPECT_FALSE(IsFuseMount(second));
}

DETOURFS_MOUNT_TEST_P(FlushRecoveryTest);

}  // namespace
}  // namespace detourfs::testing
