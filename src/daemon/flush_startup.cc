// RecoverFlushAtStart (flush_startup.h).
#include "daemon/flush_startup.h"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "detourfs/status.h"
#include "flush/epoch_recovery.h"

namespace detourfs {

std::unique_ptr<flush::EpochArea> RecoverFlushAtStart(int volume) {
  std::unique_ptr<flush::EpochArea> area;
  Result<flush::RecoveryReport> report = flush::RecoverVolume(volume, &area);
  if (!report.ok()) {
    spdlog::error("cannot recover the volume's flush epochs (.detourfs/flush): {}",
                  report.error() == EPERM
                      ? "it is not root's and private (made by a user, not by detourfs): refused"
                  : report.error() == EBUSY ? "another process holds it (a detourfs or a "
                                              "detourctl recover running on this volume)"
                                            : ErrnoText(report.error()));
    return nullptr;
  }
  for (uint64_t epoch : report->finished) {
    spdlog::info("flush epoch {} was committed when detourfs last stopped: finished and verified",
                 epoch);
  }
  for (uint64_t epoch : report->discarded) {
    spdlog::info("flush epoch {} was not committed when detourfs last stopped: discarded", epoch);
  }
  for (const std::string& why : report->unfinished) {
    spdlog::error(
        "flush {} could not be finished; the volume's persisted subtrees may hold part of it "
        "until it is (the tiers still hold the data; detourfs retries at the next start)",
        why);
  }
  return area;
}

}  // namespace detourfs
