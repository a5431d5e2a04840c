// Finishing and discarding epochs left on the volume (epoch_recovery.h).
#include "flush/epoch_recovery.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "detourfs/status.h"
#include "flush/manifest_apply.h"
#include "store/layer_dirs.h"
#include "sys/sys.h"

namespace detourfs::flush {

Result<void> FinishEpoch(EpochArea* area, const Manifest& manifest, int tree, std::string* why) {
  Result<UniqueFd> data = area->OpenData(manifest.epoch);
  if (!data.ok()) {
    *why = std::string("its data/ cannot be opened: ") + ErrnoText(data.error());
    return Errno{data.error()};
  }
  size_t failed = 0;
  if (Result<void> r = ApplyManifest(manifest, tree, data->get(), &failed); !r.ok()) {
    *why = "step " + std::to_string(failed) + " (" + StepKindName(manifest.steps[failed].kind) +
           " " + manifest.steps[failed].path + "): " + ErrnoText(r.error());
    return r;
  }
  if (Result<void> r = sys::Syncfs(tree); !r.ok()) {
    *why = std::string("syncfs: ") + ErrnoText(r.error());
    return r;
  }
  Result<std::vector<VerifyFinding>> findings = VerifyManifest(manifest, tree);
  if (!findings.ok()) {
    *why = std::string("verify: ") + ErrnoText(findings.error());
    return Errno{findings.error()};
  }
  if (!findings->empty()) {
    const VerifyFinding& f = findings->front();
    *why = std::to_string(findings->size()) + " step(s) did not verify, first " + f.path + ": " +
           f.what;
    return Errno{EIO};
  }
  if (Result<void> r = area->Done(manifest.epoch); !r.ok()) {
    *why = std::string("marking it done: ") + ErrnoText(r.error());
    return r;
  }
  return {};
}

Result<RecoveryReport> RecoverEpochs(EpochArea* area, int tree) {
  Result<std::vector<uint64_t>> epochs = area->InFlight();
  if (!epochs.ok()) return Errno{epochs.error()};
  RecoveryReport report;
  for (uint64_t epoch : *epochs) {
    const std::string name = EpochDirName(epoch);
    std::string why;
    Result<Manifest> manifest = area->ReadManifest(epoch, &why);
    // Done already (its directory not yet removed), or never committed.
    const bool done = epoch <= area->last_done();
    if (done || (!manifest.ok() && manifest.error() == ENOENT)) {
      if (Result<void> r = area->Discard(epoch); !r.ok()) {
        report.unfinished.push_back(name + ": cannot be removed: " + ErrnoText(r.error()));
        break;
      }
      (done ? report.cleared : report.discarded).push_back(epoch);
      continue;
    }
    if (!manifest.ok()) {
      if (why.empty()) why = ErrnoText(manifest.error());
      report.unfinished.push_back(name + ": its manifest cannot be read: ");
      report.unfinished.back() += why;
      break;
    }
    if (!FinishEpoch(area, *manifest, tree, &why).ok()) {
      report.unfinished.push_back(name + ": ");
      report.unfinished.back() += why;
      break;
    }
    report.finished.push_back(epoch);
  }
  return report;
}

std::string DescribeAreaOwnership(int volume) {
  std::string out;
  for (const std::string& path :
       {std::string(kPrivateDirName), std::string(kPrivateDirName) + "/" + kFlushDirName}) {
    Result<UniqueFd> fd = sys::OpenBeneath(volume, path.c_str(), O_PATH | O_DIRECTORY);
    if (!fd.ok()) continue;
    Result<struct stat> st = sys::Fstat(fd->get());
    if (!st.ok()) continue;
    char line[160];
    std::snprintf(line, sizeof(line), "%s'%s' is owned by uid %u with mode %04o",
                  out.empty() ? "" : ", ", path.c_str(), static_cast<unsigned>(st->st_uid),
                  static_cast<unsigned>(st->st_mode & 07777));
    out += line;
  }
  return out;
}

Result<EpochArea> OpenVolumeArea(int volume) {
  const std::string flush_dir = std::string(kPrivateDirName) + "/" + kFlushDirName;
  Result<UniqueFd> flush = sys::OpenBeneath(volume, flush_dir.c_str(), O_PATH | O_DIRECTORY);
  if (!flush.ok()) return Errno{flush.error()};
  Result<UniqueFd> private_dir = sys::OpenBeneath(volume, kPrivateDirName, O_PATH | O_DIRECTORY);
  if (!private_dir.ok()) return Errno{private_dir.error()};
  // Users own their home: a .detourfs they made is not detourfs's, and its
  // manifests are not applied.
  Result<struct stat> top = sys::Fstat(volume);
  Result<struct stat> own = sys::Fstat(private_dir->get());
  if (!top.ok() || !own.ok()) return Errno{top.ok() ? own.error() : top.error()};
  if (own->st_uid != ::geteuid() || (own->st_mode & 022) != 0 || own->st_dev != top->st_dev) {
    return Errno{EPERM};
  }
  return EpochArea::Open(private_dir->get());
}

Result<RecoveryReport> RecoverVolume(int volume, std::unique_ptr<EpochArea>* keep) {
  Result<EpochArea> area = OpenVolumeArea(volume);
  if (!area.ok()) {
    if (area.error() == ENOENT) return RecoveryReport{};
    return Errno{area.error()};
  }
  Result<RecoveryReport> report = RecoverEpochs(&*area, volume);
  if (keep != nullptr) *keep = std::make_unique<EpochArea>(std::move(*area));
  return report;
}

}  // namespace detourfs::flush
