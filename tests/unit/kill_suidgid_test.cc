// CarryKillSuidgid and TakeKillSuidgid: the kernel's setuid-clearing marks
// survive the trip through libfuse 3.14's argument unpacking, and nothing
// else in a request changes.
#include "fuse/kill_suidgid.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>

#include <cstring>
#include <string>
#include <vector>

namespace detourfs::fuseops {
namespace {

// setxattr(2)'s XATTR_REPLACE.
constexpr uint32_t kXattrReplace = 2;

// A raw request as /dev/fuse delivers it: header, then the fixed argument.
template <typename Arg>
std::vector<char> Request(uint32_t opcode, const Arg& arg) {
  fuse_in_header in{};
  in.opcode = opcode;
  in.len = sizeof(in) + sizeof(arg);
  std::vector<char> buf(in.len);
  std::memcpy(buf.data(), &in, sizeof(in));
  std::memcpy(buf.data() + sizeof(in), &arg, sizeof(arg));
  return buf;
}

template <typename Arg>
Arg ArgumentOf(const std::vector<char>& buf) {
  Arg arg;
  std::memcpy(&arg, buf.data() + sizeof(fuse_in_header), sizeof(arg));
  return arg;
}

// What libfuse would hand an adapter as fuse_file_info::flags.
fuse_file_info FileInfo(uint32_t flags) {
  fuse_file_info fi{};
  fi.flags = static_cast<int>(flags);
  return fi;
}

TEST(KillSuidgidTest, MarkedWriteReachesTheAdapterAndLeavesTheOpenFlags) {
  fuse_write_in w{};
  w.flags = O_WRONLY | O_APPEND;
  w.write_flags = FUSE_WRITE_KILL_SUIDGID;
  w.size = 4096;
  std::vector<char> buf = Request(FUSE_WRITE, w);
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  const auto carried = ArgumentOf<fuse_write_in>(buf);
  EXPECT_EQ(carried.size, 4096U);
  fuse_file_info fi = FileInfo(carried.flags);
  EXPECT_TRUE(TakeKillSuidgid(&fi));
  EXPECT_EQ(fi.flags, O_WRONLY | O_APPEND) << "the carrier must be gone before open(2) sees it";
  EXPECT_FALSE(TakeKillSuidgid(&fi));
}

TEST(KillSuidgidTest, UnmarkedWriteIsUntouched) {
  fuse_write_in w{};
  w.flags = O_RDWR;
  w.write_flags = FUSE_WRITE_CACHE;
  std::vector<char> buf = Request(FUSE_WRITE, w);
  const std::vector<char> before = buf;
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  EXPECT_EQ(buf, before);
  fuse_file_info fi = FileInfo(ArgumentOf<fuse_write_in>(buf).flags);
  EXPECT_FALSE(TakeKillSuidgid(&fi));
}

TEST(KillSuidgidTest, MarkedOpenAndCreateCarryTheMark) {
  fuse_open_in o{};
  o.flags = O_WRONLY | O_TRUNC;
  o.open_flags = FUSE_OPEN_KILL_SUIDGID;
  std::vector<char> open_req = Request(FUSE_OPEN, o);
  EXPECT_EQ(CarryKillSuidgid(open_req.data(), open_req.size(), true), open_req.size());
  fuse_file_info fi = FileInfo(ArgumentOf<fuse_open_in>(open_req).flags);
  EXPECT_TRUE(TakeKillSuidgid(&fi));
  EXPECT_EQ(fi.flags, O_WRONLY | O_TRUNC);

  fuse_create_in c{};
  c.flags = O_WRONLY | O_CREAT | O_TRUNC;
  c.mode = S_IFREG | 04755;
  c.open_flags = FUSE_OPEN_KILL_SUIDGID;
  std::vector<char> create_req = Request(FUSE_CREATE, c);
  EXPECT_EQ(CarryKillSuidgid(create_req.data(), create_req.size(), true), create_req.size());
  const auto carried = ArgumentOf<fuse_create_in>(create_req);
  EXPECT_EQ(carried.mode, static_cast<uint32_t>(S_IFREG | 04755)) << "the mode asked for stays";
  fi = FileInfo(carried.flags);
  EXPECT_TRUE(TakeKillSuidgid(&fi));
  EXPECT_EQ(fi.flags, O_WRONLY | O_CREAT | O_TRUNC);
}

TEST(KillSuidgidTest, MarkedSetattrCarriesTheMarkInTheUnusedMode) {
  fuse_setattr_in s{};
  s.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
  s.size = 7;
  std::vector<char> buf = Request(FUSE_SETATTR, s);
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  const auto carried = ArgumentOf<fuse_setattr_in>(buf);
  EXPECT_EQ(carried.size, 7U);
  struct stat attr {};
  attr.st_mode = carried.mode;  // libfuse copies it whatever `valid` says
  EXPECT_TRUE(TakeKillSuidgid(attr, FUSE_SET_ATTR_SIZE));
}

TEST(KillSuidgidTest, SetattrWithoutTheMarkOrWithAModeCarriesNothing) {
  fuse_setattr_in plain{};
  plain.valid = FATTR_SIZE;
  std::vector<char> buf = Request(FUSE_SETATTR, plain);
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  struct stat attr {};
  attr.st_mode = ArgumentOf<fuse_setattr_in>(buf).mode;
  EXPECT_FALSE(TakeKillSuidgid(attr, FUSE_SET_ATTR_SIZE));

  // An explicit mode wins; a chmod to 06000 is not mistaken for the mark.
  fuse_setattr_in chmod{};
  chmod.valid = FATTR_MODE | FATTR_KILL_SUIDGID;
  chmod.mode = S_IFREG | 06000;
  buf = Request(FUSE_SETATTR, chmod);
  const std::vector<char> before = buf;
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  EXPECT_EQ(buf, before);
  attr.st_mode = kKillSuidgidMode;
  EXPECT_FALSE(TakeKillSuidgid(attr, FUSE_SET_ATTR_MODE));
}

TEST(KillSuidgidTest, ShortRequestsAndOtherOpcodesAreLeftAlone) {
  fuse_write_in w{};
  w.write_flags = FUSE_WRITE_KILL_SUIDGID;
  std::vector<char> buf = Request(FUSE_WRITE, w);
  buf.resize(sizeof(fuse_in_header) + 8);  // cut inside the argument
  std::vector<char> before = buf;
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  EXPECT_EQ(buf, before);
  EXPECT_EQ(CarryKillSuidgid(buf.data(), 3, true), 3U);  // not even a header
  EXPECT_EQ(buf, before);

  buf = Request(FUSE_GETATTR, w);  // the same bytes under another opcode
  before = buf;
  EXPECT_EQ(CarryKillSuidgid(buf.data(), buf.size(), true), buf.size());
  EXPECT_EQ(buf, before);
}

// An extended SETXATTR (FUSE_SETXATTR_EXT): header, {size, flags,
// setxattr_flags, padding}, name, value.
std::vector<char> ExtendedSetxattr(uint32_t flags, uint32_t setxattr_flags, const std::string& name,
                                   const std::string& value) {
  fuse_setxattr_in x{};
  x.size = static_cast<uint32_t>(value.size());
  x.flags = flags;
  x.setxattr_flags = setxattr_flags;
  fuse_in_header in{};
  in.opcode = FUSE_SETXATTR;
  in.len = static_cast<uint32_t>(sizeof(in) + sizeof(x) + name.size() + 1 + value.size());
  std::vector<char> buf(in.len);
  std::memcpy(buf.data(), &in, sizeof(in));
  std::memcpy(buf.data() + sizeof(in), &x, sizeof(x));
  std::memcpy(buf.data() + sizeof(in) + sizeof(x), name.c_str(), name.size() + 1);
  std::memcpy(buf.data() + sizeof(in) + sizeof(x) + name.size() + 1, value.data(), value.size());
  return buf;
}

TEST(KillSuidgidTest, AnExtendedSetxattrBecomesTheOldLayoutWithItsMark) {
  const std::string value = std::string("\x02\0\0\0", 4) + "acl";
  std::vector<char> buf = ExtendedSetxattr(kXattrReplace, FUSE_SETXATTR_ACL_KILL_SGID,
                                           "system.posix_acl_access", value);
  const size_t len = CarryKillSuidgid(buf.data(), buf.size(), true);
  ASSERT_EQ(len, buf.size() - 8);
  fuse_in_header in;
  std::memcpy(&in, buf.data(), sizeof(in));
  EXPECT_EQ(in.len, len);
  // What libfuse 3.14 reads: {size, flags}, then name and value.
  uint32_t compat[2];
  std::memcpy(compat, buf.data() + sizeof(in), sizeof(compat));
  EXPECT_EQ(compat[0], value.size());
  int flags = static_cast<int>(compat[1]);
  EXPECT_TRUE(TakeAclKillSgid(&flags));
  EXPECT_EQ(flags, kXattrReplace);
  const char* name = buf.data() + sizeof(in) + sizeof(compat);
  EXPECT_STREQ(name, "system.posix_acl_access");
  EXPECT_EQ(std::string(name + std::strlen(name) + 1, value.size()), value);
}

TEST(KillSuidgidTest, AnUnmarkedExtendedSetxattrKeepsItsFlags) {
  std::vector<char> buf = ExtendedSetxattr(0, 0, "user.k", "v");
  const size_t len = CarryKillSuidgid(buf.data(), buf.size(), true);
  ASSERT_EQ(len, buf.size() - 8);
  uint32_t compat[2];
  std::memcpy(compat, buf.data() + sizeof(fuse_in_header), sizeof(compat));
  int flags = static_cast<int>(compat[1]);
  EXPECT_FALSE(TakeAclKillSgid(&flags));
  EXPECT_EQ(flags, 0);
  // Without FUSE_SETXATTR_EXT the kernel sends the old layout: left alone.
  std::vector<char> old = buf;
  EXPECT_EQ(CarryKillSuidgid(old.data(), len, false), len);
  EXPECT_EQ(std::vector<char>(old.begin(), old.begin() + static_cast<long>(len)),
            std::vector<char>(buf.begin(), buf.begin() + static_cast<long>(len)));
}

}  // namespace
}  // namespace detourfs::fuseops
