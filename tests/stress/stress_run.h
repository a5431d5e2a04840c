// One worker of the model checker: its prefill, its run of generated
// operations against the directory under test and the reference with the
// trees compared as it goes, and on a mismatch the shrinking of its log to
// the shortest one that still shows the same kind of mismatch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace detourfs::stress {

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
  // The home-like namespace (stress_home.h) instead of the flat one.
  bool home = false;
  // Kinds never generated (KindName), to look past a known bug.
  std::vector<std::string> skip;
  // Print how often each kind ran and how the reference answered.
  bool stats = false;
  // Under power cuts (stress_durable.h): every `durable_every` operations
  // the worker's tree is made durable and the state recorded in
  // `durable_dir`, outside the filesystems cut. 0: never.
  uint64_t durable_every = 0;
  std::string durable_dir;
};

// Runs worker `index` in <test>/w<index> and <ref>/w<index>: 0 if everything
// agreed, 1 on a mismatch (printed with its shortest log), 2 if the checker
// itself could not run.
int Worker(const Options& o, unsigned index);

// After a power cut (--check-durable): each worker's tree under <test>/w<i>
// compared with its last durable state (stress_durable.h). 0 if all agree,
// 1 on a difference (each printed).
int CheckDurableAll(const Options& o);

}  // namespace detourfs::stress
