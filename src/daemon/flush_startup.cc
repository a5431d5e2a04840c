// RecoverFlushAtStart (flush_startup.h).
#include "daemon/flush_startup.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>

#include "detourfs/status.h"
#include "flush/epoch_recovery.h"
#include "store/layer_dirs.h"

namespace detourfs {

Status RecoverFlushAtStart(int volume, bool routed, std::unique_ptr<flush::EpochArea>* area) {
  if (routed) {
    // Made now, so the area is locked for the daemon's whole life (its
    // private directory was made and checked with the volume's).
    const std::string flush_dir = std::string(kPrivateDirName) + "/" + flush::kFlushDirName;
    if (::mkdirat(volume, flush_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      spdlog::warn("cannot make the volume's flush area ({}): {}", flush_dir, ErrnoText(errno));
    }
  }
  Result<flush::RecoveryReport> report = flush::RecoverVolume(volume, area);
  if (!report.ok() && report.error() == EBUSY) {
    return Status::FromErrno(
        EBUSY,
        "another process holds the volume's flush area (.detourfs/flush): a detourfs or a "
        "detourctl recover is running on this volume; refusing to serve it twice");
  }
  if (!report.ok()) {
    spdlog::error("cannot recover the volume's flush epochs (.detourfs/flush): {}",
                  report.error() == EPERM
                      ? flush::DescribeAreaOwnership(volume) +
                            ": not root's and private, so not detourfs's (or root is squashed "
                            "or mapped on this filesystem); refused"
                      : std::string(ErrnoText(report.error())));
    return Status::OK();
  }
  for (uint64_t epoch : report->finished) {
    spdlog::info("flush epoch {} was committed when detourfs last stopped: finished and verified",
                 epoch);
  }
  for (uint64_t epoch : report->discarded) {
    spdlog::info("flush epoch {} was not committed when detourfs last stopped: discarded", epoch);
  }
  for (uint64_t epoch : report->cleared) {
    spdlog::info("flush epoch {} was done when detourfs last stopped: its leftovers removed",
                 epoch);
  }
  for (const std::string& why : report->unfinished) {
    spdlog::error(
        "flush {} could not be finished; the volume's persisted subtrees may hold part of it "
        "until it is (the tiers still hold the data; detourfs retries at the next start)",
        why);
  }
  return Status::OK();
}

}  // namespace detourfs
