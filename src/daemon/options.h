// DaemonOptions: the detourfs command line, parsed with CLI11.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace detourfs {

// Exit codes of detourfs (documented in docs/detourfs.md and --help).
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,       // bad command line
  kExitMountpoint = 2,  // mountpoint missing, not a directory, or already detourfs
  kExitLower = 3,       // the lower directory cannot be opened
  kExitMount = 4,       // the FUSE session could not be created or mounted
  kExitRuntime = 5,     // the session ended with an error
  kExitConfig = 6,      // the config file is missing (when named) or invalid
};

struct DaemonOptions {
  std::string mountpoint;     // may be empty with --check-config or --explain
  std::string config_file;    // empty: kDefaultConfigPath, if it exists
  bool check_config = false;  // validate, print the effective rules, exit
  std::string explain;        // say which rule and tier this path gets, exit
  std::string lower;          // empty: the mountpoint itself, mounted over in place
  std::vector<std::string> fuse_options;
  bool foreground = false;
  bool fuse_debug = false;
  std::string log_level = "info";
  std::string log_file;
  std::string record_changes;  // --record-changes FILE
  unsigned threads = 8;
  size_t fd_cache = 4096;
  double entry_timeout = 60.0;
  double attr_timeout = 60.0;
  double negative_timeout = 60.0;
  bool writeback_cache = true;
  bool splice = true;
  bool io_uring = false;             // serve through io_uring rings when the kernel allows it
  bool io_uring_sched_idle = false;  // ring threads as SCHED_IDLE
};

// Parses argv. Returns the options, or the exit code to leave with at once
// (after --help, --version or a usage error, already printed).
struct ParsedOptions {
  std::optional<DaemonOptions> options;
  int exit_code = kExitOk;
};
ParsedOptions ParseOptions(int argc, char** argv);

}  // namespace detourfs
