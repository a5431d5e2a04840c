// CrashDriver (crash_driver.h).
#include "crash_driver.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "lib/process.h"

namespace detourfs::testing {
namespace {

std::string WorkloadBin() {
  const char* bin = std::getenv("DETOURFS_CRASH_WORKLOAD_BIN");
  return bin != nullptr ? bin : "detourfs-crash-workload";
}

}  // namespace

std::unique_ptr<CrashDriver> CrashDriver::Start(const CrashConfig& config, std::string* error) {
  std::unique_ptr<CrashDriver> d(new CrashDriver());
  d->config_ = config;
  d->rng_.seed(config.seed);
  MountConfig mount = config.mount;
  if (config.over_flakyfs) {
    d->volume_ = std::make_unique<TmpfsDir>("1G");
    char tmpl[] = "/tmp/detourfs-crash-flaky.XXXXXX";
    if (!d->volume_->ok() || ::mkdtemp(tmpl) == nullptr) {
      *error = "cannot make flakyfs's directories";
      return nullptr;
    }
    d->flaky_mountpoint_ = tmpl;
    d->flaky_ = FlakyMount::Start(d->volume_->path(), d->flaky_mountpoint_, config.flaky, error);
    if (d->flaky_ == nullptr) return nullptr;
    mount.lower_dir = d->flaky_mountpoint_;
  }
  d->fs_ = MountedFs::Start(mount, error);
  if (d->fs_ == nullptr) return nullptr;
  if (::mkdir(d->mount_dir().c_str(), 0755) != 0) {
    *error = "cannot make the workload directory";
    return nullptr;
  }
  return d;
}

CrashDriver::~CrashDriver() {
  if (workload_ > 0) {
    ::kill(workload_, SIGKILL);
    int status = 0;
    WaitChild(workload_, std::chrono::seconds(10), &status);
  }
  fs_.reset();
  flaky_.reset();
  if (!flaky_mountpoint_.empty()) ::rmdir(flaky_mountpoint_.c_str());
}

std::string CrashDriver::volume_dir() const {
  return (config_.over_flakyfs ? volume_->path() : fs_->lower()) + "/work";
}

bool CrashDriver::StartWorkload(std::string* error) {
  ++ledgers_;
  const std::string ledger = fs_->work() + "/ledger." + std::to_string(ledgers_);
  const std::string dir = mount_dir() + "/run" + std::to_string(ledgers_);
  workload_ = SpawnLogged(
      {WorkloadBin(), "run", "--dir", dir, "--ledger", ledger, "--seed", std::to_string(rng_())},
      fs_->work() + "/workload.log", 0, error);
  return workload_ > 0;
}

size_t CrashDriver::Acks() const {
  std::ifstream in(fs_->work() + "/ledger." + std::to_string(ledgers_));
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) n += line.rfind("ack ", 0) == 0 ? 1 : 0;
  return n;
}

std::string CrashDriver::Logs() const {
  std::ifstream in(fs_->work() + "/workload.log");
  std::string workload((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return "workload log:\n" + workload + "daemon log:\n" + fs_->Log();
}

bool CrashDriver::WaitForAcks(size_t n, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Acks() < n) {
    int status = 0;
    if (workload_ > 0 && ::waitpid(workload_, &status, WNOHANG) == workload_) {
      workload_ = -1;
      return Acks() >= n;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void CrashDriver::SleepRandom(std::chrono::milliseconds min, std::chrono::milliseconds max) {
  std::uniform_int_distribution<int64_t> pick(min.count(), max.count());
  std::this_thread::sleep_for(std::chrono::milliseconds(pick(rng_)));
}

void CrashDriver::KillDaemon() {
  // The workload must stop on the dead mount (ENOTCONN) before it is
  // detached: after that its paths would reach the volume directly, and it
  // would write there unchecked until the disk filled.
  fs_->KillKeepingMount();
  if (workload_ > 0) {
    int status = 0;
    if (!WaitChild(workload_, std::chrono::seconds(20), &status)) {
      ::kill(workload_, SIGKILL);
      WaitChild(workload_, std::chrono::seconds(10), &status);
    }
    workload_ = -1;
  }
  fs_->Detach();
}

bool CrashDriver::RestartDaemon(std::string* error) { return fs_->Restart(error); }

std::string CrashDriver::CheckAll(const std::string& dir) const {
  std::string report;
  bool bad = false;
  for (int i = 1; i <= ledgers_; ++i) {
    int status = 0;
    std::string out =
        ShellOutput(WorkloadBin() + " check --dir '" + dir + "/run" + std::to_string(i) +
                        "' --ledger '" + fs_->work() + "/ledger." + std::to_string(i) + "' 2>&1",
                    &status);
    report += out;
    bad = bad || status != 0;
  }
  return bad ? report : "";
}

}  // namespace detourfs::testing
