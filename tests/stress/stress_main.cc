// detourfs-stress: a random-operation model checker in the spirit of fsx and
// fsstress. Several worker processes each run a seeded random sequence of
// operations against a directory under test and a reference directory (on
// tmpfs), compare every result and errno, and compare the whole trees every
// --check-every operations. On a mismatch a worker prints the seed, replays
// its log alone in fresh directories and shrinks it (delta debugging) to the
// shortest sequence that still shows the mismatch, and exits 1.
//   detourfs-stress --test DIR --ref DIR [--seed N] [--ops N] [--procs P]
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "stress_ops.h"

namespace detourfs::stress {
namespace {

struct Options {
  std::string test;
  std::string ref;
  uint64_t seed = 1;
  uint64_t ops = 2000;
  unsigned procs = 4;
  uint64_t check_every = 100;
  bool shrink = true;
  unsigned shrink_seconds = 120;
  // Content made directly in this directory (the volume under --test, for a
  // mount with routes) and in the reference before the run, so operations
  // meet files that exist beneath the overlay.
  std::string prefill;
  uint64_t prefill_ops = 300;
};

// Applies the prefill sequence to <prefill>/<dir> and <ref>/<dir>.
void Prefill(const Options& o, const std::string& dir, uint64_t seed) {
  if (o.prefill.empty()) return;
  Side vol{o.prefill + "/" + dir, {-1, -1}};
  Side ref{o.ref + "/" + dir, {-1, -1}};
  std::error_code ec;
  std::filesystem::create_directories(vol.root, ec);
  std::filesystem::create_directories(ref.root, ec);
  Generator gen(seed ^ 0x5EED5EEDULL);
  for (uint64_t i = 0; i < o.prefill_ops; ++i) (void)ApplyBoth(gen.Next(), &vol, &ref);
}

// Replays `ops` in fresh directories; true if a mismatch shows.
// Each replay gets directories of its own: a faulty file system under test may
// not let the previous ones be removed.
bool Reproduces(const Options& o, const std::string& tag, const std::vector<Operation>& ops,
                std::string* what) {
  static unsigned attempt = 0;
  const std::string dir = tag + "." + std::to_string(++attempt);
  Side test{o.test + "/" + dir, {-1, -1}};
  Side ref{o.ref + "/" + dir, {-1, -1}};
  std::error_code ec;
  Prefill(o, dir, 0);
  std::filesystem::create_directory(test.root, ec);
  std::filesystem::create_directory(ref.root, ec);
  bool found = false;
  for (size_t i = 0; i < ops.size() && !found; ++i) {
    std::string diff = ApplyBoth(ops[i], &test, &ref);
    if (!diff.empty()) {
      *what = "step " + std::to_string(i + 1) + ": " + diff;
      found = true;
    }
  }
  if (!found) {
    for (int& fd : test.fds) ::close(std::exchange(fd, -1));
    for (int& fd : ref.fds) ::close(std::exchange(fd, -1));
    std::string diff = CompareTrees(test.root, ref.root);
    if (!diff.empty()) {
      *what = "trees differ at the end: " + diff;
      found = true;
    }
  }
  std::filesystem::remove_all(test.root, ec);
  std::filesystem::remove_all(ref.root, ec);
  return found;
}

// Delta debugging (ddmin) over the operation list, within a time budget.
std::vector<Operation> Shrink(const Options& o, const std::string& tag, std::vector<Operation> ops,
                              std::string* what) {
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
      std::string why;
      if (Reproduces(o, tag, candidate, &why)) {
        ops = std::move(candidate);
        *what = why;
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

int Worker(const Options& o, unsigned index) {
  const uint64_t seed = o.seed * 1000003 + index;
  const std::string tag = "w" + std::to_string(index);
  Side test{o.test + "/" + tag, {-1, -1}};
  Side ref{o.ref + "/" + tag, {-1, -1}};
  std::error_code ec;
  Prefill(o, tag, 0);
  std::filesystem::create_directories(test.root, ec);
  std::filesystem::create_directories(ref.root, ec);
  Generator gen(seed);
  std::vector<Operation> log;
  std::string diff;
  for (uint64_t n = 0; n < o.ops && diff.empty(); ++n) {
    log.push_back(gen.Next());
    diff = ApplyBoth(log.back(), &test, &ref);
    if (diff.empty() && (n + 1) % o.check_every == 0) {
      diff = CompareTrees(test.root, ref.root);
      if (!diff.empty()) diff = "trees differ: " + diff;
    }
  }
  if (diff.empty()) {
    for (int& fd : test.fds) ::close(std::exchange(fd, -1));
    for (int& fd : ref.fds) ::close(std::exchange(fd, -1));
    diff = CompareTrees(test.root, ref.root);
    if (!diff.empty()) diff = "trees differ at the end: " + diff;
  }
  if (diff.empty()) return 0;
  std::fprintf(stderr,
               "MISMATCH: worker %u (--seed %llu --procs %u, worker seed %llu) after %zu "
               "operations: %s\n",
               index, static_cast<unsigned long long>(o.seed), o.procs,           // NOLINT
               static_cast<unsigned long long>(seed), log.size(), diff.c_str());  // NOLINT
  if (!o.shrink) {
    PrintLog(log, 200);
    return 1;
  }
  std::string what;
  std::string shrink_tag = "shrink-" + tag;
  if (!Reproduces(o, shrink_tag, log, &what)) {
    std::fprintf(stderr,
                 "  not reproduced by this worker alone (a race with other workers?); "
                 "its log:\n");
    PrintLog(log, 200);
    return 1;
  }
  std::vector<Operation> shortest = Shrink(o, shrink_tag, log, &what);
  std::fprintf(stderr, "shortest log found (%zu of %zu operations) showing: %s\n", shortest.size(),
               log.size(), what.c_str());
  PrintLog(shortest, 200);
  return 1;
}

}  // namespace
}  // namespace detourfs::stress

int main(int argc, char** argv) {
  detourfs::stress::Options o;
  CLI::App app{
      "detourfs-stress: random operations against a directory under test and a "
      "reference, compared step by step"};
  app.add_option("--test", o.test, "Directory under test (e.g. inside a detourfs mount)")
      ->required();
  app.add_option("--ref", o.ref, "Reference directory (tmpfs)")->required();
  app.add_option("--seed", o.seed, "Seed (default 1)");
  app.add_option("--ops", o.ops, "Operations per worker (default 2000)");
  app.add_option("--procs", o.procs, "Worker processes (default 4)");
  app.add_option("--check-every", o.check_every, "Compare whole trees every N operations");
  app.add_option("--shrink-seconds", o.shrink_seconds, "Time budget for shrinking (default 120)");
  app.add_flag("!--no-shrink", o.shrink, "Print the log without shrinking it");
  app.add_option("--prefill", o.prefill,
                 "Before each run, make content directly in this directory (the volume "
                 "beneath --test) and in the reference");
  app.add_option("--prefill-ops", o.prefill_ops, "Operations of the prefill (default 300)");
  CLI11_PARSE(app, argc, argv);
  if (o.procs == 0 || o.check_every == 0) {
    std::fprintf(stderr, "--procs and --check-every must be at least 1\n");
    return 2;
  }
  std::vector<pid_t> children;
  for (unsigned i = 0; i < o.procs; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) ::_exit(detourfs::stress::Worker(o, i));
    children.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  std::fprintf(stderr, "detourfs-stress: seed %llu, %u workers x %llu operations: %s\n",
               static_cast<unsigned long long>(o.seed), o.procs,  // NOLINT
               static_cast<unsigned long long>(o.ops),            // NOLINT
               failed == 0 ? "all agreed with the reference" : "MISMATCH");
  return failed == 0 ? 0 : 1;
}
