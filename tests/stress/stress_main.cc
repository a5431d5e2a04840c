// detourfs-stress: a random-operation model checker in the spirit of fsx and
// fsstress. Several worker processes each run a seeded random sequence of
// operations against a directory under test and a reference directory (on
// tmpfs), compare every result and errno, and compare the whole trees every
// --check-every operations. On a mismatch a worker prints the seed, replays
// its log alone in fresh directories and shrinks it (delta debugging) to the
// shortest sequence that still shows the mismatch, and exits 1.
//   detourfs-stress --test DIR --ref DIR [--seed N] [--ops N] [--procs P]
//   detourfs-stress --home --test MOUNT --ref DIR --prefill VOLUME ...
// With --home each worker's directory (MOUNT/w0, ...) is a home-like tree
// whose names collide with a home's routing rules (stress_home.h).
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "stress_ops.h"
#include "stress_run.h"

int main(int argc, char** argv) {
  detourfs::stress::Options o;
  CLI::App app{
      "detourfs-stress: random operations against a directory under test and a "
      "reference, compared step by step"};
  app.add_option("--test", o.test, "Directory under test (e.g. inside a detourfs mount)")
      ->required();
  app.add_option("--ref", o.ref, "Reference directory (tmpfs); required but with --check-durable");
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
  app.add_flag("--home", o.home,
               "Each worker's directory is a home-like tree whose names collide with "
               "routing rules: **/node_modules, **/dist/, **/build/, /*/.cache");
  app.add_option("--skip", o.skip,
                 "Never generate these operations (e.g. link,rename_whiteout), in the prefill "
                 "(and the home skeleton) too, to look past a known bug")
      ->delimiter(',');
  app.add_flag("--stats", o.stats, "Print how often each operation ran and succeeded");
  app.add_option("--durable-every", o.durable_every,
                 "Under power cuts: make each worker's tree durable (fsync of every file and "
                 "directory) every N operations and record it in --durable-dir");
  app.add_option("--durable-dir", o.durable_dir,
                 "Where the durable states and the operations since are recorded (outside the "
                 "filesystems cut)");
  bool check_durable = false;
  app.add_flag("--check-durable", check_durable,
               "After a power cut: compare each worker's tree under --test with its last durable "
               "state in --durable-dir (exit 1 on a difference)");
  CLI11_PARSE(app, argc, argv);
  if (check_durable || o.durable_every > 0) {
    if (o.durable_dir.empty()) {
      std::fprintf(stderr, "--check-durable and --durable-every need --durable-dir\n");
      return 2;
    }
    if (check_durable) return detourfs::stress::CheckDurableAll(o);
  }
  if (o.ref.empty()) {
    std::fprintf(stderr, "--ref is required\n");
    return 2;
  }
  if (o.procs == 0 || o.check_every == 0) {
    std::fprintf(stderr, "--procs and --check-every must be at least 1\n");
    return 2;
  }
  for (const std::string& name : o.skip) {
    detourfs::stress::Kind kind{};
    if (!detourfs::stress::KindFromName(name, &kind)) {
      std::fprintf(stderr, "--skip: no operation '%s'\n", name.c_str());
      return 2;
    }
  }
  if (o.home) {
    // A whiteout is a character device: opening one must fail the same way
    // on both sides (EACCES on a nodev mount, as FUSE mounts are, else ENXIO).
    struct statvfs t {};
    struct statvfs r {};
    if (::statvfs(o.test.c_str(), &t) != 0 || ::statvfs(o.ref.c_str(), &r) != 0 ||
        (t.f_flag & ST_NODEV) != (r.f_flag & ST_NODEV)) {
      std::fprintf(stderr,
                   "--home: --test and --ref must both be nodev or both not "
                   "(mount the reference tmpfs with -o nodev,nosuid)\n");
      return 2;
    }
  }
  std::vector<pid_t> children;
  const pid_t parent = ::getpid();
  for (unsigned i = 0; i < o.procs; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) {
      // A worker ends with the run (killed at a power cut, it must not go on).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(2);
      ::_exit(detourfs::stress::Worker(o, i));
    }
    children.push_back(pid);
  }
  int failed = 0;
  bool usage_error = false;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) usage_error = true;
  }
  std::fprintf(stderr, "detourfs-stress: seed %llu, %u workers x %llu operations: %s\n",
               static_cast<unsigned long long>(o.seed), o.procs,  // NOLINT
               static_cast<unsigned long long>(o.ops),            // NOLINT
               failed == 0 ? "all agreed with the reference" : "MISMATCH");
  return usage_error ? 2 : failed == 0 ? 0 : 1;
}
