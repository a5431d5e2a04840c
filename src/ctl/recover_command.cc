// `detourctl recover DIR` (recover_command.h).
#include "ctl/recover_command.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "detourfs/status.h"
#include "flush/epoch_recovery.h"
#include "sys/sys.h"

namespace detourfs::ctl {

namespace {

// Discards epoch `epoch` of the volume `volume` (at `dir`).
int Discard(int volume, const std::string& dir, uint64_t epoch) {
  Result<flush::EpochArea> area = flush::OpenVolumeArea(volume);
  if (!area.ok()) {
    std::fprintf(stderr, "detourctl recover: cannot open '%s/.detourfs/flush': %s\n", dir.c_str(),
                 ErrnoText(area.error()));
    return area.error() == EBUSY ? kExitUsage : kExitCannot;
  }
  Result<std::vector<uint64_t>> epochs = area->InFlight();
  if (!epochs.ok() || std::find(epochs->begin(), epochs->end(), epoch) == epochs->end()) {
    std::fprintf(stderr, "detourctl recover: '%s' has no epoch %llu in flight\n", dir.c_str(),
                 static_cast<unsigned long long>(epoch));
    return kExitUsage;
  }
  // Recorded as done first: its number is never used again, and a removal
  // cut short leaves nothing recovery would apply.
  if (Result<void> r = area->Done(epoch); !r.ok()) {
    std::fprintf(stderr, "detourctl recover: cannot discard epoch %llu: %s\n",
                 static_cast<unsigned long long>(epoch), ErrnoText(r.error()));
    return kExitCannot;
  }
  std::printf(
      "epoch %llu: discarded; the persisted subtrees it named may hold part of it on the volume "
      "until the next flush writes them again from the tiers\n",
      static_cast<unsigned long long>(epoch));
  return kExitOk;
}

}  // namespace

int RunRecover(const std::string& dir, uint64_t discard) {
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
  if (discard != 0) return Discard(volume->get(), dir, discard);
  Result<flush::RecoveryReport> report = flush::RecoverVolume(volume->get());
  if (!report.ok() && report.error() == EBUSY) {
    std::fprintf(stderr,
                 "detourctl recover: a detourfs (or another detourctl recover) is running on "
                 "'%s' and holds its flush area; a running detourfs recovered it when it "
                 "started\n",
                 dir.c_str());
    return kExitUsage;
  }
  if (!report.ok() && report.error() == EPERM) {
    std::fprintf(stderr,
                 "detourctl recover: %s: not root's and private, so detourfs did not make it "
                 "(or root is squashed or mapped on this filesystem); nothing in it is applied\n",
                 flush::DescribeAreaOwnership(volume->get()).c_str());
    return kExitCannot;
  }
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
  for (uint64_t epoch : report->cleared) {
    std::printf("epoch %llu: done already, its leftovers removed\n",
                static_cast<unsigned long long>(epoch));
  }
  for (const std::string& why : report->unfinished) {
    std::fprintf(stderr, "detourctl recover: %s\n", why.c_str());
  }
  if (!report->unfinished.empty()) return kExitUnfinished;
  if (report->finished.empty() && report->discarded.empty() && report->cleared.empty()) {
    std::printf("nothing to recover: no flush was interrupted on '%s'\n", dir.c_str());
  }
  return kExitOk;
}

}  // namespace detourfs::ctl
