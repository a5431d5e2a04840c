// Child process helpers for the mount tests (process.h).
#include "lib/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace detourfs::testing {

bool IsFuseMount(const std::string& path) {
  constexpr long kFuseSuperMagic = 0x65735546;  // NOLINT
  struct statfs sfs {};
  return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == kFuseSuperMagic;
}

pid_t SpawnLogged(const std::vector<std::string>& args, const std::string& log,
                  long fd_limit,  // NOLINT
                  std::string* error) {
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    if (fd_limit > 0) {
      struct rlimit rl {
        static_cast<rlim_t>(fd_limit), static_cast<rlim_t>(fd_limit)
      };
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

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

bool WaitForFuseMount(pid_t pid, const std::string& path, const std::string& log,
                      std::chrono::milliseconds timeout, std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      *error = "the daemon exited before mounting (status " + std::to_string(status) + "); log:\n" +
               ReadWholeFile(log);
      return false;
    }
    if (IsFuseMount(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error = "timed out waiting for the mount at " + path + "; log:\n" + ReadWholeFile(log);
  return false;
}

void TerminateChild(pid_t pid) {
  if (pid <= 0) return;
  int status = 0;
  ::kill(pid, SIGTERM);
  if (!WaitChild(pid, std::chrono::seconds(10), &status)) {
    ::kill(pid, SIGKILL);
    WaitChild(pid, std::chrono::seconds(10), &status);
  }
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace detourfs::testing
