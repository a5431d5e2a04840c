// One worker of the model checker (stress_run.h).
#include "stress_run.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "stress_compare.h"
#include "stress_durable.h"
#include "stress_home.h"
#include "stress_ops.h"

namespace detourfs::stress {
namespace {

// How often each kind ran, and how the reference answered.
struct KindStats {
  std::map<int, uint64_t> results[static_cast<size_t>(Kind::kCount)];  // errno -> count
  void Add(Kind kind, int ref_errno) { ++results[static_cast<size_t>(kind)][ref_errno]; }
  void Print(unsigned worker) const {
    std::string text;
    for (size_t k = 0; k < static_cast<size_t>(Kind::kCount); ++k) {
      if (results[k].empty()) continue;
      text += std::string("  ") + KindName(static_cast<Kind>(k)) + ":";
      for (auto [err, n] : results[k]) {
        text +=
            std::string(" ") + (err == 0 ? "ok" : strerrorname_np(err)) + " " + std::to_string(n);
      }
      text += "\n";
    }
    std::fprintf(stderr, "worker %u, the reference's results:\n%s", worker, text.c_str());
  }
};

// The kinds --skip names.
std::set<Kind> Skipped(const Options& o) {
  std::set<Kind> skip;
  for (const std::string& name : o.skip) {
    Kind kind{};
    if (KindFromName(name, &kind)) skip.insert(kind);
  }
  return skip;
}

// `gen`, less --skip.
std::unique_ptr<OpSource> LessSkipped(const Options& o, std::unique_ptr<OpSource> gen) {
  if (o.skip.empty()) return gen;
  return std::make_unique<SkippingSource>(std::move(gen), Skipped(o));
}

// The worker's operations: its namespace's generator, less --skip.
std::unique_ptr<OpSource> Source(const Options& o, uint64_t seed, const std::string& ref_root) {
  if (o.home) return LessSkipped(o, std::make_unique<HomeGenerator>(seed, ref_root, false));
  return LessSkipped(o, std::make_unique<Generator>(seed));
}

// Makes the prefill in <prefill>/<dir> and <ref>/<dir>: random operations
// of the namespace (after the home skeleton, with --home); the same `seed`
// makes the same content. Returns the operations, marked as made on the
// volume, so a log replays and shrinks them with the rest; `bad` gets why the
// two trees disagree afterwards, if they do.
std::vector<Operation> Prefill(const Options& o, const std::string& dir, uint64_t seed,
                               std::string* bad) {
  std::vector<Operation> ops;
  if (o.prefill.empty()) return ops;
  Side vol{o.prefill + "/" + dir, {-1, -1}};
  Side ref{o.ref + "/" + dir, {-1, -1}};
  std::error_code ec;
  std::filesystem::create_directories(vol.root, ec);
  std::filesystem::create_directories(ref.root, ec);
  std::unique_ptr<OpSource> gen;
  if (o.home) {
    const std::set<Kind> skip = Skipped(o);
    for (Operation& op : HomeSkeleton()) {
      if (skip.count(op.kind) == 0) ops.push_back(std::move(op));
    }
    gen = LessSkipped(o, std::make_unique<HomeGenerator>(seed ^ 0x5EED5EEDULL, ref.root, true));
  } else {
    gen = LessSkipped(o, std::make_unique<Generator>(seed ^ 0x5EED5EEDULL));
  }
  for (Operation& op : ops) (void)ApplyBoth(op, &vol, &ref);
  for (uint64_t i = 0; i < o.prefill_ops; ++i) {
    ops.push_back(gen->Next());
    (void)ApplyBoth(ops.back(), &vol, &ref);
  }
  for (Operation& op : ops) op.volume = true;
  for (int& fd : vol.fds) ::close(std::exchange(fd, -1));
  for (int& fd : ref.fds) ::close(std::exchange(fd, -1));
  // Both are plain filesystems: they must agree, or the checker is wrong.
  std::string diff = CompareTrees(vol.root, ref.root);
  if (!diff.empty()) {
    *bad =
        "the prefill made different trees on the volume and the reference (a checker bug): " + diff;
  }
  return ops;
}

// A disagreement: what it was, and its kind, which a shrunk log must show
// again ("step rename_whiteout: errno 22 vs 0", "tree listing").
struct Mismatch {
  std::string what;
  std::string kind;
  bool found() const { return !what.empty(); }
};

// The trees compared now.
Mismatch CompareNow(TreeChecker* checker, const std::string& when) {
  std::string category;
  std::string diff = checker->Check(&category);
  if (diff.empty()) return {};
  return Mismatch{"trees differ " + when + ": " + diff, "tree " + category};
}

// The `n`th operation (from 0) through the mount, line `line` of the log:
// applied to both sides, then the trees compared after every --check-every.
Mismatch Step(const Options& o, const Operation& op, uint64_t n, size_t line, Side* test, Side* ref,
              TreeChecker* checker, int* ref_errno) {
  int test_errno = 0;
  // Where detourfs may answer EXDEV, as across filesystems
  // (docs/overlay.md, "Hard links"): the reference is then left alone.
  const bool may_refuse = o.home && MayRefuseExdev(op, ref->root);
  std::string diff = ApplyBoth(op, test, ref, &test_errno, ref_errno, may_refuse);
  if (!diff.empty()) {
    return Mismatch{"step " + std::to_string(line) + " (" + op.Describe() + "): " + diff,
                    std::string("step ") + KindName(op.kind) + ": errno " +
                        std::to_string(test_errno) + " vs " + std::to_string(*ref_errno)};
  }
  if ((n + 1) % o.check_every != 0) return {};
  return CompareNow(checker, "after step " + std::to_string(line));
}

// The end of a run: held files closed, the trees compared.
Mismatch Finish(Side* test, Side* ref, TreeChecker* checker) {
  for (int& fd : test->fds) ::close(std::exchange(fd, -1));
  for (int& fd : ref->fds) ::close(std::exchange(fd, -1));
  return CompareNow(checker, "at the end");
}

// Replays `ops` in fresh directories: those marked for the volume on the
// volume, then the rest through the mount, comparing the trees before the
// first of those, where the worker did, and at the end. Each replay gets
// directories of its own: a faulty file system under test may not let the
// previous ones be removed.
Mismatch Replay(const Options& o, const std::string& tag, const std::vector<Operation>& ops) {
  static unsigned attempt = 0;
  const std::string dir = tag + "." + std::to_string(++attempt);
  Side test{o.test + "/" + dir, {-1, -1}};
  Side ref{o.ref + "/" + dir, {-1, -1}};
  std::error_code ec;
  size_t i = 0;
  if (!o.prefill.empty()) {
    Side vol{o.prefill + "/" + dir, {-1, -1}};
    Side vol_ref{ref.root, {-1, -1}};
    std::filesystem::create_directory(vol.root, ec);
    std::filesystem::create_directory(vol_ref.root, ec);
    for (; i < ops.size() && ops[i].volume; ++i) (void)ApplyBoth(ops[i], &vol, &vol_ref);
  }
  std::filesystem::create_directory(test.root, ec);
  std::filesystem::create_directory(ref.root, ec);
  TreeChecker checker(test.root, ref.root);
  Mismatch m = CompareNow(&checker, "before the first operation");
  for (uint64_t n = 0; i < ops.size() && !m.found(); ++i, ++n) {
    int ref_errno = 0;
    m = Step(o, ops[i], n, i + 1, &test, &ref, &checker, &ref_errno);
  }
  if (!m.found()) m = Finish(&test, &ref, &checker);
  std::filesystem::remove_all(test.root, ec);
  std::filesystem::remove_all(ref.root, ec);
  return m;
}

// Delta debugging (ddmin) over the operation list, within a time budget,
// keeping only candidates that show a mismatch of the same kind as `*found`.
std::vector<Operation> Shrink(const Options& o, const std::string& tag, std::vector<Operation> ops,
                              Mismatch* found) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.shrink_seconds);
  size_t chunks = 2;
  while (ops.size() >= 2 && std::chrono::steady_clock::now() < deadline) {
    size_t chunk = (ops.size() + chunks - 1) / chunks;
    bool reduced = false;
    for (size_t start = 0; start < ops.size() && !reduced; start += chunk) {
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::vector<Operation> candidate(ops.begin(), ops.begin() + static_cast<long>(start));
      candidate.insert(candidate.end(),
                       ops.begin() + static_cast<long>(std::min(ops.size(), start + chunk)),
                       ops.end());
      Mismatch m = Replay(o, tag, candidate);
      if (m.found() && m.kind == found->kind) {
        ops = std::move(candidate);
        *found = m;
        chunks = std::max<size_t>(chunks - 1, 2);
        reduced = true;
      }
    }
    if (!reduced) {
      if (chunk == 1) break;
      chunks = std::min(ops.size(), chunks * 2);
    }
  }
  return ops;
}

void PrintLog(const std::vector<Operation>& ops, size_t max) {
  size_t from = ops.size() > max ? ops.size() - max : 0;
  if (from > 0) std::fprintf(stderr, "  ... (%zu earlier operations)\n", from);
  for (size_t i = from; i < ops.size(); ++i) {
    std::fprintf(stderr, "  %4zu  %s\n", i + 1, ops[i].Describe().c_str());
  }
}

}  // namespace

int Worker(const Options& o, unsigned index) {
  const uint64_t seed = o.seed * 1000003 + index;
  const std::string tag = "w" + std::to_string(index);
  Side test{o.test + "/" + tag, {-1, -1}};
  Side ref{o.ref + "/" + tag, {-1, -1}};
  std::error_code ec;
  std::string bad_prefill;
  std::vector<Operation> log = Prefill(o, tag, seed, &bad_prefill);
  if (!bad_prefill.empty()) {
    std::fprintf(stderr, "worker %u: %s\n", index, bad_prefill.c_str());
    return 2;
  }
  const size_t prefilled = log.size();
  std::filesystem::create_directories(test.root, ec);
  std::filesystem::create_directories(ref.root, ec);
  std::unique_ptr<OpSource> gen = Source(o, seed, ref.root);
  TreeChecker checker(test.root, ref.root);
  KindStats stats;
  Mismatch m = CompareNow(&checker, "before the first operation");
  std::unique_ptr<DurableLog> durable;
  if (o.durable_every > 0) {
    // What a home held before is old: durable on the volume.
    std::string error = o.prefill.empty() ? "" : SyncTree(o.prefill + "/" + tag);
    if (error.empty()) durable = DurableLog::Open(o.durable_dir, tag, &error);
    if (durable == nullptr) {
      std::fprintf(stderr, "worker %u: %s\n", index, error.c_str());
      return 2;
    }
  }
  for (uint64_t n = 0; n < o.ops && !m.found(); ++n) {
    log.push_back(gen->Next());
    if (durable != nullptr) {
      std::string error = n % o.durable_every == 0 ? durable->MakeDurable(test.root, ref.root) : "";
      if (error.empty()) error = durable->Touching(log.back(), ref);
      if (!error.empty()) {
        std::fprintf(stderr, "worker %u: %s\n", index, error.c_str());
        return 2;
      }
    }
    int ref_errno = 0;
    m = Step(o, log.back(), n, log.size(), &test, &ref, &checker, &ref_errno);
    stats.Add(log.back().kind, ref_errno);
  }
  if (!m.found()) m = Finish(&test, &ref, &checker);
  if (o.stats) stats.Print(index);
  if (!m.found()) return 0;
  std::fprintf(stderr,
               "MISMATCH: worker %u (--seed %llu --procs %u, worker seed %llu) after %zu "
               "operations (and %zu on the volume before them): %s\n",
               index, static_cast<unsigned long long>(o.seed), o.procs,  // NOLINT
               static_cast<unsigned long long>(seed),                    // NOLINT
               log.size() - prefilled, prefilled, m.what.c_str());
  if (!o.shrink) {
    PrintLog(log, 200);
    return 1;
  }
  const std::string shrink_tag = "shrink-" + tag;
  Mismatch again = Replay(o, shrink_tag, log);
  if (!again.found()) {
    std::fprintf(stderr,
                 "  not reproduced by this worker alone (a race with other workers?); "
                 "its log:\n");
    PrintLog(log, 200);
    return 1;
  }
  std::vector<Operation> shortest = Shrink(o, shrink_tag, log, &again);
  std::fprintf(stderr, "shortest log found (%zu of %zu operations) showing: %s\n", shortest.size(),
               log.size(), again.what.c_str());
  PrintLog(shortest, 200);
  return 1;
}

int CheckDurableAll(const Options& o) {
  int bad = 0;
  size_t total = 0;
  for (unsigned i = 0; i < o.procs; ++i) {
    const std::string tag = "w" + std::to_string(i);
    size_t checked = 0;
    const std::string report = CheckDurable(o.test + "/" + tag, o.durable_dir, tag, &checked);
    total += checked;
    if (report.empty()) continue;
    std::fprintf(stderr, "worker %u, against its last durable state:\n%s", i, report.c_str());
    ++bad;
  }
  std::fprintf(stderr, "detourfs-stress: %zu entries checked against the durable states: %s\n",
               total, bad == 0 ? "nothing lost, changed or back" : "DIFFERENCES");
  return bad == 0 ? 0 : 1;
}

}  // namespace detourfs::stress
