// flakyfs's power cut on real mounts: after `powercut` the tree holds exactly
// what fsyncs made durable (README.md, "Power cuts"), case by case: data,
// new files, unlinks, renames of every kind, directories, hard links,
// attributes and xattrs, sync points, handles that died with the power.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "lib/files.h"
#include "lib/flaky_mount.h"
#include "lib/mounted_fs.h"

namespace detourfs::testing {
namespace {

class PowerCutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flakyfs-cut.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    source_ = root_ + "/source";
    mnt_ = root_ + "/mnt";
    ASSERT_EQ(::mkdir(source_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
  }
  void TearDown() override {
    flaky_.reset();
    Shell("rm -rf '" + root_ + "'");
  }
  // With the model on unless `config` says otherwise.
  void Mount() {
    FlakyConfig config;
    config.power_cut_model = true;
    Mount(config);
  }
  void Mount(const FlakyConfig& config) {
    std::string error;
    flaky_ = FlakyMount::Start(source_, mnt_, config, &error);
    ASSERT_NE(flaky_, nullptr) << error;
  }
  void Cut() {
    nlohmann::json summary;
    ASSERT_EQ(flaky_->PowerCut(&summary), "");
    ASSERT_TRUE(summary["errors"].empty()) << summary.dump();
  }
  std::string M(const std::string& rel) const { return mnt_ + "/" + rel; }
  std::string S(const std::string& rel) const { return source_ + "/" + rel; }
  bool Exists(const std::string& rel) const { return ::access(M(rel).c_str(), F_OK) == 0; }

  // Writes `data` through the mount (create or truncate), then closes; fsyncs
  // the file first when `fsync` says so.
  static void Put(const std::string& path, const std::string& data, bool fsync = false) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    if (fsync) {
      ASSERT_EQ(::fsync(fd), 0);
    }
    ASSERT_EQ(::close(fd), 0);
  }
  // fsync (or fdatasync) of a file or directory through the mount.
  static void Sync(const std::string& path, bool datasync = false) {
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(datasync ? ::fdatasync(fd) : ::fsync(fd), 0) << path;
    ::close(fd);
  }

  std::string root_, source_, mnt_;
  std::unique_ptr<FlakyMount> flaky_;
};

TEST_F(PowerCutTest, IsOffByDefaultAndCostsNothing) {
  WriteFile(S("f"), "old");
  Mount(FlakyConfig{});
  EXPECT_EQ(flaky_->Durability()["mode"], "off");
  EXPECT_EQ(flaky_->PowerCut().rfind("error powercut: durability is off", 0), 0U);
  Put(M("f"), "new");
  Sync(mnt_);
  EXPECT_EQ(ListDir(source_), std::vector<std::string>{"f"});  // no state directory
  EXPECT_EQ(flaky_->Counters()["ops"]["fsyncdir"], 1U);        // directory fsyncs arrive
  EXPECT_EQ(ReadFile(M("f")), "new");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, UnsyncedWritesAreLostSyncedWritesKept) {
  WriteFile(S("lost"), "durable");
  WriteFile(S("kept"), "durable");
  WriteFile(S("data"), "durable");
  WriteFile(S("half"), "durable");
  Mount();
  Put(M("lost"), "written, never synced, and longer");
  Put(M("kept"), "synced", /*fsync=*/true);
  Put(M("data"), "fdatasynced");
  Sync(M("data"), /*datasync=*/true);
  Put(M("half"), "synced", /*fsync=*/true);
  Put(M("half"), "then rewritten");
  EXPECT_EQ(flaky_->Durability()["saved_contents"], 2U);  // lost, half
  Cut();
  EXPECT_EQ(ReadFile(M("lost")), "durable");
  EXPECT_EQ(ReadFile(M("kept")), "synced");
  EXPECT_EQ(ReadFile(M("data")), "fdatasynced");
  EXPECT_EQ(ReadFile(M("half")), "synced");
  EXPECT_EQ(flaky_->Durability()["cuts"], 1U);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, NewFileNeedsItsOwnFsyncAndItsDirectorysFsync) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  Mount();
  Put(M("d/dir-only"), "x");
  Put(M("d/both"), "both", /*fsync=*/true);
  Sync(M("d"));
  Put(M("d/none"), "x");
  Put(M("d/file-only"), "x", /*fsync=*/true);
  Cut();
  EXPECT_FALSE(Exists("d/none"));
  EXPECT_FALSE(Exists("d/file-only"));  // its data was durable, its name was not
  // The name was durable, the content never was: back as it was made, empty.
  ASSERT_TRUE(Exists("d/dir-only"));
  EXPECT_EQ(ReadFile(M("d/dir-only")), "");
  EXPECT_EQ(ReadFile(M("d/both")), "both");
  EXPECT_EQ(ListDir(M("d")), (std::vector<std::string>{"both", "dir-only"}));
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, UnlinkComesBackUnlessTheDirectoryWasSynced) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  WriteFile(S("d/back"), "back");
  WriteFile(S("d/gone"), "gone");
  const ino_t ino = Lstat(S("d/back")).st_ino;
  Mount();
  ASSERT_EQ(::unlink(M("d/gone").c_str()), 0);
  Sync(M("d"));
  ASSERT_EQ(::unlink(M("d/back").c_str()), 0);
  EXPECT_FALSE(Exists("d/back"));
  Cut();
  EXPECT_FALSE(Exists("d/gone"));
  EXPECT_EQ(ReadFile(M("d/back")), "back");
  EXPECT_EQ(Lstat(M("d/back")).st_ino, ino);  // the same inode, not a copy
  EXPECT_EQ(ListDir(S(".flakyfs-powercut/graves")), std::vector<std::string>{});
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, RenameIsDurableOnlyOnceBothDirectoriesAreSynced) {
  ASSERT_EQ(::mkdir(S("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("b").c_str(), 0755), 0);
  WriteFile(S("a/x"), "x");
  Mount();
  ASSERT_EQ(::rename(M("a/x").c_str(), M("b/y").c_str()), 0);
  Sync(M("b"));
  Cut();
  EXPECT_EQ(ReadFile(M("a/x")), "x");
  EXPECT_FALSE(Exists("b/y"));
  ASSERT_EQ(::rename(M("a/x").c_str(), M("b/y").c_str()), 0);
  Sync(M("b"));
  Sync(M("a"));
  Cut();
  EXPECT_FALSE(Exists("a/x"));
  EXPECT_EQ(ReadFile(M("b/y")), "x");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, RenameOverAFileBringsTheReplacedFileBack) {
  WriteFile(S("target"), "old content");
  WriteFile(S("other"), "other");
  Mount();
  // The atomic-replace idiom, without the directory fsync.
  Put(M("tmp"), "new content", /*fsync=*/true);
  ASSERT_EQ(::rename(M("tmp").c_str(), M("target").c_str()), 0);
  Cut();
  EXPECT_EQ(ReadFile(M("target")), "old content");
  EXPECT_FALSE(Exists("tmp"));
  // With it, the replacement holds; the replaced file is gone for good.
  Put(M("tmp"), "new content", /*fsync=*/true);
  ASSERT_EQ(::rename(M("tmp").c_str(), M("target").c_str()), 0);
  Sync(mnt_);
  Cut();
  EXPECT_EQ(ReadFile(M("target")), "new content");
  EXPECT_EQ(ListDir(mnt_), (std::vector<std::string>{"other", "target"}));
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, ExchangeNoReplaceAndWhiteoutRenamesAreUndone) {
  WriteFile(S("a"), "a");
  WriteFile(S("b"), "b");
  WriteFile(S("c"), "c");
  WriteFile(S("w"), "w");
  Mount();
  ASSERT_EQ(::renameat2(AT_FDCWD, M("a").c_str(), AT_FDCWD, M("b").c_str(), RENAME_EXCHANGE), 0);
  ASSERT_EQ(ReadFile(M("a")), "b");
  ASSERT_EQ(::renameat2(AT_FDCWD, M("c").c_str(), AT_FDCWD, M("d").c_str(), RENAME_NOREPLACE), 0);
  EXPECT_EQ(::renameat2(AT_FDCWD, M("d").c_str(), AT_FDCWD, M("a").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, M("w").c_str(), AT_FDCWD, M("v").c_str(), RENAME_WHITEOUT), 0);
  struct stat st = Lstat(M("w"));
  ASSERT_TRUE(S_ISCHR(st.st_mode));  // the whiteout
  Cut();
  EXPECT_EQ(ReadFile(M("a")), "a");
  EXPECT_EQ(ReadFile(M("b")), "b");
  EXPECT_EQ(ReadFile(M("c")), "c");
  EXPECT_EQ(ReadFile(M("w")), "w");
  EXPECT_EQ(ListDir(mnt_), (std::vector<std::string>{"a", "b", "c", "w"}));
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, DirectoryRenameIsUndoneWithEverythingInside) {
  ASSERT_EQ(::mkdir(S("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("a/sub").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("a/sub/deep").c_str(), 0755), 0);
  WriteFile(S("a/sub/f"), "f");
  WriteFile(S("a/sub/deep/g"), "g");
  ASSERT_EQ(::mkdir(S("b").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("b/empty").c_str(), 0755), 0);
  Mount();
  // Over an empty directory, then changes inside at its new place.
  ASSERT_EQ(::rename(M("a/sub").c_str(), M("b/empty").c_str()), 0);
  Put(M("b/empty/f"), "changed");
  Put(M("b/empty/deep/new"), "new", /*fsync=*/true);
  Sync(M("b/empty/deep"));
  ASSERT_EQ(::unlink(M("b/empty/deep/g").c_str()), 0);
  Cut();
  EXPECT_EQ(ListDir(M("a/sub")), (std::vector<std::string>{"deep", "f"}));
  // deep was durable, and so is the entry its own fsync made, wherever deep was then.
  EXPECT_EQ(ListDir(M("a/sub/deep")), (std::vector<std::string>{"g", "new"}));
  EXPECT_EQ(ReadFile(M("a/sub/f")), "f");
  EXPECT_EQ(ReadFile(M("a/sub/deep/g")), "g");
  EXPECT_EQ(ReadFile(M("a/sub/deep/new")), "new");
  EXPECT_EQ(ListDir(M("b")), std::vector<std::string>{"empty"});
  EXPECT_EQ(ListDir(M("b/empty")), std::vector<std::string>{});
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, NewDirectoryNeedsItsParentSynced) {
  ASSERT_EQ(::mkdir(S("p").c_str(), 0755), 0);
  Mount();
  ASSERT_EQ(::mkdir(M("p/d").c_str(), 0755), 0);
  Put(M("p/d/f"), "f", /*fsync=*/true);
  Sync(M("p/d"));
  Cut();
  EXPECT_FALSE(Exists("p/d"));
  ASSERT_EQ(::mkdir(M("p/d").c_str(), 0755), 0);
  Put(M("p/d/f"), "f", /*fsync=*/true);
  Sync(M("p/d"));
  Sync(M("p"));
  Cut();
  EXPECT_EQ(ReadFile(M("p/d/f")), "f");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, RemovedDirectoryStaysGoneOnceItsParentIsSynced) {
  ASSERT_EQ(::mkdir(S("p").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(S("p/d").c_str(), 0755), 0);
  WriteFile(S("p/d/f"), "f");
  ASSERT_EQ(::mkdir(S("p/e").c_str(), 0755), 0);
  Mount();
  // Emptied without an fsync of d (which cannot be fsynced once removed).
  ASSERT_EQ(::unlink(M("p/d/f").c_str()), 0);
  ASSERT_EQ(::rmdir(M("p/d").c_str()), 0);
  ASSERT_EQ(::rmdir(M("p/e").c_str()), 0);
  Sync(M("p"));
  EXPECT_EQ(flaky_->Durability()["graves"], 0U);
  Cut();
  EXPECT_EQ(ListDir(M("p")), std::vector<std::string>{});
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, HardLinksAreUndoneAndLinkCountsStayTrue) {
  WriteFile(S("f"), "f");
  Mount();
  ASSERT_EQ(::link(M("f").c_str(), M("g").c_str()), 0);
  EXPECT_EQ(Lstat(M("g")).st_nlink, 2U);
  ASSERT_EQ(::unlink(M("f").c_str()), 0);
  // The model keeps f's inode linked in its graves; the mount must not show it.
  EXPECT_EQ(Lstat(M("g")).st_nlink, 1U);
  EXPECT_EQ(Lstat(S("g")).st_nlink, 2U);
  Cut();
  EXPECT_EQ(ListDir(mnt_), std::vector<std::string>{"f"});
  EXPECT_EQ(Lstat(M("f")).st_nlink, 1U);
  ASSERT_EQ(::link(M("f").c_str(), M("g").c_str()), 0);
  Sync(mnt_);
  Cut();
  EXPECT_EQ(Lstat(M("g")).st_ino, Lstat(M("f")).st_ino);
  EXPECT_EQ(Lstat(M("g")).st_nlink, 2U);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, AttributesAndXattrsNeedTheFilesFsync) {
  WriteFile(S("f"), "f");
  WriteFile(S("synced"), "s");
  WriteFile(S("datasynced"), "d");
  ASSERT_EQ(::setxattr(S("f").c_str(), "trusted.old", "1", 1, 0), 0);
  ASSERT_EQ(::chmod(S("f").c_str(), 0640), 0);
  const struct timespec times[2] = {{1000, 0}, {2000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, S("f").c_str(), times, 0), 0);
  ASSERT_EQ(::symlink("f", S("l").c_str()), 0);
  ASSERT_EQ(::lsetxattr(S("l").c_str(), "trusted.old", "1", 1, 0), 0);
  Mount();
  // A symlink's own xattrs are served (detourfs keeps ids on them), and
  // undone alike.
  ASSERT_EQ(::lsetxattr(M("l").c_str(), "trusted.new", "2", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::lremovexattr(M("l").c_str(), "trusted.old"), 0);
  ASSERT_EQ(::setxattr(M("f").c_str(), "trusted.new", "2", 1, 0), 0);
  ASSERT_EQ(::removexattr(M("f").c_str(), "trusted.old"), 0);
  ASSERT_EQ(::chmod(M("f").c_str(), 0600), 0);
  ASSERT_EQ(::chown(M("f").c_str(), 123, 456), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, M("f").c_str(), nullptr, 0), 0);
  ASSERT_EQ(::setxattr(M("synced").c_str(), "trusted.k", "v", 1, 0), 0);
  Sync(M("synced"));
  ASSERT_EQ(::setxattr(M("datasynced").c_str(), "trusted.k", "v", 1, 0), 0);
  Sync(M("datasynced"), /*datasync=*/true);  // data only: attributes stay unsynced
  Cut();
  char v[8] = {};
  EXPECT_EQ(::getxattr(M("f").c_str(), "trusted.old", v, sizeof(v)), 1);
  EXPECT_EQ(::getxattr(M("f").c_str(), "trusted.new", v, sizeof(v)), -1);
  EXPECT_EQ(::lgetxattr(M("l").c_str(), "trusted.old", v, sizeof(v)), 1);
  EXPECT_EQ(::lgetxattr(M("l").c_str(), "trusted.new", v, sizeof(v)), -1);
  EXPECT_EQ(ReadFile(M("l")), "f");
  struct stat st = Lstat(M("f"));
  EXPECT_EQ(st.st_mode & 07777, 0640U);
  EXPECT_EQ(st.st_uid, 0U);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(::getxattr(M("synced").c_str(), "trusted.k", v, sizeof(v)), 1);
  EXPECT_EQ(::getxattr(M("datasynced").c_str(), "trusted.k", v, sizeof(v)), -1);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

// `durability pending` names what a cut would undo: the inodes a change
// touched and the directories whose fsync it waits for.
TEST_F(PowerCutTest, PendingListsWhatACutWouldUndo) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  Mount();
  Put(M("d/new"), "x", /*fsync=*/true);
  nlohmann::json pending = nlohmann::json::parse(flaky_->Control("durability pending").substr(3));
  ASSERT_EQ(pending.size(), 1U) << pending.dump();
  EXPECT_EQ(pending[0]["keys"], (nlohmann::json{S("d"), S("d/new")})) << pending.dump();
  EXPECT_EQ(pending[0]["waits_for"], nlohmann::json{S("d")}) << pending.dump();
  Sync(M("d"));
  EXPECT_EQ(flaky_->Control("durability pending"), "ok []");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

// A file unlinked while open stays writable through its handle, as on any
// filesystem; the cut undoes the unlink, and the file comes back with what
// its fsync made durable.
TEST_F(PowerCutTest, AnUnlinkedOpenFileStaysWritable) {
  WriteFile(S("f"), "old");
  Mount();
  const int fd = ::open(M("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::unlink(M("f").c_str()), 0);
  EXPECT_EQ(::pwrite(fd, "new", 3, 0), 3) << std::strerror(errno);
  EXPECT_EQ(::fsync(fd), 0) << std::strerror(errno);
  char buf[4] = {};
  EXPECT_EQ(::pread(fd, buf, 3, 0), 3);
  EXPECT_STREQ(buf, "new");
  EXPECT_EQ(::close(fd), 0) << std::strerror(errno);
  Cut();
  EXPECT_EQ(ReadFile(M("f")), "new");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

// A symlink or a device cannot be fsynced: its xattrs are durable once its
// directory is.
TEST_F(PowerCutTest, XattrsOfWhatCannotBeFsyncedNeedTheirDirectorysFsync) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("x", S("d/l").c_str()), 0);
  ASSERT_EQ(::mknod(S("d/c").c_str(), S_IFCHR | 0600, 0), 0);
  ASSERT_EQ(::symlink("x", S("u").c_str()), 0);
  Mount();
  ASSERT_EQ(::lsetxattr(M("d/l").c_str(), "trusted.k", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::lsetxattr(M("d/c").c_str(), "trusted.k", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::lsetxattr(M("u").c_str(), "trusted.k", "1", 1, 0), 0);
  Sync(M("d"));
  Cut();
  char v[8] = {};
  EXPECT_EQ(::lgetxattr(M("d/l").c_str(), "trusted.k", v, sizeof(v)), 1);
  EXPECT_EQ(::lgetxattr(M("d/c").c_str(), "trusted.k", v, sizeof(v)), 1);
  EXPECT_EQ(::lgetxattr(M("u").c_str(), "trusted.k", v, sizeof(v)), -1);  // its directory was not
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, TruncationsAreUndone) {
  WriteFile(S("path"), "0123456789");
  WriteFile(S("handle"), "0123456789");
  WriteFile(S("otrunc"), "0123456789");
  Mount();
  ASSERT_EQ(::truncate(M("path").c_str(), 3), 0);
  int fd = ::open(M("handle").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 20), 0);
  ::close(fd);
  fd = ::open(M("otrunc").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(ReadFile(M("otrunc")), "");
  Cut();
  EXPECT_EQ(ReadFile(M("path")), "0123456789");
  EXPECT_EQ(ReadFile(M("handle")), "0123456789");
  EXPECT_EQ(ReadFile(M("otrunc")), "0123456789");
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, RootFsyncAndSyncCommandAreSyncPoints) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  WriteFile(S("d/f"), "old");
  Mount();
  Put(M("d/f"), "new");
  Put(M("d/g"), "g");
  Sync(mnt_);  // stands in for syncfs(2), which no FUSE daemon ever sees
  Put(M("d/h"), "h");
  Cut();
  EXPECT_EQ(ReadFile(M("d/f")), "new");
  EXPECT_EQ(ReadFile(M("d/g")), "g");
  EXPECT_FALSE(Exists("d/h"));
  Put(M("d/h"), "h");
  ASSERT_EQ(flaky_->Sync(), "");
  Cut();
  EXPECT_EQ(ReadFile(M("d/h")), "h");
  EXPECT_EQ(flaky_->Durability()["syncs"], 2U);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, WithoutRootSyncTheRootIsAnOrdinaryDirectory) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  FlakyConfig config;
  config.rules = {"durability strict root-sync=off"};
  Mount(config);
  Put(M("top"), "top", /*fsync=*/true);
  Put(M("d/f"), "f", /*fsync=*/true);
  Sync(mnt_);
  Cut();
  EXPECT_EQ(ReadFile(M("top")), "top");
  EXPECT_FALSE(Exists("d/f"));
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, HandlesOpenedBeforeTheCutDieWithIt) {
  WriteFile(S("f"), "f");
  Mount();
  int fd = ::open(M("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  DIR* dir = ::opendir(mnt_.c_str());
  ASSERT_NE(dir, nullptr);
  Cut();
  char c = 0;
  EXPECT_EQ(::pread(fd, &c, 1, 0), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(::fsync(fd), -1);
  EXPECT_EQ(errno, EIO);
  ::close(fd);
  ::closedir(dir);
  EXPECT_EQ(ReadFile(M("f")), "f");  // a new open is fine
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

TEST_F(PowerCutTest, StateDirectoryIsHiddenFromTheMount) {
  ASSERT_EQ(::mkdir(S("d").c_str(), 0755), 0);
  Mount();
  ASSERT_EQ(ListDir(S(".flakyfs-powercut")), (std::vector<std::string>{"graves", "saves"}));
  EXPECT_EQ(ListDir(mnt_), std::vector<std::string>{"d"});
  EXPECT_FALSE(Exists(".flakyfs-powercut"));
  EXPECT_EQ(::mkdir(M(".flakyfs-powercut").c_str(), 0755), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(Lstat(M("")).st_nlink + 1, Lstat(S("")).st_nlink);
  EXPECT_EQ(flaky_->Control("durability off"), "ok");
  EXPECT_EQ(ListDir(source_), std::vector<std::string>{"d"});
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

// Open fds in flakyfs, from /proc.
size_t OpenFds(pid_t pid) { return ListDir("/proc/" + std::to_string(pid) + "/fd").size(); }

TEST_F(PowerCutTest, ThousandsOfFilesNeedNoFdEach) {
  ASSERT_EQ(::mkdir(S("old").c_str(), 0755), 0);
  for (int i = 0; i < 1500; ++i) WriteFile(S("old/" + std::to_string(i)), "durable");
  Mount();
  const size_t fds_before = OpenFds(flaky_->pid());
  ASSERT_EQ(::mkdir(M("new").c_str(), 0755), 0);
  for (int i = 0; i < 1500; ++i) {
    Put(M("old/" + std::to_string(i)), "changed");
    Put(M("new/" + std::to_string(i)), "new");
  }
  ASSERT_EQ(::rename(M("old").c_str(), M("renamed").c_str()), 0);
  EXPECT_LT(OpenFds(flaky_->pid()), fds_before + 20);
  EXPECT_EQ(flaky_->Durability()["saved_contents"], 3000U);
  nlohmann::json summary;
  ASSERT_EQ(flaky_->PowerCut(&summary), "");
  EXPECT_EQ(summary["undone"], 1500U + 2U);  // 1500 creates, the mkdir, the rename
  EXPECT_EQ(ListDir(mnt_), std::vector<std::string>{"old"});
  for (int i = 0; i < 1500; i += 97) EXPECT_EQ(ReadFile(M("old/" + std::to_string(i))), "durable");
  EXPECT_EQ(ListDir(M("old")).size(), 1500U);
  EXPECT_LT(OpenFds(flaky_->pid()), fds_before + 20);
  EXPECT_EQ(flaky_->Stop(), 0) << flaky_->Log();
}

}  // namespace
}  // namespace detourfs::testing
