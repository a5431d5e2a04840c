// Child processes of the tests: FUSE daemons (detourfs, flakyfs) started with
// their output in a log file, waited for until their mount is up, and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace detourfs::testing {

// True when `path` is the root of a FUSE mount.
bool IsFuseMount(const std::string& path);

// Forks and execs args[0] in its own process group, stdout and stderr
// appended to `log`, RLIMIT_NOFILE set to `fd_limit` if > 0. Returns the pid,
// or -1 with `error` set.
pid_t SpawnLogged(const std::vector<std::string>& args, const std::string& log,
                  long fd_limit,  // NOLINT
                  std::string* error);

// Polls waitpid for up to `timeout`; true once the child is reaped (or is not
// our child).
bool WaitChild(pid_t pid, std::chrono::milliseconds timeout, int* status);

// Waits until `path` is a FUSE mount; false (with the log in `error`) if the
// process exits first or `timeout` passes.
bool WaitForFuseMount(pid_t pid, const std::string& path, const std::string& log,
                      std::chrono::milliseconds timeout, std::string* error);

// SIGTERM, then SIGKILL after a bound; always reaps.
void TerminateChild(pid_t pid);

// The whole content of a file ("" if it cannot be read).
std::string ReadWholeFile(const std::string& path);

}  // namespace detourfs::testing
