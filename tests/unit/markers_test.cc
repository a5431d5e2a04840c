// Markers: index names, the id record's encoding, reserved xattr names, and
// the markers on real files (root: trusted.* xattrs and 0:0 devices).
#include "store/markers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "scratch_dir.h"

namespace detourfs::markers {
namespace {

// --- Pure encoding --------------------------------------------------------

TEST(IndexNameTest, SixteenLowercaseHexDigits) {
  EXPECT_EQ(IndexName(0), "0000000000000000");
  EXPECT_EQ(IndexName(0x1234abcdULL), "000000001234abcd");
  EXPECT_EQ(IndexName(UINT64_MAX), "ffffffffffffffff");
  EXPECT_EQ(IndexName(uint64_t{1} << 62), "4000000000000000");
}

TEST(IndexNameTest, NamesSortAsTheirIds) {
  const uint64_t ids[] = {0, 1, 15, 16, 255, 0x100000000ULL, uint64_t{1} << 62, UINT64_MAX};
  for (size_t i = 0; i + 1 < std::size(ids); ++i) {
    EXPECT_LT(IndexName(ids[i]), IndexName(ids[i + 1])) << ids[i];
    EXPECT_EQ(IndexName(ids[i]).size(), 16U);
  }
}

TEST(IdRecordEncodingTest, IdOnlyIsEightLittleEndianBytes) {
  unsigned char buf[18] = {};
  ASSERT_EQ(EncodeIdRecord(IdRecord{0x0102030405060708ULL, false, {}}, buf), 8U);
  const unsigned char want[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(std::string(buf, buf + 8), std::string(want, want + 8));
}

TEST(IdRecordEncodingTest, OpaqueAddsAFlagsByte) {
  unsigned char buf[18] = {};
  ASSERT_EQ(EncodeIdRecord(IdRecord{5, true, {}}, buf), 9U);
  EXPECT_EQ(buf[0], 5);
  EXPECT_EQ(buf[8], 1);
}

TEST(IdRecordEncodingTest, SpillAddsTokenAndLayer) {
  unsigned char buf[18] = {};
  IdRecord rec{7, false, SpillRef{Layer::kDisk, 0xAABBCCDDEEFF0011ULL}};
  ASSERT_EQ(EncodeIdRecord(rec, buf), 18U);
  EXPECT_EQ(buf[0], 7);
  EXPECT_EQ(buf[8], 0) << "not opaque";
  EXPECT_EQ(buf[9], 0x11);  // token, little-endian
  EXPECT_EQ(buf[16], 0xAA);
  EXPECT_EQ(buf[17], static_cast<unsigned char>(Layer::kDisk));
  rec.opaque = true;
  ASSERT_EQ(EncodeIdRecord(rec, buf), 18U);
  EXPECT_EQ(buf[8], 1);
}

TEST(IdRecordEncodingTest, NoTokenMeansNotSpilledWhateverTheLayer) {
  unsigned char buf[18] = {};
  EXPECT_EQ(EncodeIdRecord(IdRecord{9, false, SpillRef{Layer::kDisk, 0}}, buf), 8U);
  EXPECT_EQ(EncodeIdRecord(IdRecord{9, true, SpillRef{Layer::kMemory, 0}}, buf), 9U);
}

TEST(ReservedXattrTest, OnlyDetourfsNamesAreReserved) {
  EXPECT_TRUE(IsReservedXattr(kIdXattr));
  EXPECT_TRUE(IsReservedXattr(kDeviceXattr));
  EXPECT_TRUE(IsReservedXattr(kHandleXattr));
  EXPECT_TRUE(IsReservedXattr(kLinksXattr));
  EXPECT_TRUE(IsReservedXattr(kMetacopyXattr));
  EXPECT_TRUE(IsReservedXattr(kIdsXattr));
  EXPECT_TRUE(IsReservedXattr(kV1WhiteoutXattr));
  EXPECT_TRUE(IsReservedXattr("trusted.detourfs.anything"));
  EXPECT_FALSE(IsReservedXattr("trusted.detourfs"));
  EXPECT_FALSE(IsReservedXattr("trusted.overlay.opaque"));
  EXPECT_FALSE(IsReservedXattr("user.detourfs.x"));
  EXPECT_FALSE(IsReservedXattr(""));
}

TEST(ReservedXattrTest, FilterDropsReservedNamesKeepingTheRest) {
  std::string list;
  for (const char* name :
       {"user.a", "trusted.detourfs.id", "security.selinux", "trusted.detourfs.w"}) {
    list += name;
    list += '\0';
  }
  size_t n = FilterXattrList(list.data(), list.size());
  EXPECT_EQ(std::string(list.data(), n), std::string("user.a\0security.selinux\0", 24));
  EXPECT_EQ(FilterXattrList(list.data(), 0), 0U);
}

TEST(ReservedXattrTest, FilterCopesWithAnUnterminatedLastName) {
  std::string list("trusted.detourfs.id\0user.b", 26);  // no final NUL
  const size_t n = FilterXattrList(list.data(), list.size());
  EXPECT_EQ(std::string(list.data(), n), "user.b");
  std::string only("trusted.detourfs.links", 22);
  EXPECT_EQ(FilterXattrList(only.data(), only.size()), 0U);
}

TEST(WhiteoutShapeTest, OnlyA00CharacterDeviceMayBeAWhiteout) {
  struct stat st {};
  st.st_mode = S_IFCHR;
  st.st_rdev = makedev(0, 0);
  EXPECT_TRUE(MaybeWhiteout(st));
  st.st_rdev = makedev(1, 3);
  EXPECT_FALSE(MaybeWhiteout(st));
  st.st_mode = S_IFBLK;
  st.st_rdev = makedev(0, 0);
  EXPECT_FALSE(MaybeWhiteout(st));
  st.st_mode = S_IFREG;
  EXPECT_FALSE(MaybeWhiteout(st));
}

// --- On real files ----------------------------------------------------------

class MarkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (trusted.* xattrs, mknod)";
    ASSERT_TRUE(scratch_.ok());
    fd_ = ::open(scratch_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }
  struct stat Lstat(const char* name) {
    struct stat st {};
    EXPECT_EQ(::fstatat(fd_, name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    return st;
  }
  // A regular file `name`, opened O_PATH.
  int MakeFile(const char* name) {
    const int w = ::openat(fd_, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_GE(w, 0);
    ::close(w);
    const int fd = ::openat(fd_, name, O_PATH | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return fd;
  }
  std::string Path(const char* name) const { return scratch_.path() + "/" + name; }
  // Sets kIdXattr to raw bytes.
  void SetRawId(const char* name, const std::string& bytes) {
    ASSERT_EQ(::lsetxattr(Path(name).c_str(), kIdXattr, bytes.data(), bytes.size(), 0), 0);
  }

  ScratchDir scratch_{"/dev/shm/detourfs-markers"};  // tmpfs, like a memory tier
  int fd_ = -1;
};

TEST_F(MarkersTest, IdRecordRoundTrips) {
  const int f = MakeFile("f");
  const IdRecord records[] = {
      IdRecord{42, false, {}},
      IdRecord{(uint64_t{1} << 62) | 77, true, {}},
      IdRecord{UINT64_MAX, false, SpillRef{Layer::kMemory, 0x1234567890ULL}},
      IdRecord{3, true, SpillRef{Layer::kDisk, 1}},
      IdRecord{4, false, SpillRef{Layer::kVolume, 99}},
  };
  for (const IdRecord& want : records) {
    ASSERT_TRUE(SetIdRecord(f, want).ok());
    Result<IdRecord> got = GetIdRecord(f);
    ASSERT_TRUE(got.ok()) << got.error();
    EXPECT_EQ(got->id, want.id);
    EXPECT_EQ(got->opaque, want.opaque);
    EXPECT_EQ(got->spill.token, want.spill.token);
    EXPECT_EQ(got->spill.layer, want.spill.layer);
    Result<IdRecord> at = GetIdRecordAt(fd_, "f");
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(at->id, want.id);
  }
  ::close(f);
}

TEST_F(MarkersTest, AbsentIdRecordIsEmpty) {
  const int f = MakeFile("f");
  Result<IdRecord> r = GetIdRecord(f);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->id, 0U);
  EXPECT_FALSE(r->opaque);
  EXPECT_EQ(r->spill.token, 0U);
  ::close(f);
}

TEST_F(MarkersTest, IdRecordOfASymlinkIsItsOwn) {
  const int f = MakeFile("target");
  ASSERT_TRUE(SetIdRecord(f, IdRecord{1, false, {}}).ok());
  ASSERT_EQ(::symlinkat("target", fd_, "link"), 0);
  ASSERT_TRUE(SetIdRecordAt(fd_, "link", IdRecord{2, true, {}}).ok());
  Result<IdRecord> link = GetIdRecordAt(fd_, "link");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->id, 2U);
  EXPECT_TRUE(link->opaque);
  Result<IdRecord> target = GetIdRecord(f);
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->id, 1U) << "setting a symlink's record never follows it";
  ::close(f);
}

TEST_F(MarkersTest, ShortOrOddSizedIdRecordsAreCorrupt) {
  ::close(MakeFile("f"));
  for (size_t size : {1, 4, 7, 10, 12, 17}) {
    SetRawId("f", std::string(size, '\x01'));
    Result<IdRecord> r = GetIdRecordAt(fd_, "f");
    EXPECT_FALSE(r.ok()) << size << " bytes";
    EXPECT_EQ(r.error(), EUCLEAN) << size << " bytes";
  }
}

TEST_F(MarkersTest, SpillLayerOutOfRangeIsCorrupt) {
  ::close(MakeFile("f"));
  unsigned char buf[18] = {};
  ASSERT_EQ(EncodeIdRecord(IdRecord{5, false, SpillRef{Layer::kDisk, 8}}, buf), 18U);
  buf[17] = 3;
  SetRawId("f", std::string(reinterpret_cast<char*>(buf), sizeof(buf)));
  Result<IdRecord> r = GetIdRecordAt(fd_, "f");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EUCLEAN);
}

// Regression (found by its unit test): a kIdXattr longer than the 18-byte maximum is read into an
// 18-byte buffer, getxattr says ERANGE, and markers.cc treats ERANGE as
// "absent": the corrupt record reads as no record (id 0) instead of EUCLEAN,
// unlike a 10- or 17-byte one. The entry would then be given a fresh id.
TEST_F(MarkersTest, OverlongIdRecordIsCorruptNotAbsent) {
  ::close(MakeFile("f"));
  SetRawId("f", std::string(32, '\x01'));
  Result<IdRecord> r = GetIdRecordAt(fd_, "f");
  EXPECT_FALSE(r.ok()) << "read as id " << r->id;
  EXPECT_EQ(r.error(), EUCLEAN);
}

TEST_F(MarkersTest, GetIdRecordOfAMissingNameFails) {
  Result<IdRecord> r = GetIdRecordAt(fd_, "nothing");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), ENOENT);
}

TEST_F(MarkersTest, AWhiteoutIsA00DeviceWithoutTheDeviceMark) {
  ASSERT_EQ(::mknodat(fd_, "gone", S_IFCHR | 0000, makedev(0, 0)), 0);
  Result<bool> w = IsWhiteout(fd_, "gone", Lstat("gone"));
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(*w);

  ASSERT_EQ(::mknodat(fd_, "dev", S_IFCHR | 0600, makedev(0, 0)), 0);
  ASSERT_EQ(::lsetxattr(Path("dev").c_str(), kDeviceXattr, "y", 1, 0), 0);
  Result<bool> dev = IsWhiteout(fd_, "dev", Lstat("dev"));
  ASSERT_TRUE(dev.ok());
  EXPECT_FALSE(*dev) << "a user's own 0:0 device carries the device mark";
}

TEST_F(MarkersTest, OtherFilesAreNotWhiteouts) {
  ::close(MakeFile("file"));
  ASSERT_EQ(::lsetxattr(Path("file").c_str(), kV1WhiteoutXattr, "y", 1, 0), 0);
  Result<bool> w = IsWhiteout(fd_, "file", Lstat("file"));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(*w) << "format 1's mark alone makes no whiteout";
  ASSERT_EQ(::mknodat(fd_, "null", S_IFCHR | 0600, makedev(1, 3)), 0);
  w = IsWhiteout(fd_, "null", Lstat("null"));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(*w);
}

TEST_F(MarkersTest, FlagsSetTestAndClear) {
  const int f = MakeFile("f");
  EXPECT_FALSE(*HasFlag(f, kMetacopyXattr));
  EXPECT_FALSE(*HasFlagAt(fd_, "f", kMetacopyXattr));
  ASSERT_TRUE(SetFlag(f, kMetacopyXattr).ok());
  EXPECT_TRUE(*HasFlag(f, kMetacopyXattr));
  EXPECT_TRUE(*HasFlagAt(fd_, "f", kMetacopyXattr));
  ASSERT_TRUE(ClearFlag(f, kMetacopyXattr).ok());
  EXPECT_FALSE(*HasFlag(f, kMetacopyXattr));
  EXPECT_TRUE(ClearFlag(f, kMetacopyXattr).ok()) << "clearing an absent flag is fine";
  // Some other value in the xattr is not the flag.
  ASSERT_EQ(::lsetxattr(Path("f").c_str(), kMetacopyXattr, "n", 1, 0), 0);
  EXPECT_FALSE(*HasFlag(f, kMetacopyXattr));
  ::close(f);
}

TEST_F(MarkersTest, NumbersRoundTripAndAreZeroWhenAbsent) {
  const int f = MakeFile("f");
  EXPECT_EQ(*GetNumber(f, kLinksXattr), 0U);
  EXPECT_EQ(*GetNumberAt(fd_, "f", kLinksXattr), 0U);
  ASSERT_TRUE(SetNumber(f, kLinksXattr, 0x0102030405060708ULL).ok());
  EXPECT_EQ(*GetNumber(f, kLinksXattr), 0x0102030405060708ULL);
  ASSERT_TRUE(SetNumberAt(fd_, "f", kLinksXattr, 3).ok());
  EXPECT_EQ(*GetNumberAt(fd_, "f", kLinksXattr), 3U);
  unsigned char raw[8] = {};
  ASSERT_EQ(::lgetxattr(Path("f").c_str(), kLinksXattr, raw, sizeof(raw)), 8);
  EXPECT_EQ(raw[0], 3) << "little-endian";
  EXPECT_EQ(raw[7], 0);
  ::close(f);
}

TEST_F(MarkersTest, BytesRoundTripAtAnySize) {
  const int f = MakeFile("f");
  EXPECT_EQ(*GetBytes(f, kHandleXattr), "");
  for (size_t size : {1, 255, 256, 257, 5000, 60000}) {
    std::string value(size, '\0');
    for (size_t i = 0; i < size; ++i) value[i] = static_cast<char>(i * 7 + 1);
    ASSERT_TRUE(SetBytes(f, kHandleXattr, value).ok()) << size;
    Result<std::string> got = GetBytes(f, kHandleXattr);
    ASSERT_TRUE(got.ok()) << size;
    EXPECT_EQ(*got, value) << size;
    Result<std::string> at = GetBytesAt(fd_, "f", kHandleXattr);
    ASSERT_TRUE(at.ok()) << size;
    EXPECT_EQ(*at, value) << size;
  }
  ::close(f);
}

TEST_F(MarkersTest, GetBytesAtReadsASymlinksOwnMarkers) {
  const int f = MakeFile("target");
  ASSERT_TRUE(SetBytes(f, kHandleXattr, "target's").ok());
  ASSERT_EQ(::symlinkat("target", fd_, "link"), 0);
  EXPECT_EQ(*GetBytesAt(fd_, "link", kHandleXattr), "") << "never follows the symlink";
  ASSERT_EQ(::lsetxattr(Path("link").c_str(), kHandleXattr, "link's", 6, 0), 0);
  EXPECT_EQ(*GetBytesAt(fd_, "link", kHandleXattr), "link's");
  ::close(f);
}

}  // namespace
}  // namespace detourfs::markers
