// Daemon: the root object of a running detourfs. It owns the overlay, the
// FUSE session and everything the adapters reach through fuse_req_userdata;
// there is no other mutable global state (spdlog's logger aside).
#pragma once

#include <memory>

#include "daemon/options.h"
#include "detourfs/overlay.h"
#include "flush/epoch_area.h"
#include "fuse/fuse_context.h"
#include "fuse/uring_transport.h"

namespace detourfs {

class Daemon {
 public:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Mounts, serves until unmounted or signalled (SIGINT, SIGTERM, SIGHUP),
  // unmounts. Returns the process exit code.
  int Run();

 private:
  DaemonOptions options_;
  // The volume's flush area, locked for the daemon's life (null: none).
  std::unique_ptr<flush::EpochArea> flush_area_;
  std::unique_ptr<Overlay> overlay_;
  fuseops::FuseContext context_;
  std::unique_ptr<fuseops::UringTransport> transport_;
};

}  // namespace detourfs
