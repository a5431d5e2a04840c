// Logging set-up: one spdlog logger for the daemon, to stderr in the
// foreground, to a file when asked, to syslog (the journal) otherwise.
#pragma once

#include <string>

#include "detourfs/status.h"

namespace detourfs {

Status SetUpLogging(const std::string& level, const std::string& file, bool foreground);

}  // namespace detourfs
