// FlakyMount: start, control and clean up flakyfs (flaky_mount.h).
#include "lib/flaky_mount.h"

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "control_server.h"
#include "lib/mounted_fs.h"
#include "lib/process.h"

namespace detourfs::testing {

std::unique_ptr<FlakyMount> FlakyMount::Start(const std::string& source,
                                              const std::string& mountpoint,
                                              const FlakyConfig& config, std::string* error) {
  std::unique_ptr<FlakyMount> fm(new FlakyMount());
  char tmpl[] = "/tmp/flakyfs-test.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return nullptr;
  }
  fm->dir_ = tmpl;
  fm->mountpoint_ = mountpoint;
  const char* bin = ::getenv("FLAKYFS_BIN");
  std::vector<std::string> args = {bin != nullptr ? bin : "flakyfs",
                                   mountpoint,
                                   "--control",
                                   fm->dir_ + "/ctl",
                                   "--seed",
                                   std::to_string(config.seed),
                                   "--cache",
                                   std::to_string(config.cache_seconds)};
  if (source != mountpoint) {
    args.emplace_back("--source");
    args.push_back(source);
  }
  if (config.power_cut_model) {
    args.emplace_back("--rule");
    args.emplace_back("durability strict");
  }
  for (const std::string& rule : config.rules) {
    args.emplace_back("--rule");
    args.push_back(rule);
  }
  fm->pid_ = SpawnLogged(args, fm->dir_ + "/flakyfs.log", 0, error);
  if (fm->pid_ < 0) return nullptr;
  if (!WaitForFuseMount(fm->pid_, mountpoint, fm->dir_ + "/flakyfs.log", std::chrono::seconds(20),
                        error)) {
    return nullptr;
  }
  fm->mounted_ = true;
  return fm;
}

std::string FlakyMount::Control(const std::string& command) const {
  return flakyfs::SendControl(dir_ + "/ctl", command);
}

nlohmann::json FlakyMount::Counters() const {
  std::string answer = Control("counters");
  if (answer.rfind("ok ", 0) != 0) return nlohmann::json::object();
  return nlohmann::json::parse(answer.substr(3), nullptr, /*allow_exceptions=*/false);
}

uint64_t FlakyMount::Injected(const std::string& kind) const {
  nlohmann::json c = Counters();
  if (!c.contains("injected") || !c["injected"].contains(kind)) return 0;
  return c["injected"][kind].get<uint64_t>();
}

std::string FlakyMount::PowerCut(nlohmann::json* summary) const {
  std::string answer = Control("powercut");
  if (answer.rfind("ok", 0) != 0) return answer;
  if (summary != nullptr) {
    *summary = nlohmann::json::parse(answer.substr(answer.size() > 3 ? 3 : answer.size()), nullptr,
                                     /*allow_exceptions=*/false);
  }
  return "";
}

std::string FlakyMount::Sync() const {
  std::string answer = Control("sync");
  return answer == "ok" ? "" : answer;
}

nlohmann::json FlakyMount::Durability() const {
  std::string answer = Control("durability");
  if (answer.rfind("ok ", 0) != 0) return nlohmann::json::object();
  return nlohmann::json::parse(answer.substr(3), nullptr, /*allow_exceptions=*/false);
}

std::string FlakyMount::Log() const { return ReadWholeFile(dir_ + "/flakyfs.log"); }

int FlakyMount::Stop() {
  // Not by statfs first: a dead daemon's mount answers ENOTCONN (mounted_fs.cc).
  for (int i = 0; i < 100 && mounted_; ++i) {
    if (::umount2(mountpoint_.c_str(), 0) == 0 || errno == EINVAL || errno == ENOENT) {
      mounted_ = false;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (mounted_ || pid_ < 0) return -1;
  int status = 0;
  if (!WaitChild(pid_, std::chrono::seconds(20), &status)) return -1;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

FlakyMount::~FlakyMount() {
  if (mounted_) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  TerminateChild(pid_);
  if (!dir_.empty() && ::getenv("DETOURFS_KEEP_TEST_DIRS") == nullptr) {
    Shell("rm -rf '" + dir_ + "'");
  }
}

}  // namespace detourfs::testing
