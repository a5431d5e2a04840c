// FaultPlan: what flakyfs injects, and the counters proving it did.
//
// Pure logic, no FUSE: the operations ask Decide() before touching the
// source directory and report writes and closes, and the plan answers with a
// delay, an errno, a short length, a lie, or a "vanished" view of a file.
//
// Every random draw hashes (seed, rule, operation, path, how many times this
// operation has hit this path), so the same seed and the same per-path
// sequence of operations give the same faults whatever the threads' order.
//
// Configured by text commands (one per line; README.md lists them), at start
// (--rule) or at run time over the control socket.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "route/glob.h"

namespace flakyfs {

enum class Op {
  kGetattr,
  kReadlink,
  kMknod,
  kMkdir,
  kUnlink,
  kRmdir,
  kSymlink,
  kRename,
  kLink,
  kChmod,
  kChown,
  kTruncate,
  kOpen,
  kRead,
  kWrite,
  kStatfs,
  kRelease,
  kFsync,
  kSetxattr,
  kGetxattr,
  kListxattr,
  kRemovexattr,
  kOpendir,
  kReaddir,
  kCreate,
  kUtimens,
  kFallocate,
  kFsyncdir,
  kCount
};
constexpr size_t kOpCount = static_cast<size_t>(Op::kCount);
std::string_view OpName(Op op);
std::optional<Op> OpByName(std::string_view name);

// Latency classes: a cross-node block device is slow on every metadata
// change and write, and slowest on fsync.
enum class OpClass { kMeta, kRead, kWrite, kFsync, kCount };
constexpr size_t kClassCount = static_cast<size_t>(OpClass::kCount);
OpClass ClassOf(Op op);

enum class FaultKind { kEio, kEnospc, kErofs, kShortWrite, kVanish, kLie, kCount };
constexpr size_t kFaultKindCount = static_cast<size_t>(FaultKind::kCount);
std::string_view FaultKindName(FaultKind kind);

// How a vanished file looks: gone (ENOENT), the wrong size (0 bytes), or the
// wrong content (zeros).
enum class VanishMode { kEnoent, kSize, kContent };

struct FaultRule {
  FaultKind kind = FaultKind::kEio;
  double probability = 1.0;
  std::optional<detourfs::Glob> glob;  // none: every path
  std::vector<Op> ops;                 // empty: the kind's own default set
  VanishMode vanish_mode = VanishMode::kEnoent;
  std::chrono::milliseconds vanish_for{0};  // 0: for good (applied to the source)
  std::string text;                         // the command that made it
};

struct Latency {
  std::chrono::microseconds base{0};
  std::chrono::microseconds jitter{0};
};

// What an operation must do before (or instead of) passing through.
struct Decision {
  std::chrono::microseconds delay{0};
  int error = 0;           // non-zero: fail with this errno
  bool lie = false;        // report success without doing it
  size_t short_write = 0;  // non-zero: write only this many bytes
};

// A file made to vanish for a while: how to present it, and until when.
struct VanishedView {
  VanishMode mode = VanishMode::kEnoent;
};

// Something a "for good" vanish asks the file system to do to the source.
struct PermanentDamage {
  std::string path;
  VanishMode mode = VanishMode::kEnoent;
};

class FaultPlan {
 public:
  using Clock = std::chrono::steady_clock;

  FaultPlan();

  // Applies one command line; returns "" or the reason it was refused. `reply`
  // gets the command's answer (the counters for "counters", ...).
  std::string Apply(std::string_view command, std::string* reply);

  // Decide what `op` on `path` (relative to the root, "" for the root) does.
  // `size` is the write's length for kWrite.
  Decision Decide(Op op, std::string_view path, size_t size = 0);

  // A file handle that had written data was closed: maybe make it vanish.
  // Returns damage the caller must apply to the source for a "for good" vanish.
  std::optional<PermanentDamage> OnClosedAfterWrite(std::string_view path);
  // How `path` must look now, if it vanished for a while.
  std::optional<VanishedView> Vanished(std::string_view path);
  // The path was written, truncated, created, removed or renamed over:
  // whatever vanish state it had is gone.
  void Forget(std::string_view path);

  // Counters as JSON: {"ops": {...}, "injected": {...}, ...}.
  std::string CountersJson() const;
  uint64_t Injected(FaultKind kind) const;

 private:
  double Draw(size_t salt, Op op, std::string_view path, uint64_t occurrence) const;
  bool RuleApplies(const FaultRule& rule, Op op, std::string_view path) const;
  std::string ParseFault(const std::vector<std::string_view>& words, FaultRule* rule) const;

  mutable std::mutex mu_;
  uint64_t seed_ = 1;
  std::array<Latency, kClassCount> latency_{};
  double stall_probability_ = 0;
  std::chrono::microseconds stall_{0};
  std::vector<FaultRule> rules_;
  // (op, path) hash -> occurrences, for repeatable draws.
  std::unordered_map<uint64_t, uint64_t> occurrences_;
  struct Vanish {
    VanishMode mode;
    Clock::time_point until;
  };
  std::map<std::string, Vanish, std::less<>> vanished_;

  std::array<uint64_t, kOpCount> op_count_{};
  std::array<uint64_t, kFaultKindCount> injected_{};
  uint64_t stalls_ = 0;
  uint64_t vanish_hits_ = 0;
  uint64_t delayed_us_ = 0;
};

}  // namespace flakyfs
