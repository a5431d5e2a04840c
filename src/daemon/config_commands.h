// The daemon's config handling: which file to load, and the --check-config
// and --explain commands that inspect it without mounting.
#pragma once

#include "config/config.h"
#include "daemon/options.h"
#include "detourfs/status.h"

namespace detourfs {

// Loads the config the options name (-c, else the default path if it exists,
// else an empty config: pass-through) and checks it against the mountpoint.
Status LoadDaemonConfig(const DaemonOptions& options, Config* config);

// Runs --check-config or --explain: prints to stdout, returns the exit code.
int RunConfigCommand(const DaemonOptions& options);

}  // namespace detourfs
