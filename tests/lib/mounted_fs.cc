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

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace detourfs::testing {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;  // NOLINT

bool IsFuseMount(const std::string& path) {
  struct statfs sfs {};
  return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == kFuseSuperMagic;
}

// Polls waitpid for up to `timeout`; returns true if the child was reaped.
bool WaitChild(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;  // not our child any more
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string BinaryPath() {
  const char* bin = ::getenv("DETOURFS_BIN");
  return bin ? bin : "detourfs";
}

}  // namespace

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

  std::vector<std::string> args = {BinaryPath(), fs->tree_, "-f", "--log-level", "info"};
  if (config.separate_lower) {
    args.emplace_back("--lower");
    args.push_back(fs->lower_);
  }
  args.insert(args.end(), config.extra_args.begin(), config.extra_args.end());
  const std::string log = fs->LogPath();
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    if (config.fd_limit > 0) {
      struct rlimit rl {
        static_cast<rlim_t>(config.fd_limit), static_cast<rlim_t>(config.fd_limit)
      };
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  fs->pid_ = pid;
  if (!fs->WaitForMount(error)) return nullptr;
  return fs;
}

bool MountedFs::WaitForMount(std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *error =
          "detourfs exited before mounting (status " + std::to_string(status) + "); log:\n" + Log();
      return false;
    }
    if (IsFuseMount(tree_)) {
      mounted_ = true;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error = "timed out waiting for the mount; log:\n" + Log();
  return false;
}

int MountedFs::Stop() {
  if (pid_ < 0) return exit_code_;
  // A clean unmount: retry while something (a test's leftover fd) is busy.
  for (int i = 0; i < 100 && mounted_; ++i) {
    if (!IsFuseMount(tree_) || ::umount2(tree_.c_str(), 0) == 0) {
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
  if (pid_ > 0) {
    int status = 0;
    ::kill(pid_, SIGTERM);
    if (!WaitChild(pid_, std::chrono::seconds(10), &status)) {
      ::kill(pid_, SIGKILL);
      WaitChild(pid_, std::chrono::seconds(10), &status);
    }
    pid_ = -1;
  }
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

std::string MountedFs::Log() const {
  std::ifstream in(LogPath());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
