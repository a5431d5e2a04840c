// JournalSink and SummarizeJournal (journal_sink.h).
#include "journal/journal_sink.h"

#include "journal/journal_format.h"

namespace detourfs::journal {
namespace {

bool AboutADirectory(ChangeKind kind) {
  return kind == ChangeKind::kMkdir || kind == ChangeKind::kRmdir || kind == ChangeKind::kOpaque;
}

}  // namespace

JournalSink::JournalSink(std::array<std::unique_ptr<JournalWriter>, kLayerCount> writers,
                         PersistedFn persisted, std::unique_ptr<ChangeSink> also)
    : writers_(std::move(writers)), persisted_(std::move(persisted)), also_(std::move(also)) {}

bool JournalSink::Persisted(const ChangeRecord& record) const {
  // A directory-only rule decides by type, which only some kinds tell:
  // the others count as persisted if either reading says so.
  auto persisted = [&](const std::string& path) {
    if (AboutADirectory(record.kind)) return persisted_(path, true);
    return persisted_(path, false) || persisted_(path, true);
  };
  // A rename counts if either end is in a persisted subtree (one leaving a
  // `persist = "never"` subtree for a persisted one brings content in).
  return persisted(record.path) || (!record.path2.empty() && persisted(record.path2));
}

void JournalSink::Append(const ChangeRecord& record) {
  if (also_) also_->Append(record);
  if (IsTier(record.layer) && !Persisted(record)) return;
  // A tier's own change goes to its journal; a change on the volume for
  // routed content, or a move between layers (the layer it left must know
  // the name is gone, the one it went to that it came), to every tier's.
  const bool every_tier = !IsTier(record.layer) || record.kind == ChangeKind::kMove;
  for (Layer t : kTiers) {
    if (!every_tier && t != record.layer) continue;
    if (JournalWriter* w = writers_[Index(t)].get()) w->Append(record);
  }
}

Result<JournalSummary> SummarizeJournal(int dir_fd) {
  Result<std::vector<SegmentFile>> segments = ListSegments(dir_fd);
  if (!segments.ok()) return Errno{segments.error()};
  JournalSummary out;
  out.segments = segments->size();
  uint64_t expected = 0;
  for (const SegmentFile& s : *segments) {
    Result<std::string> bytes = ReadSegmentFile(dir_fd, s.name);
    if (!bytes.ok()) return Errno{bytes.error()};
    const SegmentScan scan = ScanSegment(*bytes);
    out.changes += scan.changes.size();
    std::string problem;
    if (scan.stop != StopReason::kEnd) {
      problem = s.name + ": " + StopReasonName(scan.stop) + " (" + scan.detail + ")";
    } else if (!scan.closed) {
      problem = s.name + ": not closed (the daemon stopped without closing it)";
    } else if (scan.gap) {
      problem = s.name + ": older changes were dropped";
    } else if (expected != 0 && s.number != expected) {
      problem = "segment " + std::to_string(expected) + " is missing";
    }
    expected = s.number + 1;
    if (!problem.empty() && out.complete) {
      out.complete = false;
      out.problem = problem;
    }
  }
  if (out.complete && MarkedIncomplete(dir_fd)) {
    out.complete = false;
    out.problem =
        "marked incomplete (a run could not journal, or the tier held content before "
        "its journal began)";
  }
  return out;
}

}  // namespace detourfs::journal
