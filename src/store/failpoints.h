// Failpoints: named places between the steps of multi-step changes where a
// test makes the daemon die (SIGKILL, as an OOM kill would) or a step fail,
// to prove that a crash or an error at any step leaves the old state or the
// new one. Armed by DETOURFS_FAILPOINTS="name=kill,other=eio,third=kill@3"
// (the third time that point is reached) in builds configured with
// -Dfailpoints=true (CI's); other builds ignore the variable. "name=wait"
// holds the thread that reaches it until a test lets it go: it makes
// <name>.waiting in DETOURFS_FAILPOINT_DIR and waits for <name>.go there.
//
// kFailpoints lists every name, so a test can visit each one.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "detourfs/result.h"

namespace detourfs {

// Every failpoint, in the order a multi-step change reaches them.
inline constexpr const char* kFailpoints[] = {
    "make.built",       // an entry that replaces a whiteout, built aside
    "remove.whiteout",  // a whiteout about to replace a tier entry
    "copyup.copied",    // a copy-up's file complete, not yet linked in
    "dir.built",        // a directory part made aside, not yet renamed in
    "intent.written",   // a multi-step change's record is durable
    "intent.step",      // between two steps of a recorded change
    "intent.done",      // every step done, record not yet removed
    "spill.copied",     // a spill's data complete in the store, stub unmarked
    "spill.marked",     // the stub marked, its data not yet emptied
    "move.copied",      // a tree moving across layers copied aside
    "move.published",   // the moved tree at its new name, the source still there
    "handle.follow",    // a moved file's open handle about to take its new fd
};

class Failpoints {
 public:
  // From the environment; null when nothing is armed (or not built in).
  static std::unique_ptr<Failpoints> FromEnvironment();
  // Parses a spec as DETOURFS_FAILPOINTS holds it (for tests).
  static Result<std::unique_ptr<Failpoints>> Parse(std::string_view spec);

  // Called at `name`: dies, or returns the armed errno.
  Result<void> Hit(std::string_view name);

 private:
  struct Point {
    std::string name;
    int err = 0;        // 0: kill
    bool wait = false;  // wait for the test instead
    uint64_t nth = 1;   // fire on this hit
    std::atomic<uint64_t> hits{0};
  };
  // "wait": until <dir>/<name>.go exists (at most a minute).
  void Wait(std::string_view name) const;
  std::vector<std::unique_ptr<Point>> points_;
  std::string wait_dir_;  // DETOURFS_FAILPOINT_DIR
};

}  // namespace detourfs
