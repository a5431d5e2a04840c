// AsUser: fork, drop privileges, report the errno back.
#include "lib/as_user.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

namespace detourfs::testing {

int InChild(const std::function<int()>& fn) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::close(pipefd[0]);
    int result = fn();
    (void)!::write(pipefd[1], &result, sizeof(result));
    ::_exit(0);
  }
  ::close(pipefd[1]);
  int result = -1;
  if (::read(pipefd[0], &result, sizeof(result)) != sizeof(result)) result = -1;
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return result;
}

int AsUser(uid_t uid, gid_t gid, const std::function<int()>& fn, const std::vector<gid_t>& groups) {
  return InChild([&] {
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      return -1;
    }
    return fn();
  });
}

int OpenAsUser(uid_t uid, gid_t gid, const std::string& path, int flags, mode_t mode) {
  return AsUser(uid, gid, [&] {
    int fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  });
}

}  // namespace detourfs::testing
