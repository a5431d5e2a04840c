// MountedFs: a real detourfs mount for a test, and its guaranteed cleanup.
//
// Start() makes a private work directory, optionally an ext4 filesystem on a
// loop device, and starts the real detourfs binary ($DETOURFS_BIN) in the
// foreground, mounted in place over `tree()`; `ref()` is a plain directory on
// the same filesystem for parity checks. It waits for the mount by polling
// statfs for the FUSE magic and fails at once if the daemon exits first.
//
// Stop() unmounts and reaps the daemon, returning its exit status. The
// destructor always cleans up, even after a failed assertion: lazy unmount,
// SIGTERM, then SIGKILL after a bound; then the loop filesystem and the work
// directory go.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace detourfs::testing {

enum class Backing { kPlainDir, kExt4Loop };

struct MountConfig {
  Backing backing = Backing::kPlainDir;
  std::vector<std::string> extra_args;  // more detourfs options
  long fd_limit = 0;                    // NOLINT: RLIMIT_NOFILE for the daemon; 0 keeps it
  std::string ext4_size = "512M";
  // Serve a separate directory (`--lower`) instead of mounting in place, so a
  // test can change it underneath the mount.
  bool separate_lower = false;
  // Serve this existing directory (`--lower`), e.g. a flakyfs mount.
  std::string lower_dir;
};

class MountedFs {
 public:
  // Returns nullptr and sets `error` when the mount could not be made.
  static std::unique_ptr<MountedFs> Start(const MountConfig& config, std::string* error);
  ~MountedFs();

  const std::string& work() const { return work_; }
  const std::string& tree() const { return tree_; }  // the mountpoint
  const std::string& ref() const { return ref_; }
  // The directory served: tree() itself when mounted in place.
  const std::string& lower() const { return lower_; }
  pid_t pid() const { return pid_; }
  std::string LogPath() const { return work_ + "/daemon.log"; }
  std::string Log() const;
  // Lines of the log that report warnings, errors or sanitizer findings.
  std::vector<std::string> LogProblems() const;

  // Unmounts cleanly and waits for the daemon: its exit code, or -1 if it
  // had to be killed or died by a signal. Calling it again returns the same.
  int Stop();
  // SIGKILLs the daemon and detaches its dead mount: a crash.
  void Kill() {
    KillKeepingMount();
    Detach();
  }
  // SIGKILLs the daemon but leaves its dead mount in place, so every call
  // through it fails (ENOTCONN) instead of reaching the directory beneath
  // (mounted in place, the mountpoint is that directory once detached).
  void KillKeepingMount();
  // Waits (up to `seconds`) for a daemon that kills itself (a failpoint),
  // then detaches its dead mount. True when it died.
  bool AwaitDeath(int seconds);
  void Detach();
  // Starts the daemon again with the same arguments after Kill or Stop.
  bool Restart(std::string* error);
  // Number of fds the daemon holds now.
  int DaemonFdCount() const;

 private:
  MountedFs() = default;
  bool WaitForMount(std::string* error);
  void ForceCleanup();

  std::string work_, tree_, ref_, fsroot_, lower_;
  std::vector<std::string> args_;
  long fd_limit_ = 0;  // NOLINT: as MountConfig::fd_limit
  bool loop_mounted_ = false;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  bool mounted_ = false;
};

// The detourfs binary under test: $DETOURFS_BIN, else from PATH.
std::string DetourfsBinary();

// Runs `command` with /bin/sh; returns its exit status (-1 on a signal).
int Shell(const std::string& command);
// Runs `command`, returning its stdout; `status` gets the exit status.
std::string ShellOutput(const std::string& command, int* status = nullptr);

}  // namespace detourfs::testing
