// Every failpoint (store/failpoints.h, kFailpoints) on a real mount: the
// daemon is killed at that step of a change made through the mount, started
// again, and the tree the change touched must be exactly as before it or as
// after it (compared with the same change made on a plain directory) — never
// a mix, never a deleted entry back, never an internal name in sight — and
// the layers' work directories must be empty. Each failpoint must be reached
// by its change: a failpoint no change reaches fails the test.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "lib/files.h"
#include "mount/routing_fixture.h"
#include "store/failpoints.h"

namespace detourfs::testing {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// A change and the tree it works in: `setup` runs through the mount (not
// armed) inside the scenario's own directory, then `change` — both shell
// commands run there.
struct Scenario {
  const char* failpoint;
  const char* setup;
  const char* change;
  // Old-or-new does not hold for a write cut short by a crash: data not yet
  // synced may be partly there. Such a change checks the file instead.
  bool partial_write = false;
};

// Volume content every scenario starts from (a home on the day detourfs is
// rolled out), made on the volume directly.
constexpr char kVolumeTree[] =
    "mkdir -p node_modules/pkg node_modules/gone src && echo a > node_modules/a.js && "
    "echo b > node_modules/pkg/b.js && echo c > node_modules/gone/c.js && echo s > src/s.js";

// renameat2(proj, other, RENAME_EXCHANGE) (python3 comes with meson).
constexpr char kExchangeSetup[] =
    "mkdir -p proj/node_modules/x other && echo 1 > proj/node_modules/x/f && "
    "echo m > proj/main.js && echo o > other/o.js";
constexpr char kExchange[] =
    "python3 -c \"import ctypes, sys; sys.exit(ctypes.CDLL(None).renameat2("
    "-100, b'proj', -100, b'other', 2))\"";

constexpr char kIndexMoveSetup[] =
    "mkdir dist && ln src/s.js node_modules/s.js && rm node_modules/s.js";

const Scenario kScenarios[] = {
    {"make.built", "rm node_modules/a.js", "echo new > node_modules/a.js"},
    {"remove.whiteout", "echo up >> node_modules/a.js", "rm node_modules/a.js"},
    {"copyup.copied", "true", "echo more >> node_modules/pkg/b.js"},
    {"dir.built", "true", "mkdir node_modules/pkg/sub"},
    {"intent.written", "mkdir node_modules/new && echo n > node_modules/new/n.js",
     "mv node_modules/new src/new"},
    {"intent.step", "mkdir node_modules/new && echo n > node_modules/new/n.js",
     "mv node_modules/new src/new"},
    {"intent.done", "mkdir node_modules/new && echo n > node_modules/new/n.js",
     "mv node_modules/new src/new"},
    // A project renamed with its node_modules on a tier: the volume part
    // renamed, the tier part trashed at the new name, then renamed there.
    // A crash after the publish must not run the clearing step again.
    {"intent.done", "mkdir -p proj/node_modules/x && echo 1 > proj/node_modules/x/f",
     "mv proj proj2"},
    {"intent.step@2", "mkdir -p proj/node_modules/x && echo 1 > proj/node_modules/x/f",
     "mv proj proj2"},
    // A tree moved across layers over an empty directory (cleared first).
    {"intent.done", "mkdir node_modules/new src/new && echo n > node_modules/new/n.js",
     "mv -T node_modules/new src/new"},
    {"intent.step@2", "mkdir node_modules/new src/new && echo n > node_modules/new/n.js",
     "mv -T node_modules/new src/new"},
    // Two projects exchanged (RENAME_EXCHANGE), one with node_modules on a
    // tier: the volume entries swap through held/ in three renames, then
    // the tier part moves. A crash between any two steps finishes it.
    {"intent.step", kExchangeSetup, kExchange},
    {"intent.step@2", kExchangeSetup, kExchange},
    {"intent.step@3", kExchangeSetup, kExchange},
    {"intent.done", kExchangeSetup, kExchange},
    {"spill.copied", "head -c 3145728 /dev/zero | tr '\\0' x > node_modules/big.bin && sync",
     "head -c 3145728 /dev/zero | tr '\\0' y >> node_modules/big.bin", true},
    {"spill.marked", "head -c 3145728 /dev/zero | tr '\\0' x > node_modules/big.bin && sync",
     "head -c 3145728 /dev/zero | tr '\\0' y >> node_modules/big.bin", true},
    {"move.copied", "mkdir node_modules/new && echo n > node_modules/new/n.js",
     "mv node_modules src/nm.old"},
    {"move.published", "mkdir node_modules/new && echo n > node_modules/new/n.js",
     "mv node_modules src/nm.old"},
    // A volume file in the memory tier's index with only volume names left
    // linked into dist/ (the disk tier): its entry moves there in two steps
    // (published in the disk tier's index, the memory one trashed).
    {"intent.step", kIndexMoveSetup, "ln src/s.js dist/s.js"},
    {"intent.done", kIndexMoveSetup, "ln src/s.js dist/s.js"},
    // A volume file copied up while a reader has it open: the reader's
    // handle follows the copy.
    {"handle.follow", "true", "exec 3<node_modules/a.js && echo more >> node_modules/a.js"},
};

class FailpointTest : public TieredMountTest {
 protected:
  // A 4 MiB memory tier, so a file of 6 MiB spills to the disk tier; dist/
  // on the disk tier.
  FailpointTest()
      : TieredMountTest("4M", "",
                        "[[route]]\nmatch = \"**/node_modules\"\ntier = \"memory\"\n"
                        "[[route]]\nmatch = \"**/dist/\"\ntier = \"disk\"\n",
                        "64M") {}

  // Paths, types, sizes, link counts, symlink targets and checksums.
  static std::string Describe(const std::string& dir) {
    return ShellOutput("cd '" + dir +
                       "' && find . -printf '%P %y %m\\n' | sort && "
                       "find . ! -type d -printf '%P %s %n %l\\n' | sort && "
                       "find . -type f -print0 | sort -z | xargs -0 -r md5sum");
  }
  static std::string In(const std::string& dir, const std::string& command) {
    return "cd '" + dir + "' && " + command + " 2>/dev/null";
  }
  // The work directories of the volume and the tiers: empty once started.
  std::vector<std::string> WorkLeft() const {
    std::vector<std::string> left;
    for (const std::string& w :
         {V(".detourfs/work"), memory_.path() + "/tier/work", disk_ + "/tier/work",
          memory_.path() + "/tier/intents", disk_ + "/tier/intents"}) {
      for (const std::string& n : ListDir(w)) left.push_back(w + "/" + n);
    }
    return left;
  }
  // "name" or "name@N" (the Nth time it is reached).
  static std::string Name(const Scenario& s) {
    const std::string f = s.failpoint;
    return f.substr(0, f.find('@'));
  }
  bool StartArmed(const Scenario& s) {
    const std::string f = s.failpoint;
    const size_t at = f.find('@');
    return RestartArmed(at == std::string::npos ? f + "=kill"
                                                : f.substr(0, at) + "=kill" + f.substr(at));
  }
  // Stops the daemon and starts it again with DETOURFS_FAILPOINTS=`spec`
  // (and DETOURFS_FAILPOINT_DIR=`wait_dir` when given).
  bool RestartArmed(const std::string& spec, const std::string& wait_dir = "") {
    if (fs_->Stop() != 0) return false;
    ::setenv("DETOURFS_FAILPOINTS", spec.c_str(), 1);
    if (!wait_dir.empty()) ::setenv("DETOURFS_FAILPOINT_DIR", wait_dir.c_str(), 1);
    std::string error;
    const bool started = fs_->Restart(&error);
    ::unsetenv("DETOURFS_FAILPOINTS");
    ::unsetenv("DETOURFS_FAILPOINT_DIR");
    EXPECT_TRUE(started) << error;
    return started;
  }
};

TEST_P(FailpointTest, AKillAtEveryFailpointLeavesTheOldStateOrTheNew) {
  expect_clean_log_ = false;  // each armed start and each kill is logged as a warning
  std::vector<std::string> named;
  for (const char* f : kFailpoints) named.emplace_back(f);
  for (const Scenario& s : kScenarios) {
    EXPECT_NE(std::find(named.begin(), named.end(), Name(s)), named.end()) << s.failpoint;
  }
  // Every failpoint has its scenario.
  for (const std::string& f : named) {
    bool covered = false;
    for (const Scenario& s : kScenarios) covered = covered || f == Name(s);
    EXPECT_TRUE(covered) << "no scenario reaches failpoint " << f;
  }

  char tmpl[] = "/tmp/detourfs-failpoint-ref.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string ref_root = tmpl;
  int n = 0;
  for (const Scenario& s : kScenarios) {
    SCOPED_TRACE(s.failpoint);
    const std::string dir = "s" + std::to_string(n++);
    ASSERT_EQ(::mkdir(V(dir).c_str(), 0755), 0);
    ASSERT_EQ(Shell(In(V(dir), kVolumeTree)), 0);
    ASSERT_EQ(Shell(In(M(dir), s.setup)), 0);
    const std::string before = Describe(M(dir));
    // The change made on a plain copy of the merged tree: the state after.
    const std::string ref = ref_root + "/" + dir;
    ASSERT_EQ(Shell("cp -a '" + M(dir) + "' '" + ref + "'"), 0);
    ASSERT_EQ(Describe(ref), before);
    ASSERT_EQ(Shell(In(ref, s.change)), 0);
    const std::string after = Describe(ref);
    ASSERT_NE(before, after);

    ASSERT_TRUE(StartArmed(s));
    const int status = Shell(In(M(dir), s.change));
    ASSERT_TRUE(fs_->AwaitDeath(20))
        << "the change did not reach " << s.failpoint << " (status " << status << ")";
    std::string error;
    ASSERT_TRUE(fs_->Restart(&error)) << error;

    EXPECT_EQ(WorkLeft(), std::vector<std::string>{});
    EXPECT_EQ(ShellOutput("find '" + fs_->tree() + "' -name '.detourfs*'"), "");
    const std::string now = Describe(M(dir));
    if (!s.partial_write) {
      EXPECT_TRUE(now == before || now == after) << "before:\n"
                                                 << before << "after:\n"
                                                 << after << "now:\n"
                                                 << now;
    } else {
      // What was synced is whole; what follows it is a prefix of the write.
      const std::string data = ReadFile(M(dir + "/node_modules/big.bin"));
      const std::string want = ReadFile(ref + "/node_modules/big.bin");
      EXPECT_GE(data.size(), 3 * kMiB);
      EXPECT_LE(data.size(), want.size());
      EXPECT_TRUE(want.compare(0, data.size(), data) == 0) << "not a prefix of the write";
    }
    // The rest of the tree is untouched by the crash, and the change can be
    // made again (from where it stands) to the same result.
    if (now == before) {
      EXPECT_EQ(Shell(In(M(dir), s.change)), 0);
      EXPECT_EQ(Describe(M(dir)), after);
    }
  }
  // A clean start after all of them finds nothing left to recover.
  ASSERT_EQ(fs_->Stop(), 0);
  const size_t size = fs_->Log().size();
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  EXPECT_EQ(fs_->Log().find("finished a change a crash interrupted", size), std::string::npos);
  EXPECT_EQ(WorkLeft(), std::vector<std::string>{});
  Shell("rm -rf '" + ref_root + "'");
}

// The record of a change cannot take its progress (the disk tier failing):
// the change stops after its first step — no step runs unrecorded, since a
// crash would replay steps that all ran, and an exchange replayed swaps
// back (review 2026-12-07 #1) — the caller gets the error, and the next
// start finishes it: the exchange whole, nothing lost.
TEST_P(FailpointTest, AChangeWhoseProgressCannotBeRecordedIsFinishedAtTheNextStart) {
  expect_clean_log_ = false;  // the failed step and the armed start are logged
  ASSERT_EQ(::mkdir(V("x").c_str(), 0755), 0);
  ASSERT_EQ(Shell(In(V("x"), kVolumeTree)), 0);
  ASSERT_EQ(Shell(In(M("x"), kExchangeSetup)), 0);
  char tmpl[] = "/tmp/detourfs-failpoint-ref.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string ref = std::string(tmpl) + "/x";
  ASSERT_EQ(Shell("cp -a '" + M("x") + "' '" + ref + "'"), 0);
  ASSERT_EQ(Shell(In(ref, kExchange)), 0);
  const std::string after = Describe(ref);
  Shell("rm -rf '" + std::string(tmpl) + "'");

  ASSERT_TRUE(RestartArmed("intent.step=eio"));
  std::string error;
  EXPECT_NE(Shell(In(M("x"), kExchange)), 0);
  ASSERT_EQ(fs_->Stop(), 0);
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  EXPECT_NE(fs_->Log().find("finished a change a crash interrupted"), std::string::npos);
  EXPECT_EQ(Describe(M("x")), after);
  EXPECT_EQ(WorkLeft(), std::vector<std::string>{});
}

// Review 3 #1: a directory above two trees exchanged across layers is
// renamed while their copies are made between the rounds. The publishing
// round finds a copy stale and asks for it again between the rounds; it
// used to copy it under the two nodes' locks, where the copy's first read
// lock of the node its own thread held for writing aborted the daemon.
TEST_P(FailpointTest, AnExchangeWhoseCopyWentStaleIsCopiedAgainBetweenTheRounds) {
  expect_clean_log_ = false;  // the armed start and the wait are logged as warnings
  ASSERT_EQ(Shell("mkdir -p '" + M("w/app/node_modules/pkg") + "' '" + M("w/app/vendor/lib") +
                  "' && echo a > '" + M("w/app/node_modules/pkg/a.js") + "' && echo b > '" +
                  M("w/app/vendor/lib/b.js") + "'"),
            0);
  char tmpl[] = "/tmp/detourfs-failpoint-wait.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string waits = tmpl;
  ASSERT_TRUE(RestartArmed("move.copied=wait", waits));

  int exchanged = -1;
  std::thread exchange([&] {
    exchanged = ::renameat2(AT_FDCWD, M("w/app/node_modules").c_str(), AT_FDCWD,
                            M("w/app/vendor").c_str(), RENAME_EXCHANGE) == 0
                    ? 0
                    : errno;
  });
  // The first tree's copy is made, and waits.
  bool waiting = false;
  for (int i = 0; i < 3000 && !waiting; ++i) {
    waiting = Exists(waits + "/move.copied.waiting");
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(waiting) << fs_->Log();
  const int moved = ::rename(M("w").c_str(), M("w2").c_str()) == 0 ? 0 : errno;
  EXPECT_EQ(WriteFile(waits + "/move.copied.go", "go"), 0);
  exchange.join();
  Shell("rm -rf '" + waits + "'");
  EXPECT_EQ(moved, 0) << std::strerror(moved);
  EXPECT_EQ(exchanged, 0) << std::strerror(exchanged) << fs_->Log();
  EXPECT_EQ(ReadFile(M("w2/app/vendor/pkg/a.js")), "a\n");
  EXPECT_EQ(ReadFile(M("w2/app/node_modules/lib/b.js")), "b\n");
  // Each on the layer its new name is routed to.
  EXPECT_TRUE(Exists(V("w2/app/vendor/pkg/a.js")));
  EXPECT_TRUE(Exists(Mem("w2/app/node_modules/lib/b.js")));
  EXPECT_FALSE(Exists(V("w2/app/node_modules/lib/b.js")));
  // The publishing round saw the copy go stale, and it was made again.
  EXPECT_NE(fs_->Log().find("went stale ('w2/app/"), std::string::npos) << fs_->Log();
  EXPECT_EQ(fs_->Stop(), 0);
  EXPECT_EQ(WorkLeft(), std::vector<std::string>{});
}

// Review #2: an open file whose data moves (here: renamed from its tier to
// the volume) while its handle cannot be reopened on the new copy (the
// failpoint answers EIO, as a full fd table or a failing volume would) does
// not fail from then on: it lets go of the old copy and opens the new one at
// its next use, so its writes land in the moved file.
TEST_P(FailpointTest, AnOpenFileThatCouldNotFollowItsMoveFollowsAtItsNextUse) {
  expect_clean_log_ = false;  // the armed start and the failed reopen are logged as warnings
  ASSERT_EQ(::mkdir(V("src").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/x.js"), "tier\n"), 0);
  ASSERT_TRUE(Exists(Mem("node_modules/x.js")));
  ASSERT_TRUE(RestartArmed("handle.follow=eio"));

  const int fd = ::open(M("node_modules/x.js").c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::rename(M("node_modules/x.js").c_str(), M("src/x.js").c_str()), 0)
      << std::strerror(errno);
  EXPECT_TRUE(Exists(V("src/x.js")));
  EXPECT_FALSE(Exists(Mem("node_modules/x.js")));
  // Written and read through the handle that could not follow at the move.
  const std::string more = "written after the move\n";
  EXPECT_EQ(::pwrite(fd, more.data(), more.size(), 5), static_cast<ssize_t>(more.size()))
      << std::strerror(errno);
  EXPECT_EQ(::fsync(fd), 0) << std::strerror(errno);
  char buf[64] = {};
  EXPECT_EQ(::pread(fd, buf, 4, 0), 4) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, 4), "tier");
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(5 + more.size()));
  ASSERT_EQ(::close(fd), 0);
  // The writes are in the moved file, on the volume.
  EXPECT_EQ(ReadFile(M("src/x.js")), "tier\n" + more);
  EXPECT_EQ(ReadFile(V("src/x.js")), "tier\n" + more);
  EXPECT_NE(fs_->Log().find("could not follow it to the volume"), std::string::npos) << fs_->Log();
  EXPECT_NE(fs_->Log().find("followed its data to the volume"), std::string::npos) << fs_->Log();
}

// Review #5: a kill after a tree's move to the volume was published and
// before the volume's copy was looked at: the next start keeps the tier's
// copy aside (kept/) instead of clearing it with the rest of work/.
TEST_P(FailpointTest, ATiersCopyLeftByAKillBeforeTheVolumeWasCheckedIsKept) {
  expect_clean_log_ = false;  // the armed start and the copy kept aside are logged as warnings
  ASSERT_EQ(::mkdir(V("src").c_str(), 0755), 0);
  ASSERT_EQ(Shell("mkdir -p '" + M("node_modules/new") + "' && echo n > '" +
                  M("node_modules/new/n.js") + "'"),
            0);
  ASSERT_TRUE(RestartArmed("move.published=kill"));
  std::string error;
  EXPECT_NE(::rename(M("node_modules").c_str(), M("src/nm").c_str()), 0);
  ASSERT_TRUE(fs_->AwaitDeath(20));
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  // Published: on the volume, whole.
  EXPECT_EQ(ReadFile(M("src/nm/new/n.js")), "n\n");
  EXPECT_FALSE(Exists(M("node_modules")));
  EXPECT_EQ(WorkLeft(), std::vector<std::string>{});
  // The tier's copy, kept.
  const std::vector<std::string> kept = ListDir(memory_.path() + "/tier/kept");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].rfind("leaving.", 0), 0u);
  EXPECT_EQ(ReadFile(memory_.path() + "/tier/kept/" + kept[0] + "/new/n.js"), "n\n");
  EXPECT_NE(fs_->Log().find("a move to the volume was cut short"), std::string::npos) << fs_->Log();
}

DETOURFS_MOUNT_TEST_P(FailpointTest);

}  // namespace
}  // namespace detourfs::testing
