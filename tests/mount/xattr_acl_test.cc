// Extended attributes and POSIX ACLs through a real mount: set, get, list,
// remove with their errnos; ACL entries enforced for other users; default ACLs
// inherited by new files (and overriding the umask, as POSIX says).
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "lib/as_user.h"
#include "lib/files.h"
#include "lib/mount_test.h"

namespace detourfs::testing {
namespace {

using XattrAclTest = MountTest;

// Reads `path` as uid/gid: 0 if it read `expect`, else the errno (or -1).
int ReadAs(uid_t uid, gid_t gid, const std::string& path, const std::string& expect = "") {
  return AsUser(uid, gid, [&] {
    int e = 0;
    std::string got = ReadFile(path, &e);
    if (e != 0) return e;
    return expect.empty() || got == expect ? 0 : -1;
  });
}

TEST_P(XattrAclTest, UserXattrsRoundTrip) {
  ASSERT_EQ(WriteFile(M("f"), "x"), 0);
  const std::string p = M("f");
  ASSERT_EQ(::setxattr(p.c_str(), "user.color", "blue", 4, 0), 0);
  char buf[64] = {};
  EXPECT_EQ(::getxattr(p.c_str(), "user.color", nullptr, 0), 4);
  ASSERT_EQ(::getxattr(p.c_str(), "user.color", buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf, 4), "blue");
  EXPECT_EQ(Err(::getxattr(p.c_str(), "user.color", buf, 2)), ERANGE);
  EXPECT_EQ(Err(::setxattr(p.c_str(), "user.color", "red", 3, XATTR_CREATE)), EEXIST);
  EXPECT_EQ(Err(::setxattr(p.c_str(), "user.size", "1", 1, XATTR_REPLACE)), ENODATA);
  ASSERT_EQ(::setxattr(p.c_str(), "user.size", "1", 1, 0), 0);
  char list[256] = {};
  ssize_t n = ::listxattr(p.c_str(), list, sizeof(list));
  ASSERT_GT(n, 0);
  std::string names(list, static_cast<size_t>(n));
  EXPECT_NE(names.find("user.color"), std::string::npos);
  EXPECT_NE(names.find("user.size"), std::string::npos);
  ASSERT_EQ(::removexattr(p.c_str(), "user.color"), 0);
  EXPECT_EQ(Err(::getxattr(p.c_str(), "user.color", buf, sizeof(buf))), ENODATA);
  EXPECT_EQ(Err(::removexattr(p.c_str(), "user.color")), ENODATA);
  // Directories carry xattrs too.
  ASSERT_EQ(::mkdir(M("d").c_str(), 0755), 0);
  EXPECT_EQ(::setxattr(M("d").c_str(), "user.k", "v", 1, 0), 0);
  EXPECT_EQ(::getxattr(M("d").c_str(), "user.k", buf, sizeof(buf)), 1);
}

TEST_P(XattrAclTest, OnlyTheOwnerMaySetUserXattrs) {
  ASSERT_EQ(WriteFile(M("f"), "x", 0644), 0);
  const std::string p = M("f");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return Err(::setxattr(p.c_str(), "user.a", "b", 1, 0)); }),
            EACCES);
  EXPECT_EQ(
      AsUser(kUser, kGroup, [&] { return Err(::setxattr(p.c_str(), "trusted.a", "b", 1, 0)); }),
      EPERM);
}

TEST_P(XattrAclTest, AclEntryGrantsAndDeniesOtherUsers) {
  ASSERT_EQ(WriteFile(M("secret"), "s3cret", 0600), 0);
  ASSERT_EQ(::chmod(M("secret").c_str(), 0600), 0);
  const std::string p = M("secret");
  EXPECT_EQ(ReadAs(kUser, kGroup, p), EACCES);
  ASSERT_EQ(Shell("setfacl -m u:" + std::to_string(kUser) + ":r " + p), 0);
  EXPECT_EQ(ReadAs(kUser, kGroup, p, "s3cret"), 0);
  EXPECT_EQ(ReadAs(kOtherUser, kOtherGroup, p), EACCES);
  // The mask limits named entries; the mode's group bits show the mask.
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
  EXPECT_EQ(ReadAs(kUser, kGroup, p), EACCES);
}

TEST_P(XattrAclTest, DefaultAclIsInheritedAndOverridesUmask) {
  ASSERT_EQ(::mkdir(M("shared").c_str(), 0755), 0);
  ASSERT_EQ(Shell("setfacl -d -m u::rwx,g::rwx,o::r-x,u:" + std::to_string(kUser) + ":rwx " +
                  M("shared")),
            0);
  const std::string dir = M("shared");
  // umask 077 would leave nothing for group and other; the default ACL wins.
  ASSERT_EQ(Shell("sh -c 'umask 077; echo x > " + dir + "/f; mkdir " + dir + "/sub'"), 0);
  std::string acl = ShellOutput("getfacl -n -c " + dir + "/f 2>/dev/null");
  EXPECT_NE(acl.find("user:" + std::to_string(kUser) + ":rwx"), std::string::npos) << acl;
  EXPECT_EQ(Lstat(dir + "/f").st_mode & 0777, 0664U) << acl;
  std::string sub = ShellOutput("getfacl -n -c " + dir + "/sub 2>/dev/null");
  EXPECT_NE(sub.find("default:user:" + std::to_string(kUser) + ":rwx"), std::string::npos) << sub;
  // Without a default ACL the umask applies as usual.
  ASSERT_EQ(Shell("sh -c 'umask 077; echo x > " + M("plain") + "'"), 0);
  EXPECT_EQ(Lstat(M("plain")).st_mode & 0777, 0600U);
}

// Setting an access ACL as the file's owner from outside its group clears
// S_ISGID, as on a local filesystem: the kernel marks the request
// (FUSE_SETXATTR_ACL_KILL_SGID) and the daemon, which sets the ACL as root,
// clears the bit. An owner in the file's group keeps it.
TEST_P(XattrAclTest, SettingAnAclOutsideTheFilesGroupClearsSetgid) {
  const std::string p = M("tool");
  ASSERT_EQ(WriteFile(p, "#!/bin/sh\n", 0755), 0);
  ASSERT_EQ(::chown(p.c_str(), kUser, kOtherGroup), 0);
  ASSERT_EQ(::chmod(p.c_str(), 02775), 0);
  auto as_owner_in = [](gid_t gid) {
    return "setpriv --reuid=" + std::to_string(kUser) + " --regid=" + std::to_string(gid) +
           " --clear-groups setfacl -m u:" + std::to_string(kOtherUser) + ":r ";
  };
  ASSERT_EQ(Shell(as_owner_in(kGroup) + p), 0);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 0775U);
  EXPECT_NE(ShellOutput("getfacl -n -c " + p).find("user:" + std::to_string(kOtherUser) + ":r--"),
            std::string::npos);
  ASSERT_EQ(::chmod(p.c_str(), 02775), 0);
  ASSERT_EQ(Shell(as_owner_in(kOtherGroup) + p), 0);
  EXPECT_EQ(Lstat(p).st_mode & 07777, 02775U);
}

// trusted.detourfs.* marks whiteouts and opaque directories on the tiers:
// no caller may set, remove or even see one, so nothing made through the
// mount (here: a device 0:0, the overlay's whiteout shape) can pose as one.
class ReservedXattrTest : public MountTest {
 protected:
  MountConfig Config() const override {
    MountConfig c = MountTest::Config();
    c.separate_lower = true;  // to set a marker underneath, as a tier would hold one
    return c;
  }
};

TEST_P(ReservedXattrTest, DetourfsMarkerNamesAreReservedAndHidden) {
  ASSERT_EQ(WriteFile(M("f"), "x"), 0);
  EXPECT_EQ(Err(::setxattr(M("f").c_str(), "trusted.detourfs.whiteout", "y", 1, 0)), EPERM);
  EXPECT_EQ(Err(::removexattr(M("f").c_str(), "trusted.detourfs.opaque")), EPERM);
  ASSERT_EQ(::mknod(M("dev").c_str(), S_IFCHR | 0600, 0), 0);
  EXPECT_EQ(Err(::setxattr(M("dev").c_str(), "trusted.detourfs.whiteout", "y", 1, 0)), EPERM);
  // A marker set underneath (as the overlay does on a tier) stays invisible.
  ASSERT_EQ(::setxattr((fs_->lower() + "/f").c_str(), "trusted.detourfs.opaque", "y", 1, 0), 0);
  ASSERT_EQ(::setxattr(M("f").c_str(), "user.kept", "1", 1, 0), 0);
  char value[8];
  EXPECT_EQ(Err(::getxattr(M("f").c_str(), "trusted.detourfs.opaque", value, sizeof(value))),
            ENODATA);
  char list[256];
  ssize_t need = ::listxattr(M("f").c_str(), nullptr, 0);
  ssize_t n = ::listxattr(M("f").c_str(), list, sizeof(list));
  ASSERT_GT(n, 0);
  EXPECT_EQ(need, n);  // the size asked for is the size of what comes back
  std::string names(list, static_cast<size_t>(n));
  EXPECT_NE(names.find("user.kept"), std::string::npos);
  EXPECT_EQ(names.find("detourfs"), std::string::npos);
  // Other trusted.* names pass through as before.
  EXPECT_EQ(::setxattr(M("f").c_str(), "trusted.other", "z", 1, 0), 0);
  EXPECT_EQ(::getxattr(M("f").c_str(), "trusted.other", value, sizeof(value)), 1);
}

DETOURFS_MOUNT_TEST_P(XattrAclTest);
DETOURFS_MOUNT_TEST_P(ReservedXattrTest);

}  // namespace
}  // namespace detourfs::testing
