// The model checker's home-like namespace: projects whose names collide with
// the routing rules of a developer's home (node_modules to memory, dist/ and
// build/ to disk, .cache never persisted), so that operations cross rule
// boundaries all the time; and the content such a home already holds on the
// volume the day detourfs is rolled out.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "stress_ops.h"

namespace detourfs::stress {

// Operations over paths such as proj0/node_modules/pkg/f0, proj1/build.sh,
// proj0/dist/node_modules, .cache/f1 and node_modules/node_modules/f2: at the
// top level proj0, proj1, proj.old, app, .cache, node_modules, build (a
// directory or a file: `build/` is a directory-only rule) and files; below
// it node_modules, node_modules.old, dist, build, src, pkg and .cache, mostly
// in the directories the skeleton makes, sometimes three levels of any of
// them; every kind of operation,
// with renames biased to the collisions that matter (node_modules <->
// node_modules.old, build.sh -> build, proj0 <-> proj1 <-> proj.old), rm -rf
// of projects and their parts, mkdir -p of routed directories under new
// parents, hard links between any two of them.
//
// About half the paths name what the reference tree holds at that moment
// (read when needed; the log stays a concrete, replayable list),
// the rest come from the names above, so operations both find their targets
// and make new names.
class HomeGenerator : public OpSource {
 public:
  // `ref_root`: the reference tree the operations apply to. `for_prefill`:
  // only what a volume holds before the mount (no held fds, no whiteouts,
  // nothing removed wholesale).
  HomeGenerator(uint64_t seed, std::string ref_root, bool for_prefill)
      : rng_(seed), ref_root_(std::move(ref_root)), for_prefill_(for_prefill) {}
  Operation Next() override;

 private:
  enum class Want { kAny, kNonDir, kDir };
  struct Existing {
    std::string rel;
    bool dir;
  };
  struct Weighted {
    const char* name;
    int weight;
  };
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  const char* Pick(const std::vector<Weighted>& choices);
  // A directory's name, at the top level or below it.
  std::string DirName(bool top);
  // `depth` directory components, each with a trailing '/'; the first from
  // the top level's names if `top`.
  std::string Dirs(uint64_t depth, bool top);
  uint64_t Depth();
  // A directory, with a trailing '/' ("" for the top level): mostly one the
  // skeleton makes, sometimes any.
  std::string Parent();
  std::string Leaf(bool top);
  std::string AnyPath();
  // A path naming a directory, or a name a rule routes as one.
  std::string DirPath();
  // Two names for a rename or a link: same parent or anywhere.
  void RenamePaths(Operation* op);
  // With probability `percent`, a path the reference holds now (of the kind
  // wanted, if there is one); else `otherwise`.
  std::string MaybeExisting(uint64_t percent, Want want, const std::string& otherwise);
  void ReadReference();

  std::mt19937_64 rng_;
  std::string ref_root_;
  bool for_prefill_;
  std::vector<Existing> existing_;  // the reference tree before this operation
  bool read_ = false;               // existing_ is read for this operation
};

// What each home run starts from, made on the volume (and in the reference)
// before the workers start: files, directories, symlinks and hard links at
// every level, inside paths the rules route (proj0/node_modules/...,
// proj0/dist/..., proj0/build/..., .cache/...), a node_modules inside a routed
// dist (not re-routed), a file named build, and hard links across a routed and
// an unrouted path, across the two tiers' routes, and within one route.
std::vector<Operation> HomeSkeleton();

// Whether detourfs may answer `op` EXDEV, as across filesystems
// (docs/overlay.md, "Hard links"): a link joining names the home config
// routes to different layers (by the rules alone: "/*/.cache" and
// "**/node_modules" memory, "**/dist/" and "**/build/" disk, the outermost
// match deciding) or giving a file that has several names one more, or a
// rename moving (or exchanging) something that is or holds a file with
// several names, as the reference under `ref_root` shows before the
// operation.
bool MayRefuseExdev(const Operation& op, const std::string& ref_root);

}  // namespace detourfs::stress
