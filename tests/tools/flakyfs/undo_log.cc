// UndoLog (undo_log.h): durability by directory fsync, in dependency order.
#include "undo_log.h"

#include <algorithm>

namespace flakyfs {

UndoLog::Seq UndoLog::Add(const std::vector<std::string>& keys,
                          const std::vector<std::string>& dirs) {
  const Seq seq = next_++;
  Entry& e = entries_[seq];
  for (const std::string& k : keys) {
    if (std::find(e.keys.begin(), e.keys.end(), k) != e.keys.end()) continue;
    e.keys.push_back(k);
    by_key_[k].insert(seq);
  }
  for (const std::string& d : dirs) {
    if (e.pending_dirs.insert(d).second) waiting_[d].insert(seq);
  }
  return seq;
}

// No directory left to wait for, and first in line on every key.
bool UndoLog::Durable(Seq seq) const {
  const Entry& e = entries_.at(seq);
  if (!e.pending_dirs.empty()) return false;
  return std::all_of(e.keys.begin(), e.keys.end(),
                     [&](const std::string& k) { return *by_key_.at(k).begin() == seq; });
}

std::vector<UndoLog::Seq> UndoLog::DirSynced(const std::string& dir) {
  std::vector<Seq> durable;
  auto waiting = waiting_.find(dir);
  if (waiting == waiting_.end()) return durable;
  std::set<Seq> candidates = std::move(waiting->second);
  waiting_.erase(waiting);
  for (Seq seq : candidates) entries_.at(seq).pending_dirs.erase(dir);
  // A change that becomes durable may unblock the next one on each of its keys.
  while (!candidates.empty()) {
    const Seq seq = *candidates.begin();
    candidates.erase(candidates.begin());
    if (entries_.count(seq) == 0 || !Durable(seq)) continue;
    for (const std::string& k : entries_.at(seq).keys) {
      std::set<Seq>& line = by_key_.at(k);
      line.erase(seq);
      if (line.empty()) {
        by_key_.erase(k);
      } else {
        candidates.insert(*line.begin());
      }
    }
    entries_.erase(seq);
    durable.push_back(seq);
  }
  std::sort(durable.begin(), durable.end());
  return durable;
}

std::vector<UndoLog::Seq> UndoLog::SyncAll() {
  std::vector<Seq> all;
  for (const auto& [seq, e] : entries_) all.push_back(seq);
  Clear();
  return all;
}

std::vector<UndoLog::Seq> UndoLog::TakeForUndo() {
  std::vector<Seq> all;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) all.push_back(it->first);
  Clear();
  return all;
}

void UndoLog::Clear() {
  entries_.clear();
  by_key_.clear();
  waiting_.clear();
}

}  // namespace flakyfs
