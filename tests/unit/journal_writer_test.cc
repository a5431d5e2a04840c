// JournalWriter and SummarizeJournal on a real directory: segments begun,
// appended, closed, rotated and bounded; a journal is complete only when
// every segment ended with its close record.
#include "journal/journal_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "journal/journal_format.h"
#include "journal/journal_sink.h"
#include "sys/sys.h"
#include "unit/scratch_dir.h"

namespace detourfs::journal {
namespace {

class JournalWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    Result<UniqueFd> fd = sys::OpenPath(dir_.path().c_str(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(fd.ok());
    fd_ = std::make_shared<const UniqueFd>(std::move(*fd));
  }

  std::unique_ptr<JournalWriter> Open() {
    Result<std::unique_ptr<JournalWriter>> w = JournalWriter::Open(fd_, "test tier");
    EXPECT_TRUE(w.ok());
    return w.ok() ? std::move(*w) : nullptr;
  }

  SegmentScan Scan(uint64_t number) {
    Result<std::string> bytes = ReadSegmentFile(fd_->get(), SegmentName(number));
    EXPECT_TRUE(bytes.ok()) << SegmentName(number);
    return ScanSegment(bytes.ok() ? *bytes : std::string());
  }

  static ChangeRecord Change(uint64_t seq, std::string path) {
    ChangeRecord r;
    r.seq = seq;
    r.kind = ChangeKind::kWrite;
    r.layer = Layer::kDisk;
    r.path = std::move(path);
    r.length = 100;
    return r;
  }

  ScratchDir dir_{"/tmp/detourfs-journal"};
  SharedFd fd_;
};

TEST_F(JournalWriterTest, SegmentNamesRoundTripAndOthersAreNotSegments) {
  EXPECT_EQ(SegmentNumber(SegmentName(1)), 1U);
  EXPECT_EQ(SegmentNumber(SegmentName(0xabcdef0123U)), 0xabcdef0123U);
  EXPECT_EQ(SegmentNumber("segment-xyz"), 0U);
  EXPECT_EQ(SegmentNumber("other"), 0U);
}

TEST_F(JournalWriterTest, AppendedChangesAreInTheSegmentAndItEndsClosed) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  for (uint64_t i = 1; i <= 100; ++i) w->Append(Change(i, "dist/f" + std::to_string(i)));
  // Synced, not closed: every change is there, and no close record yet.
  ASSERT_TRUE(w->Sync().ok());
  SegmentScan scan = Scan(1);
  EXPECT_EQ(scan.stop, StopReason::kEnd);
  EXPECT_EQ(scan.changes.size(), 100U);
  EXPECT_FALSE(scan.closed);
  w->Close();
  scan = Scan(1);
  EXPECT_TRUE(scan.closed);
  ASSERT_EQ(scan.changes.size(), 100U);
  EXPECT_EQ(scan.changes[41].path, "dist/f42");
  EXPECT_TRUE(w->intact());
}

TEST_F(JournalWriterTest, EachStartBeginsANewSegmentAndTheSummarySaysIfAnyIsIncomplete) {
  {
    auto w = Open();
    w->Append(Change(1, "a"));
  }  // closed by its destructor
  {
    auto w = Open();
    w->Append(Change(1, "b"));
    w->Append(Change(2, "c"));
  }
  Result<JournalSummary> s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->segments, 2U);
  EXPECT_EQ(s->changes, 3U);
  EXPECT_TRUE(s->complete) << s->problem;
  // The second segment loses its close record (a crash before it was
  // written): the journal no longer names every change.
  Result<std::string> bytes = ReadSegmentFile(fd_->get(), SegmentName(2));
  ASSERT_TRUE(bytes.ok());
  const std::string path = dir_.path() + "/" + SegmentName(2);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(bytes->size() - 3)), 0);
  s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->complete);
  EXPECT_NE(s->problem.find("torn"), std::string::npos) << s->problem;
  EXPECT_EQ(s->changes, 3U);
  // A segment missing from the sequence is named too.
  {
    auto w = Open();  // segment 3, closed
  }
  ASSERT_EQ(::unlink(path.c_str()), 0);
  s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->complete);
  EXPECT_NE(s->problem.find("missing"), std::string::npos) << s->problem;
}

TEST_F(JournalWriterTest, AFullSegmentIsClosedAndTheNextTakesOver) {
  auto w = Open();
  const std::string name(200, 'n');
  uint64_t seq = 0;
  while (true) {
    w->Append(Change(++seq, name));
    if (seq % 500 != 0) continue;
    Result<std::vector<SegmentFile>> list = ListSegments(fd_->get());
    ASSERT_TRUE(list.ok());
    if (list->size() == 2) break;
    ASSERT_LT(seq, 200000U) << "no second segment";
  }
  w->Append(Change(++seq, name));  // in the second segment
  w->Close();
  const SegmentScan first = Scan(1);
  const SegmentScan second = Scan(2);
  EXPECT_TRUE(first.closed);
  EXPECT_TRUE(second.closed);
  ASSERT_FALSE(first.changes.empty());
  ASSERT_FALSE(second.changes.empty());
  EXPECT_EQ(second.header.first_seq, first.changes.back().seq);
  EXPECT_EQ(first.changes.size() + second.changes.size(), seq);
  EXPECT_EQ(second.changes.back().seq, seq);
}

TEST_F(JournalWriterTest, AJournalMarkedIncompleteIsIncomplete) {
  { auto w = Open(); }
  Result<JournalSummary> s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->complete) << s->problem;
  ASSERT_TRUE(MarkIncomplete(fd_->get()).ok());
  s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->complete);
  EXPECT_NE(s->problem.find("marked incomplete"), std::string::npos) << s->problem;
}

TEST_F(JournalWriterTest, AChangeTooLongToJournalLeavesAGap) {
  {
    auto w = Open();
    w->Append(Change(1, "a"));
    w->Append(Change(2, std::string(70000, 'x')));
    w->Append(Change(3, "b"));
  }
  const SegmentScan scan = Scan(1);
  EXPECT_EQ(scan.stop, StopReason::kEnd) << scan.detail;
  EXPECT_TRUE(scan.gap);
  EXPECT_TRUE(scan.closed);
  ASSERT_EQ(scan.changes.size(), 2U);
  EXPECT_EQ(scan.changes[1].path, "b");
}

TEST_F(JournalWriterTest, OldSegmentsGoPastTheBoundAndTheNewOneSaysSo) {
  // Two old segments of 100 MiB (sparse: only their size counts).
  for (uint64_t n : {1U, 2U}) {
    const std::string path = dir_.path() + "/" + SegmentName(n);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 100 << 20), 0);
    ::close(fd);
  }
  auto w = Open();
  w->Close();
  Result<std::vector<SegmentFile>> list = ListSegments(fd_->get());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2U);
  EXPECT_EQ(list->front().number, 2U);
  EXPECT_EQ(list->back().number, 3U);
  EXPECT_TRUE(Scan(3).gap);
  Result<JournalSummary> s = SummarizeJournal(fd_->get());
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->complete);
}

TEST_F(JournalWriterTest, TheSinkJournalsEachTiersPersistedChangesInItsOwnJournal) {
  ScratchDir other("/tmp/detourfs-journal2");
  ASSERT_TRUE(other.ok());
  Result<UniqueFd> ofd = sys::OpenPath(other.path().c_str(), O_PATH | O_DIRECTORY);
  ASSERT_TRUE(ofd.ok());
  SharedFd other_fd = std::make_shared<const UniqueFd>(std::move(*ofd));
  std::array<std::unique_ptr<JournalWriter>, kLayerCount> writers;
  writers[Index(Layer::kMemory)] = std::move(*JournalWriter::Open(fd_, "memory"));
  writers[Index(Layer::kDisk)] = std::move(*JournalWriter::Open(other_fd, "disk"));
  {
    JournalSink sink(
        std::move(writers),
        [](std::string_view path, bool) { return path.rfind(".cache", 0) != 0; }, nullptr);
    auto change = [](uint64_t seq, Layer layer, std::string path) {
      ChangeRecord r = Change(seq, std::move(path));
      r.layer = layer;
      return r;
    };
    sink.Append(change(1, Layer::kMemory, "p/node_modules/a"));
    sink.Append(change(2, Layer::kMemory, ".cache/x"));  // persist = "never"
    sink.Append(change(3, Layer::kDisk, "p/dist/b"));
    sink.Append(change(4, Layer::kVolume, "p/moved"));  // routed content moved to the volume
  }
  const SegmentScan memory = Scan(1);
  ASSERT_EQ(memory.changes.size(), 2U);
  EXPECT_EQ(memory.changes[0].path, "p/node_modules/a");
  EXPECT_EQ(memory.changes[1].path, "p/moved");
  Result<std::string> disk_bytes = ReadSegmentFile(other_fd->get(), SegmentName(1));
  ASSERT_TRUE(disk_bytes.ok());
  const SegmentScan disk = ScanSegment(*disk_bytes);
  ASSERT_EQ(disk.changes.size(), 2U);
  EXPECT_EQ(disk.changes[0].path, "p/dist/b");
  EXPECT_EQ(disk.changes[1].path, "p/moved");
  EXPECT_TRUE(memory.closed && disk.closed);
}

}  // namespace
}  // namespace detourfs::journal
