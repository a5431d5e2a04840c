// The model checker under power cuts (--durable-every): a worker makes its
// tree durable now and then (every file and directory under it fsynced,
// deepest first) and records the reference's tree as the state made durable;
// before each later operation it records what that operation may change (its
// paths, and the reference inodes they and its held fd name). After a power
// cut and a restart, CheckDurable compares the tree under test with the last
// durable state, leaving out what a later operation touched: nothing made
// durable may be lost or changed, and nothing absent then may be there.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "stress_ops.h"

namespace detourfs::stress {

class DurableLog {
 public:
  // The records of worker `tag` in `dir` (outside the filesystems cut):
  // <tag>.manifest, the last durable state, and <tag>.touched, what the
  // operations since may change. nullptr and `*error` if they cannot be made.
  static std::unique_ptr<DurableLog> Open(const std::string& dir, const std::string& tag,
                                          std::string* error);
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  // Records what `op` may change, before it runs ("" or why not).
  std::string Touching(const Operation& op, const Side& ref);
  // Makes everything under `test_root` durable and records `ref_root`'s
  // tree as the durable state (published by a rename), then starts the
  // touched record again. "" or why not.
  std::string MakeDurable(const std::string& test_root, const std::string& ref_root);

 private:
  DurableLog(std::string dir, std::string tag, int touched_fd)
      : dir_(std::move(dir)), tag_(std::move(tag)), touched_fd_(touched_fd) {}
  std::string dir_;
  std::string tag_;
  int touched_fd_;
  size_t syncs_ = 0;
};

// fsync of every file and directory under `root`, deepest first, then of
// `root` and its parent: "" or the first failure.
std::string SyncTree(const std::string& root);

// Compares `test_root` with the last durable state of worker `tag` recorded
// in `dir`: "" when it agrees, else one line per difference ("LOST", "CHANGED",
// "BACK"). `checked` gets the number of entries compared; a worker that never
// made its tree durable is not checked.
std::string CheckDurable(const std::string& test_root, const std::string& dir,
                         const std::string& tag, size_t* checked);

}  // namespace detourfs::stress
