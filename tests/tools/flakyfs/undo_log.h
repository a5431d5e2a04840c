// UndoLog: which namespace changes are not yet durable, for flakyfs's power-cut
// model (power_cut_model.h). Pure bookkeeping: no syscalls.
//
// A change (create, unlink, rename, ...) names the inodes it touches (`keys`:
// the parent directories and the objects created, moved or removed) and the
// directories whose fsync makes it durable (`dirs`: its parents). It becomes
// durable, and leaves the log, once
//   - every one of its dirs has been fsynced after it, and
//   - every earlier change sharing a key with it is durable.
// The second rule keeps the durable set closed under dependencies: a change is
// never durable while one it builds on (the mkdir of its directory, the
// rename that brought its object there) is not. So undoing what is left,
// newest first, always meets each change's inodes exactly as the change left
// them, and the result is a state a real file system could have crashed into.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace flakyfs {

class UndoLog {
 public:
  using Seq = uint64_t;

  // Records a change; returns its sequence number (increasing).
  Seq Add(const std::vector<std::string>& keys, const std::vector<std::string>& dirs);
  // Directory `dir` was fsynced, or removed (a removed directory can no longer
  // be fsynced; its entries went with it). Returns the changes that became
  // durable, oldest first.
  std::vector<Seq> DirSynced(const std::string& dir);
  // A sync point: every change is durable. Returns them all, oldest first.
  std::vector<Seq> SyncAll();
  // A power cut: returns the changes still not durable, newest first (the
  // order to undo them in), and forgets them.
  std::vector<Seq> TakeForUndo();

  size_t size() const { return entries_.size(); }
  // Each change not yet durable, oldest first: its keys and the
  // directories it still waits for (for `durability pending`).
  template <typename F>
  void ForEachPending(F&& f) const {
    for (const auto& [seq, e] : entries_) f(seq, e.keys, e.pending_dirs);
  }

 private:
  struct Entry {
    std::vector<std::string> keys;
    std::set<std::string> pending_dirs;
  };
  bool Durable(Seq seq) const;
  void Clear();

  Seq next_ = 1;
  std::map<Seq, Entry> entries_;
  // Per key, the changes not yet durable that touch it, in order.
  std::map<std::string, std::set<Seq>> by_key_;
  // Per directory, the changes waiting for its fsync.
  std::map<std::string, std::set<Seq>> waiting_;
};

}  // namespace flakyfs
