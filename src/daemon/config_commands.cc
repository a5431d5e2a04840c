// Config loading for the daemon, --check-config and --explain.
#include "daemon/config_commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace detourfs {

Status LoadDaemonConfig(const DaemonOptions& options, Config* config) {
  std::string path = options.config_file;
  if (path.empty()) {
    if (::access(kDefaultConfigPath, F_OK) != 0) {
      config->source = "(no config file: everything passes through)";
      return Status::OK();
    }
    path = kDefaultConfigPath;
  }
  if (Status s = LoadConfigFile(path, config); !s.ok()) return s;
  if (!options.mountpoint.empty()) return CheckPlacement(*config, options.mountpoint);
  return Status::OK();
}

int RunConfigCommand(const DaemonOptions& options) {
  Config config;
  if (Status s = LoadDaemonConfig(options, &config); !s.ok()) {
    std::fprintf(stderr, "detourfs: %s\n", s.ToString().c_str());
    return kExitConfig;
  }
  if (options.check_config) {
    std::fputs(DescribeConfig(config).c_str(), stdout);
    std::printf("config OK\n");
  }
  if (!options.explain.empty()) {
    std::string path = options.explain;
    bool is_dir = path.size() > 1 && path.back() == '/';
    // An absolute path under the mountpoint: make it relative to the root.
    std::string mount = options.mountpoint;
    while (mount.size() > 1 && mount.back() == '/') mount.pop_back();
    if (!mount.empty() && path.rfind(mount + "/", 0) == 0) {
      struct stat st {};
      if (!is_dir && ::lstat(path.c_str(), &st) == 0) is_dir = S_ISDIR(st.st_mode);
      path = path.substr(mount.size() + 1);
    }
    while (!path.empty() && path.back() == '/') path.pop_back();
    std::fputs(ExplainRoute(config, path, is_dir).c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace detourfs
