// detourfs: parse options, set up logging, run the daemon.
#include <spdlog/spdlog.h>

#include "daemon/config_commands.h"
#include "daemon/daemon.h"
#include "daemon/logging.h"
#include "daemon/options.h"

int main(int argc, char** argv) {
  detourfs::ParsedOptions parsed = detourfs::ParseOptions(argc, argv);
  if (!parsed.options) return parsed.exit_code;
  detourfs::DaemonOptions& o = *parsed.options;
  if (o.check_config || !o.explain.empty()) return detourfs::RunConfigCommand(o);
  if (detourfs::Status s = detourfs::SetUpLogging(o.log_level, o.log_file, o.foreground); !s.ok()) {
    fprintf(stderr, "detourfs: %s\n", s.ToString().c_str());
    return detourfs::kExitUsage;
  }
  detourfs::Daemon daemon(std::move(o));
  return daemon.Run();
}
