// OpenJournals (journals.h).
#include "daemon/journals.h"

#include <spdlog/spdlog.h>

#include "journal/journal_sink.h"

namespace detourfs {

std::unique_ptr<ChangeSink> OpenJournals(const std::array<LayerDirs, kLayerCount>& layers,
                                         const Router& router, std::unique_ptr<ChangeSink> also) {
  std::array<std::unique_ptr<journal::JournalWriter>, kLayerCount> writers;
  bool any = false;
  for (Layer t : kTiers) {
    const LayerDirs& d = layers[Index(t)];
    if (!d.journal) continue;
    const std::string what = LayerName(t);
    if (d.adopted && d.journal_new) {
      // A tier that held content before it had a journal: the journal
      // cannot name what changed before it began.
      spdlog::info("journal of the {}: begun on a tier that already held content", what);
      if (Result<void> m = journal::MarkIncomplete(d.journal->get()); !m.ok()) {
        spdlog::warn("journal of the {}: cannot mark it incomplete: {}", what,
                     ErrnoText(m.error()));
      }
    }
    Result<journal::JournalSummary> summary = journal::SummarizeJournal(d.journal->get());
    if (!summary.ok()) {
      spdlog::warn("journal of the {}: cannot read it: {}", what, ErrnoText(summary.error()));
    } else if (summary->segments > 0) {
      if (summary->complete) {
        spdlog::info("journal of the {}: {} changes in {} segments, complete", what,
                     summary->changes, summary->segments);
      } else {
        spdlog::warn(
            "journal of the {}: {} changes in {} segments, incomplete ({}): it does not "
            "name every change made on the tier since it began",
            what, summary->changes, summary->segments, summary->problem);
      }
    }
    Result<std::unique_ptr<journal::JournalWriter>> w =
        journal::JournalWriter::Open(d.journal, what);
    if (!w.ok()) {
      spdlog::error(
          "journal of the {}: cannot begin a segment ({}): this run's changes "
          "on the tier are not journaled",
          what, ErrnoText(w.error()));
      continue;
    }
    writers[Index(t)] = std::move(*w);
    any = true;
  }
  if (!any) return also;
  // Paths in a `persist = "never"` subtree are not journaled.
  journal::PersistedFn persisted = [router](std::string_view path, bool is_dir) {
    const RouteDecision d = router.Route(path, is_dir);
    return d.rule == nullptr || d.rule->persist != Persist::kNever;
  };
  return std::make_unique<journal::JournalSink>(std::move(writers), std::move(persisted),
                                                std::move(also));
}

}  // namespace detourfs
