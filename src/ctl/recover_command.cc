// `detourctl recover DIR` (recover_command.h).
#include "ctl/recover_command.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <cstdio>

#include "detourfs/status.h"
#include "flush/epoch_recovery.h"
#include "sys/sys.h"

namespace detourfs::ctl {

int RunRecover(const std::string& dir) {
  Result<UniqueFd> volume = sys::OpenPath(dir.c_str(), O_PATH | O_DIRECTORY);
  if (!volume.ok()) {
    std::fprintf(stderr, "detourctl recover: cannot open '%s': %s\n", dir.c_str(),
                 ErrnoText(volume.error()));
    return kExitCannot;
  }
  struct statfs fs {};
  if (::fstatfs(volume->get(), &fs) == 0 && fs.f_type == FUSE_SUPER_MAGIC) {
    std::fprintf(stderr,
                 "detourctl recover: '%s' is a FUSE mount; if detourfs serves it, it recovered "
                 "its volume when it started. Run this on the volume itself, with detourfs "
                 "stopped.\n",
                 dir.c_str());
    return kExitUsage;
  }
  Result<flush::RecoveryReport> report = flush::RecoverVolume(volume->get());
  if (!report.ok()) {
    std::fprintf(stderr, "detourctl recover: cannot read '%s/.detourfs/flush': %s\n", dir.c_str(),
                 ErrnoText(report.error()));
    return kExitCannot;
  }
  for (uint64_t epoch : report->finished) {
    std::printf("epoch %llu: committed, finished and verified\n",
                static_cast<unsigned long long>(epoch));
  }
  for (uint64_t epoch : report->discarded) {
    std::printf("epoch %llu: not committed, discarded\n", static_cast<unsigned long long>(epoch));
  }
  for (const std::string& why : report->unfinished) {
    std::fprintf(stderr, "detourctl recover: %s\n", why.c_str());
  }
  if (!report->unfinished.empty()) return kExitUnfinished;
  if (report->finished.empty() && report->discarded.empty()) {
    std::printf("nothing to recover: no flush was interrupted on '%s'\n", dir.c_str());
  }
  return kExitOk;
}

}  // namespace detourfs::ctl
