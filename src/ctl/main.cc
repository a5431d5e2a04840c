// detourctl: the control tool of detourfs. Today: `recover DIR` (offline
// recovery of a volume). The control socket and status, sync, and the
// rest of docs/detourctl.md come with the flush (issue 16) and issue 17.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "build_config.h"
#include "ctl/recover_command.h"

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"detourctl: controls detourfs mounts and repairs their volumes."};
  app.set_version_flag("-V,--version", std::string("detourctl ") + DETOURFS_VERSION);
  app.require_subcommand(1);
  std::string dir;
  CLI::App* recover = app.add_subcommand(
      "recover",
      "Finish or undo a flush that a crash cut short, on a volume detourfs is not running on.\n"
      "An epoch whose manifest was committed is applied and verified; one that was not is\n"
      "discarded. Exit status: 0 done (or nothing to do), 1 an epoch could not be finished,\n"
      "2 usage (e.g. DIR is a FUSE mount), 3 DIR or its flush area cannot be read.");
  recover->add_option("DIR", dir, "The volume's root directory (the home detourfs mounts over)")
      ->required();
  uint64_t discard = 0;
  recover->add_option("--discard", discard,
                      "Discard epoch N instead, committed or not: the way out when it cannot be "
                      "finished (the subtrees it named may hold part of it until the next "
                      "flush)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : detourfs::ctl::kExitUsage;
  }
  if (*recover) return detourfs::ctl::RunRecover(dir, discard);
  return detourfs::ctl::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "detourctl: %s\n", e.what());
    return detourfs::ctl::kExitCannot;
  }
}
