// The write-back journal on a real mount: the changes users make in
// persisted routed subtrees land, in order, in their tier's journal (none
// of a `persist = "never"` subtree, none of unrouted paths); a clean stop
// closes the segment; a daemon killed leaves it open, and the next start
// says the journal is incomplete.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "journal/journal_format.h"
#include "journal/journal_sink.h"
#include "journal/journal_writer.h"
#include "lib/files.h"
#include "mount/routing_fixture.h"
#include "sys/sys.h"

namespace detourfs::testing {
namespace {

class JournalTest : public RoutingTest {
 protected:
  std::string JournalDir(bool memory) const {
    return (memory ? memory_.path() : disk_) + "/tier/journal";
  }

  // Every segment of a tier's journal, scanned, oldest first.
  std::vector<journal::SegmentScan> Segments(bool memory) {
    std::vector<journal::SegmentScan> out;
    Result<UniqueFd> dir = sys::OpenPath(JournalDir(memory).c_str(), O_PATH | O_DIRECTORY);
    EXPECT_TRUE(dir.ok());
    if (!dir.ok()) return out;
    Result<std::vector<journal::SegmentFile>> list = journal::ListSegments(dir->get());
    EXPECT_TRUE(list.ok());
    if (!list.ok()) return out;
    for (const journal::SegmentFile& s : *list) {
      Result<std::string> bytes = journal::ReadSegmentFile(dir->get(), s.name);
      EXPECT_TRUE(bytes.ok());
      if (bytes.ok()) out.push_back(journal::ScanSegment(*bytes));
    }
    return out;
  }

  static std::vector<std::string> Lines(const journal::SegmentScan& scan) {
    std::vector<std::string> out;
    for (const ChangeRecord& r : scan.changes) {
      std::string line = std::string(ChangeKindName(r.kind)) + " " + r.path;
      if (!r.path2.empty()) line += " -> " + r.path2;
      out.push_back(line);
    }
    return out;
  }

  static bool Has(const std::vector<std::string>& lines, const std::string& want) {
    for (const std::string& l : lines) {
      if (l == want) return true;
    }
    return false;
  }
};

TEST_P(JournalTest, PersistedRoutedChangesAreJournaledInOrderPerTier) {
  ASSERT_EQ(::mkdir(M("app").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/readme"), "unrouted"), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(M("app/node_modules/pkg").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/node_modules/pkg/index.js"), "module.exports = 1;\n"), 0);
  ASSERT_EQ(::rename(M("app/node_modules/pkg").c_str(), M("app/node_modules/pkg2").c_str()), 0);
  ASSERT_EQ(::unlink(M("app/node_modules/pkg2/index.js").c_str()), 0);
  // Out of its route to the volume: a move, in every tier's journal.
  ASSERT_EQ(::rename(M("app/node_modules/pkg2").c_str(), M("app/pkg2").c_str()), 0);
  ASSERT_EQ(::mkdir(M("app/dist").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("app/dist/bundle.js"), "bundle"), 0);
  ASSERT_EQ(::mkdir(M(".cache").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M(".cache/scratch"), "never flushed"), 0);
  // Out of the never-persisted cache into node_modules (both on the memory
  // tier): journaled, it brings content into a persisted subtree.
  ASSERT_EQ(WriteFile(M(".cache/fetched.tgz"), "pkg"), 0);
  ASSERT_EQ(::rename(M(".cache/fetched.tgz").c_str(), M("app/node_modules/fetched.tgz").c_str()),
            0);
  Restart();  // a clean stop closes the segments

  std::vector<journal::SegmentScan> memory = Segments(true);
  ASSERT_GE(memory.size(), 1U);
  const journal::SegmentScan& m = memory.front();
  EXPECT_EQ(m.stop, journal::StopReason::kEnd) << m.detail;
  EXPECT_TRUE(m.closed);
  const std::vector<std::string> lines = Lines(m);
  EXPECT_TRUE(Has(lines, "mkdir app/node_modules"));
  EXPECT_TRUE(Has(lines, "create app/node_modules/pkg/index.js"));
  EXPECT_TRUE(Has(lines, "write app/node_modules/pkg/index.js"));
  EXPECT_TRUE(Has(lines, "rename app/node_modules/pkg -> app/node_modules/pkg2"));
  EXPECT_TRUE(Has(lines, "unlink app/node_modules/pkg2/index.js"));
  EXPECT_TRUE(Has(lines, "rename .cache/fetched.tgz -> app/node_modules/fetched.tgz"));
  EXPECT_TRUE(Has(lines, "move app/pkg2 -> app/node_modules/pkg2"));
  for (const std::string& l : lines) {
    if (l.find("fetched.tgz") != std::string::npos) continue;
    EXPECT_EQ(l.find(".cache"), std::string::npos) << l;  // persist = "never"
    EXPECT_EQ(l.find("readme"), std::string::npos) << l;  // unrouted
    EXPECT_EQ(l.find("dist"), std::string::npos) << l;    // the disk tier's
  }
  // In the order they were made.
  auto at = [&](const std::string& want) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i] == want) return i;
    }
    return lines.size();
  };
  EXPECT_LT(at("create app/node_modules/pkg/index.js"),
            at("rename app/node_modules/pkg -> app/node_modules/pkg2"));
  EXPECT_LT(at("rename app/node_modules/pkg -> app/node_modules/pkg2"),
            at("unlink app/node_modules/pkg2/index.js"));
  for (size_t i = 1; i < m.changes.size(); ++i) EXPECT_GT(m.changes[i].seq, m.changes[i - 1].seq);

  std::vector<journal::SegmentScan> disk = Segments(false);
  ASSERT_GE(disk.size(), 1U);
  const std::vector<std::string> disk_lines = Lines(disk.front());
  EXPECT_TRUE(Has(disk_lines, "mkdir app/dist"));
  EXPECT_TRUE(Has(disk_lines, "create app/dist/bundle.js"));
  EXPECT_TRUE(Has(disk_lines, "move app/pkg2 -> app/node_modules/pkg2"));
  EXPECT_TRUE(disk.front().closed);
  // The restart began a second segment on each tier.
  EXPECT_EQ(Segments(true).size(), 2U);
}

TEST_P(JournalTest, AKilledDaemonLeavesItsSegmentOpenAndTheNextStartSaysSo) {
  expect_clean_log_ = false;  // the warning is the point
  ASSERT_EQ(::mkdir(M("node_modules").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(M("node_modules/a.js"), "a"), 0);
  fs_->Kill();
  std::string error;
  ASSERT_TRUE(fs_->Restart(&error)) << error;
  EXPECT_NE(fs_->Log().find("journal of the memory tier"), std::string::npos) << fs_->Log();
  EXPECT_NE(fs_->Log().find("incomplete"), std::string::npos) << fs_->Log();
  // The killed daemon's segment holds no close record; what it holds is
  // whole records only.
  std::vector<journal::SegmentScan> memory = Segments(true);
  ASSERT_EQ(memory.size(), 2U);
  EXPECT_FALSE(memory.front().closed);
  EXPECT_EQ(memory.front().stop, journal::StopReason::kEnd);
  // The data itself is on the tier, served as before.
  EXPECT_EQ(ReadFile(M("node_modules/a.js")), "a");
}

DETOURFS_MOUNT_TEST_P(JournalTest);

}  // namespace
}  // namespace detourfs::testing
