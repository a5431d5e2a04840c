// The operations of the random-operation model checker: a concrete record of
// each (so a log can be printed, replayed and shrunk), a seeded generator
// over a small namespace (so operations collide), and an executor that
// applies one operation to the directory under test and to the reference and
// says whether they agreed.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace detourfs::stress {

enum class Kind {
  kCreate,
  kWrite,
  kRead,
  kTruncate,
  kRename,
  kLink,
  kUnlink,
  kMkdir,
  kRmdir,
  kSymlink,
  kChmod,
  kUtimens,
  kFsync,
  kStat,
  kList,
  kHoldOpen,
  kHoldWrite,
  kHoldRead,
  kHoldClose,
  kCount
};

struct Operation {
  Kind kind = Kind::kStat;
  std::string path;   // relative to the worker's root
  std::string path2;  // rename/link target, symlink target
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t mode = 0644;
  uint32_t data_seed = 0;
  int slot = 0;         // held fd slot
  int64_t seconds = 0;  // utimens
  std::string Describe() const;
};

// Generates operations from a seed over names d0..d2 (nested two deep) and
// f0..f5, so that creates, renames and removals meet each other often.
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  Operation Next();

 private:
  std::string RandomPath(bool dir_only);
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  std::mt19937_64 rng_;
};

// One side of the comparison: a root directory and its held fds.
struct Side {
  std::string root;
  static constexpr int kSlots = 2;
  int fds[kSlots] = {-1, -1};
  ~Side();
};

// Applies `op` to both sides; returns "" when they agree, else what differed.
std::string ApplyBoth(const Operation& op, Side* test, Side* ref);

// Compares two trees: names, types, permission bits, sizes, link counts,
// contents and symlink targets. Returns "" or the first difference.
std::string CompareTrees(const std::string& test_root, const std::string& ref_root);

}  // namespace detourfs::stress
