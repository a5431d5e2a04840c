// The flush manifest's format: every step kind round-trips, and a manifest
// cut short, damaged anywhere, of another version, or naming a path that
// could leave the volume's tree is refused whole.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <string>

#include "flush/manifest_format.h"

namespace detourfs::flush {
namespace {

Manifest EverySteps() {
  Manifest m;
  m.epoch = 42;
  ManifestStep remove = MakeStep(StepKind::kRemove, "proj/node_modules/old");
  ManifestStep dir = MakeStep(StepKind::kDirectory, "proj/node_modules/a");
  dir.staged = 1;
  dir.mode = S_IFDIR | 0755;
  dir.uid = 1000;
  dir.gid = 100;
  dir.mtime_sec = -5;  // before 1970: still a time
  dir.mtime_nsec = 999999999;
  ManifestStep file = MakeStep(StepKind::kPlace, "proj/node_modules/a/index.js");
  file.staged = 2;
  file.mode = S_IFREG | 0644;
  file.size = 1u << 20;
  file.hash = 0x0123456789abcdefULL;
  ManifestStep symlink =
      MakeStep(StepKind::kPlace, std::string("proj/odd\n\xff name"), "../target");
  symlink.staged = 3;
  symlink.mode = S_IFLNK | 0777;
  ManifestStep link =
      MakeStep(StepKind::kLink, "proj/node_modules/a/again.js", "proj/node_modules/a/index.js");
  m.steps = {remove, dir, file, symlink, link};
  return m;
}

TEST(FlushManifestTest, EveryStepKindRoundTrips) {
  const Manifest m = EverySteps();
  std::string why;
  Result<Manifest> back = DecodeManifest(EncodeManifest(m), &why);
  ASSERT_TRUE(back.ok()) << why;
  EXPECT_EQ(*back, m);
  EXPECT_TRUE(why.empty());
  Result<Manifest> empty = DecodeManifest(EncodeManifest(Manifest{7, {}}), &why);
  ASSERT_TRUE(empty.ok()) << why;
  EXPECT_EQ(empty->epoch, 7U);
  EXPECT_TRUE(empty->steps.empty());
}

TEST(FlushManifestTest, AManifestCutShortAnywhereIsRefused) {
  const std::string bytes = EncodeManifest(EverySteps());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string why;
    Result<Manifest> m = DecodeManifest(bytes.substr(0, n), &why);
    ASSERT_FALSE(m.ok()) << "cut at " << n;
    EXPECT_EQ(m.error(), EINVAL);
    EXPECT_FALSE(why.empty());
  }
}

TEST(FlushManifestTest, AByteChangedAnywhereIsRefused) {
  const std::string bytes = EncodeManifest(EverySteps());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80}) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ flip);
      std::string why;
      EXPECT_FALSE(DecodeManifest(damaged, &why).ok()) << "byte " << i << " ^ " << int{flip};
    }
  }
  std::string why;
  EXPECT_FALSE(DecodeManifest(bytes + "x", &why).ok());
  EXPECT_EQ(why, "body checksum mismatch");
}

TEST(FlushManifestTest, AnotherVersionIsNamed) {
  std::string bytes = EncodeManifest(EverySteps());
  bytes[8] = 2;  // the version's low byte
  std::string why;
  EXPECT_FALSE(DecodeManifest(bytes, &why).ok());
  EXPECT_EQ(why, "a damaged header, or version 2 (this build reads 1)");
  // A header written by that version (its checksum right).
  const uint64_t sum = XXH3_64bits(bytes.data(), 40);
  for (int i = 0; i < 8; ++i) bytes[40 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  EXPECT_FALSE(DecodeManifest(bytes, &why).ok());
  EXPECT_EQ(why, "version 2 (this build reads 1)");
  bytes[0] = 'X';
  EXPECT_FALSE(DecodeManifest(bytes, &why).ok());
  EXPECT_EQ(why, "not a manifest (magic)");
}

TEST(FlushManifestTest, APathThatCouldLeaveTheTreeIsRefused) {
  for (const char* path : {"", "/etc/passwd", "a/../../etc", "..", "a/./b", "a//b", "a/",
                           ".detourfs", ".detourfs/flush/epoch-1"}) {
    const std::string p = path;
    EXPECT_FALSE(ValidStepPath(p)) << p;
    Manifest m{1, {MakeStep(StepKind::kRemove, p)}};
    std::string why;
    EXPECT_FALSE(DecodeManifest(EncodeManifest(m), &why).ok()) << p;
    EXPECT_EQ(why, "a step names an invalid path") << p;
  }
  EXPECT_FALSE(ValidStepPath(std::string("a\0b", 3)));
  for (const char* path : {"a", "a/b/c", ".detourfsx", "x/.detourfs", "...", ".a/..b"}) {
    EXPECT_TRUE(ValidStepPath(path)) << path;
  }
  // A link's first name is checked the same way.
  Manifest m{1, {MakeStep(StepKind::kLink, "a", "../b")}};
  std::string why;
  EXPECT_FALSE(DecodeManifest(EncodeManifest(m), &why).ok());
}

TEST(FlushManifestTest, ANameRemovedAndMadeAgainLaterIsRefused) {
  // Applied again after a crash, the remove would take what the later
  // step made.
  ManifestStep dir = MakeStep(StepKind::kDirectory, "a/pkg");
  dir.mode = S_IFDIR | 0755;
  ManifestStep file = MakeStep(StepKind::kPlace, "a/pkg/x/index.js");
  file.mode = S_IFREG | 0644;
  const ManifestStep remove = MakeStep(StepKind::kRemove, "a/pkg");
  std::string why;
  for (const ManifestStep& later : {dir, file}) {
    EXPECT_FALSE(DecodeManifest(EncodeManifest(Manifest{1, {remove, later}}), &why).ok());
    EXPECT_EQ(why, "a removed name is made again by a later step");
  }
  // Made first, removed after, or a sibling: fine.
  EXPECT_TRUE(DecodeManifest(EncodeManifest(Manifest{1, {dir, remove}}), &why).ok()) << why;
  ManifestStep sibling = file;
  sibling.path = "a/pkgs/index.js";
  EXPECT_TRUE(DecodeManifest(EncodeManifest(Manifest{1, {remove, sibling}}), &why).ok()) << why;
}

TEST(FlushManifestTest, AStepsModeMustFitItsKind) {
  ManifestStep dir = MakeStep(StepKind::kDirectory, "a");
  dir.mode = S_IFREG | 0644;
  ManifestStep place = MakeStep(StepKind::kPlace, "b");
  place.mode = S_IFDIR | 0755;
  ManifestStep typeless = MakeStep(StepKind::kPlace, "c");
  typeless.mode = 0644;
  for (const ManifestStep& s : {dir, place, typeless}) {
    std::string why;
    EXPECT_FALSE(DecodeManifest(EncodeManifest(Manifest{1, {s}}), &why).ok()) << s.path;
    EXPECT_NE(why.find("mode"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace detourfs::flush
