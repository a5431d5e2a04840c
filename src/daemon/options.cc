// Command-line parsing for detourfs.
#include "daemon/options.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "build_config.h"

namespace detourfs {

ParsedOptions ParseOptions(int argc, char** argv) {
  DaemonOptions o;
  CLI::App app{
      "detourfs: a FUSE overlay mounted in place over a directory (a home on a slow or\n"
      "flaky volume). Everything passes through to the directory underneath.",
      "detourfs"};
  app.footer(
      "Exit codes: 0 ok, 1 usage, 2 bad mountpoint (missing, not a directory, already\n"
      "detourfs), 3 lower directory cannot be opened, 4 mount failed, 5 session error,\n"
      "6 bad config.\n"
      "Unmount with `fusermount3 -u MOUNTPOINT` (or SIGTERM to the daemon); after a crash,\n"
      "`umount -l MOUNTPOINT` clears the dead mount.");
  app.set_version_flag("-V,--version", std::string("detourfs ") + DETOURFS_VERSION);
  app.add_option("mountpoint", o.mountpoint,
                 "Directory to mount over (optional with --check-config and --explain)");
  app.add_option("-c,--config", o.config_file,
                 "Config file (default /etc/detourfs/detourfs.toml if it exists; without one "
                 "everything passes through)");
  app.add_flag(
      "--check-config", o.check_config,
      "Validate the config (against MOUNTPOINT if given), print the effective rules, exit");
  app.add_option("--explain", o.explain,
                 "Print which rule and tier PATH (relative to the mount root, or under "
                 "MOUNTPOINT; a trailing / means a directory) gets and why, then exit");
  app.add_option("--lower", o.lower,
                 "Serve this directory instead of the one under the mountpoint");
  app.add_option("-o", o.fuse_options, "FUSE mount options (comma-separated, repeatable)")
      ->delimiter(',')
      ->allow_extra_args(false);  // "-o dev MOUNTPOINT": the mountpoint is not an option value
  app.add_flag("-f,--foreground", o.foreground, "Stay in the foreground (log to stderr)");
  app.add_flag("-d,--fuse-debug", o.fuse_debug, "Print every FUSE request (implies -f)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-file", o.log_file,
                 "Log to this file (default: stderr in the foreground, syslog otherwise)");
  app.add_option("--threads", o.threads, "Most FUSE worker threads")
      ->check(CLI::Range(1U, 256U))
      ->capture_default_str();
  app.add_option("--fd-cache", o.fd_cache,
                 "Most fds kept open for inodes (the daemon never holds one per inode)")
      ->check(CLI::Range(size_t{16}, size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--entry-timeout", o.entry_timeout, "Seconds the kernel caches names")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--attr-timeout", o.attr_timeout, "Seconds the kernel caches attributes")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--negative-timeout", o.negative_timeout,
                 "Seconds the kernel caches that a name does not exist")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--record-changes", o.record_changes,
                 "Append every change made to a tier (or to the volume for routed content) to "
                 "FILE as JSON lines: the stream the write-back journal builds on (for tests)");
  bool no_writeback = false, no_splice = false;
  app.add_flag("--no-writeback-cache", no_writeback,
               "Send every write to the daemon at once (slower; see docs/caching.md)");
  app.add_flag("--no-splice", no_splice, "Copy read data to the kernel instead of splicing it");
  // The last of the two wins; --no-io-uring, the default, is kept for old scripts.
  app.add_flag("--io-uring,!--no-io-uring", o.io_uring,
               "Serve requests through FUSE over io_uring, per-CPU rings, when the kernel allows "
               "it (Linux 6.14+ with /sys/module/fuse/parameters/enable_uring on; otherwise "
               "/dev/fuse, as by default; see docs/caching.md)");
  app.add_flag("--io-uring-sched-idle", o.io_uring_sched_idle,
               "Run the ring threads as SCHED_IDLE: callers stay on their CPU (faster on an idle "
               "VM), but CPU-bound load starves the rings (see docs/caching.md)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return ParsedOptions{std::nullopt, rc == 0 ? kExitOk : kExitUsage};
  }
  if (o.mountpoint.empty() && !o.check_config && o.explain.empty()) {
    std::fprintf(stderr,
                 "detourfs: a MOUNTPOINT is required\nRun with --help for more information.\n");
    return ParsedOptions{std::nullopt, kExitUsage};
  }
  o.writeback_cache = !no_writeback;
  o.splice = !no_splice;
  if (o.fuse_debug) o.foreground = true;
  return ParsedOptions{o, kExitOk};
}

}  // namespace detourfs
