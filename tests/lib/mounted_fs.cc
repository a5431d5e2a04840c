// MountedFs: start, wait for, stop and clean up a real detourfs mount.
#include "lib/mounted_fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "lib/process.h"

namespace detourfs::testing {
std::string DetourfsBinary() {
  const char* bin = ::getenv("DETOURFS_BIN");
  return bin ? bin : "detourfs";
}

int Shell(const std::string& command) {
  int st = std::system(command.c_str());
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

std::string ShellOutput(const std::string& command, int* status) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) {
    if (status) *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (status) *status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
  return out;
}

std::unique_ptr<MountedFs> MountedFs::Start(const MountConfig& config, std::string* error) {
  std::unique_ptr<MountedFs> fs(new MountedFs());
  char tmpl[] = "/tmp/detourfs-test.XXXXXX";
  if (!::mkdtemp(tmpl)) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return nullptr;
  }
  fs->work_ = tmpl;
  ::chmod(tmpl, 0755);  // as-user tests must reach the tree
  fs->fsroot_ = fs->work_;
  if (config.backing == Backing::kExt4Loop) {
    fs->fsroot_ = fs->work_ + "/ext4";
    const std::string img = fs->work_ + "/disk.img";
    std::string cmd = "truncate -s " + config.ext4_size + " " + img + " && mkfs.ext4 -q -F " + img +
                      " >/dev/null 2>&1 && mkdir -p " + fs->fsroot_ + " && mount -o loop " + img +
                      " " + fs->fsroot_;
    if (Shell(cmd) != 0) {
      *error = "cannot make an ext4 loop filesystem (" + cmd + ")";
      return nullptr;
    }
    fs->loop_mounted_ = true;
  }
  fs->tree_ = fs->fsroot_ + "/tree";
  fs->ref_ = fs->fsroot_ + "/ref";
  fs->lower_ = config.separate_lower ? fs->fsroot_ + "/lower" : fs->tree_;
  if (::mkdir(fs->tree_.c_str(), 0755) != 0 || ::mkdir(fs->ref_.c_str(), 0755) != 0 ||
      (config.separate_lower && ::mkdir(fs->lower_.c_str(), 0755) != 0)) {
    *error = std::string("mkdir: ") + std::strerror(errno);
    return nullptr;
  }

  // DETOURFS_TEST_LOG_LEVEL=debug keeps every change in the daemon's log
  // (with DETOURFS_KEEP_TEST_DIRS=1, to read it after the test).
  const char* level = ::getenv("DETOURFS_TEST_LOG_LEVEL");
  fs->args_ = {DetourfsBinary(), fs->tree_, "-f", "--log-level",
               level != nullptr && *level != '\0' ? level : "info"};
  if (!config.lower_dir.empty()) fs->lower_ = config.lower_dir;
  if (config.separate_lower || !config.lower_dir.empty()) {
    fs->args_.emplace_back("--lower");
    fs->args_.push_back(fs->lower_);
  }
  // scripts/test.sh sets DETOURFS_TEST_IO_URING=1 for its pass with the
  // kernel's io_uring switch on: every mount then serves through the rings
  // (a test's own --no-io-uring comes later on the line and wins).
  if (const char* u = ::getenv("DETOURFS_TEST_IO_URING");
      u != nullptr && std::strcmp(u, "1") == 0) {
    fs->args_.emplace_back("--io-uring");
  }
  fs->args_.insert(fs->args_.end(), config.extra_args.begin(), config.extra_args.end());
  fs->fd_limit_ = config.fd_limit;
  fs->pid_ = SpawnLogged(fs->args_, fs->LogPath(), fs->fd_limit_, error);
  if (fs->pid_ < 0) return nullptr;
  if (!fs->WaitForMount(error)) return nullptr;
  return fs;
}

bool MountedFs::WaitForMount(std::string* error) {
  if (!WaitForFuseMount(pid_, tree_, LogPath(), std::chrono::seconds(20), error)) {
    if (!IsFuseMount(tree_)) pid_ = -1;  // it exited (WaitForFuseMount reaped it)
    return false;
  }
  mounted_ = true;
  return true;
}

void MountedFs::KillKeepingMount() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    WaitChild(pid_, std::chrono::seconds(10), &status);
    pid_ = -1;
  }
}

bool MountedFs::AwaitDeath(int seconds) {
  if (pid_ <= 0) return false;
  int status = 0;
  if (!WaitChild(pid_, std::chrono::seconds(seconds), &status)) return false;
  pid_ = -1;
  Detach();
  return true;
}

void MountedFs::Detach() {
  // The kernel keeps the dead connection's mount until it is detached.
  if (mounted_) {
    ::umount2(tree_.c_str(), MNT_DETACH);
    mounted_ = false;
  }
}

bool MountedFs::Restart(std::string* error) {
  if (pid_ > 0 || mounted_) {
    *error = "Restart: the daemon is still running";
    return false;
  }
  pid_ = SpawnLogged(args_, LogPath(), fd_limit_, error);
  return pid_ > 0 && WaitForMount(error);
}

int MountedFs::Stop() {
  if (pid_ < 0) return exit_code_;
  // A clean unmount: retry while something (a test's leftover fd) is busy.
  // Not by statfs first: a mount whose daemon died answers ENOTCONN, and
  // would be left behind.
  for (int i = 0; i < 100 && mounted_; ++i) {
    if (::umount2(tree_.c_str(), 0) == 0 || errno == EINVAL || errno == ENOENT) {
      mounted_ = false;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (mounted_) return -1;  // the destructor forces it
  int status = 0;
  if (!WaitChild(pid_, std::chrono::seconds(20), &status)) return -1;
  pid_ = -1;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return exit_code_;
}

void MountedFs::ForceCleanup() {
  if (mounted_) {
    ::umount2(tree_.c_str(), MNT_DETACH);
    mounted_ = false;
  }
  TerminateChild(pid_);
  pid_ = -1;
}

MountedFs::~MountedFs() {
  ForceCleanup();
  if (loop_mounted_) {
    // The loop device was set up with autoclear: unmounting detaches it.
    if (::umount2(fsroot_.c_str(), 0) != 0) ::umount2(fsroot_.c_str(), MNT_DETACH);
  }
  if (!work_.empty() && ::getenv("DETOURFS_KEEP_TEST_DIRS") == nullptr) {
    Shell("rm -rf '" + work_ + "'");
  }
}

std::string MountedFs::Log() const { return ReadWholeFile(LogPath()); }

std::vector<std::string> MountedFs::LogProblems() const {
  std::vector<std::string> out;
  std::istringstream in(Log());
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" warning: ") != std::string::npos ||
        line.find(" error: ") != std::string::npos ||
        line.find(" critical: ") != std::string::npos ||
        line.find("Sanitizer") != std::string::npos ||
        line.find("runtime error:") != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

int MountedFs::DaemonFdCount() const {
  return std::stoi(ShellOutput("ls /proc/" + std::to_string(pid_) + "/fd | wc -l"));
}

}  // namespace detourfs::testing
