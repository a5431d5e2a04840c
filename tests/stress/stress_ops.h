// The operations of the random-operation model checker: a concrete record of
// each (so a log can be printed, replayed and shrunk), a seeded generator
// over a small flat namespace (so operations collide), and an executor that
// applies one operation to the directory under test and to the reference and
// says whether they agreed. The home-like namespace is in stress_home.h, the
// tree comparison in stress_compare.h.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
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
  kRenameNoreplace,  // renameat2 with RENAME_NOREPLACE
  kRenameExchange,   // renameat2 with RENAME_EXCHANGE
  kRenameWhiteout,   // renameat2 with RENAME_WHITEOUT (a char device 0:0 left at the source)
  kMkdirP,           // mkdir -p: each missing component
  kRemoveTree,       // rm -rf: children first (sorted), then the directory
  kCount
};

// The operation's name in logs and in --skip ("rename_whiteout").
const char* KindName(Kind kind);
// The kind named `name`; false if there is none.
bool KindFromName(const std::string& name, Kind* kind);

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
  // Made directly on the volume (and in the reference) before the mount's
  // operations: the content a home already holds (--prefill).
  bool volume = false;
  std::string Describe() const;
};

// A seeded source of operations.
class OpSource {
 public:
  virtual ~OpSource() = default;
  virtual Operation Next() = 0;
};

// Generates operations from a seed over names d0..d2 (nested two deep) and
// f0..f5, so that creates, renames and removals meet each other often. Only
// the first nineteen kinds (up to kHoldClose): a seed replays as it always did.
class Generator : public OpSource {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  Operation Next() override;

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
// `test_errno` and `ref_errno`, if given, get each side's errno (0: success).
// `may_refuse_exdev`: an EXDEV under test is accepted, and then the
// reference is left as it was (the operation is not applied to it).
std::string ApplyBoth(const Operation& op, Side* test, Side* ref, int* test_errno = nullptr,
                      int* ref_errno = nullptr, bool may_refuse_exdev = false);

// Wraps a source, drawing again while it yields a kind in `skip` (for
// looking past a known bug; CI skips nothing).
class SkippingSource : public OpSource {
 public:
  SkippingSource(std::unique_ptr<OpSource> inner, std::set<Kind> skip)
      : inner_(std::move(inner)), skip_(std::move(skip)) {}
  Operation Next() override;

 private:
  std::unique_ptr<OpSource> inner_;
  std::set<Kind> skip_;
};

}  // namespace detourfs::stress
