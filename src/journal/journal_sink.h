// JournalSink: the ChangeSink that writes the change layer's records into
// each tier's journal (journal_writer.h). A tier's records go to its own
// journal when their path lies in a persisted subtree (`persist = "never"`
// ones never reach the volume, so nothing of them is journaled); records
// of changes made on the volume for routed content (a tree moved there)
// go to every tier's journal, since the flush of any of them must know.
// Another sink (the --record-changes file) may be fed the same records.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string_view>

#include "journal/journal_writer.h"
#include "store/change_record.h"
#include "store/layer.h"

namespace detourfs::journal {

// Whether a path (relative to the mount root) lies in a persisted subtree,
// read as a directory (`is_dir`) or not.
using PersistedFn = std::function<bool(std::string_view path, bool is_dir)>;

class JournalSink : public ChangeSink {
 public:
  JournalSink(std::array<std::unique_ptr<JournalWriter>, kLayerCount> writers,
              PersistedFn persisted, std::unique_ptr<ChangeSink> also);
  void Append(const ChangeRecord& record) override;

 private:
  bool Persisted(const ChangeRecord& record) const;

  std::array<std::unique_ptr<JournalWriter>, kLayerCount> writers_;
  const PersistedFn persisted_;
  const std::unique_ptr<ChangeSink> also_;
};

// What a tier's journal holds, read at start (docs/journal.md).
struct JournalSummary {
  size_t segments = 0;
  size_t changes = 0;
  // Every segment ended with a close record, none torn, corrupt or after a
  // gap: the journal alone names every change since it began.
  bool complete = true;
  std::string problem;  // the first reason it is not, for the log
};

Result<JournalSummary> SummarizeJournal(int dir_fd);

}  // namespace detourfs::journal
