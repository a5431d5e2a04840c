// Daemon: start-up order, the FUSE session, shutdown.
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/config_commands.h"
#include "daemon/flush_startup.h"
#include "daemon/journals.h"
#include "daemon/mountpoint.h"
#include "fuse/ops.h"
#include "overlay/overlay_impl.h"
#include "store/layer_dirs.h"

namespace detourfs {
namespace {

// fsname is comma-separated in -o: escape commas and backslashes.
std::string EscapeOption(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string MountOptions(const DaemonOptions& o, const std::string& lower) {
  std::string opts = "fsname=" + EscapeOption(lower) + ",subtype=detourfs";
  if (::geteuid() == 0) {
    // Other users reach their files through the mount; the kernel checks
    // permissions for each of them against the modes and ACLs we report.
    opts += ",allow_other,default_permissions";
  }
  for (const std::string& opt : o.fuse_options) opts += "," + opt;
  return opts;
}

// Session, signal handlers and mount, torn down in reverse order.
struct Session {
  fuse_session* se = nullptr;
  bool handlers = false;
  bool mounted = false;
  void Unmount() {
    if (mounted) fuse_session_unmount(se);
    mounted = false;
  }
  ~Session() {
    Unmount();
    if (handlers) fuse_remove_signal_handlers(se);
    if (se) fuse_session_destroy(se);
  }
};

// The test hook DETOURFS_TEST_URING_FAIL_OPCODE (uring_transport.h); 0: off.
uint32_t TestFailOpcode() {
  // Read once at start, before any thread.
  const char* v = std::getenv("DETOURFS_TEST_URING_FAIL_OPCODE");  // NOLINT(concurrency-mt-unsafe)
  uint32_t opcode = 0;
  if (v == nullptr || std::from_chars(v, v + std::strlen(v), opcode).ec != std::errc()) return 0;
  return opcode;
}

}  // namespace

int Daemon::Run() {
  const DaemonOptions& o = options_;
  if (Status s = CheckMountpoint(o.mountpoint); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return kExitMountpoint;
  }
  Config config;
  if (Status s = LoadDaemonConfig(o, &config); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return kExitConfig;
  }
  // The tiers routes may send data to: made or adopted, never wiped.
  OverlaySetup setup;
  for (const TierConfig* tier : {config.tier(TierId::kMemory), config.tier(TierId::kDisk)}) {
    if (tier == nullptr) continue;
    LayerDirs dirs;
    if (Status s = OpenTierDirs(*tier, &dirs); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return kExitConfig;
    }
    spdlog::info("tier {} at '{}'{}", TierName(tier->id), tier->root,
                 dirs.adopted ? " (adopting what it holds)" : " (new)");
    setup.tiers.push_back(TierSpec{dirs.layer, tier->capacity, tier->high_watermark});
    setup.layers[Index(dirs.layer)] = std::move(dirs);
  }
  const std::string lower = o.lower.empty() ? o.mountpoint : o.lower;
  Result<UniqueFd> lower_fd = OpenLower(lower);
  if (!lower_fd.ok()) {
    spdlog::error("{}",
                  Status::FromErrno(lower_fd.error(), "cannot open lower directory '" + lower + "'")
                      .ToString());
    return kExitLower;
  }
  // The volume's private directory (.detourfs) only when something is routed.
  if (Status s = OpenVolumeDirs(std::move(*lower_fd), !setup.tiers.empty(),
                                &setup.layers[Index(Layer::kVolume)]);
      !s.ok()) {
    spdlog::error("{}", s.ToString());
    return kExitLower;
  }
  // A flush a crash cut short is finished or undone before anything is
  // served, whatever is configured now.
  if (Status s = RecoverFlushAtStart(setup.layers[Index(Layer::kVolume)].tree->get(),
                                     !setup.tiers.empty(), &flush_area_);
      !s.ok()) {
    spdlog::error("{}", s.ToString());
    return kExitLower;
  }
  const auto fd_limit = RaiseFdLimit();

  setup.options.fd_cache_capacity = o.fd_cache;
  setup.options.writeback_cache = o.writeback_cache;
  setup.options.negative_timeout = o.negative_timeout;
  setup.router = Router(config.routes);
  setup.failpoints = Failpoints::FromEnvironment();
  if (!o.record_changes.empty()) {
    setup.sink = OpenJsonLinesSink(o.record_changes);
    if (!setup.sink) {
      spdlog::error("cannot open '{}' for --record-changes", o.record_changes);
      return kExitUsage;
    }
  }
  setup.sink = OpenJournals(setup.layers, setup.router, std::move(setup.sink));
  Result<std::unique_ptr<Overlay>> overlay = OpenOverlay(std::move(setup));
  if (!overlay.ok()) {
    spdlog::error("{}",
                  Status::FromErrno(overlay.error(), "cannot serve '" + lower + "'").ToString());
    return kExitLower;
  }
  overlay_ = std::move(*overlay);
  context_.overlay = overlay_.get();
  context_.settings.entry_timeout = o.entry_timeout;
  context_.settings.attr_timeout = o.attr_timeout;
  context_.settings.negative_timeout = o.negative_timeout;
  context_.settings.writeback_cache = o.writeback_cache;
  context_.settings.splice = o.splice;

  std::vector<std::string> args = {"detourfs", "-o", MountOptions(o, lower)};
  if (o.fuse_debug) args.emplace_back("-d");
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  Session session;
  session.se = fuse_session_new(&fargs, &fuseops::OpsTable(), sizeof(fuse_lowlevel_ops), &context_);
  fuse_opt_free_args(&fargs);
  if (!session.se) {
    spdlog::error("cannot create the FUSE session (bad -o option?)");
    return kExitMount;
  }
  if (fuse_set_signal_handlers(session.se) != 0) {
    spdlog::error("cannot install signal handlers");
    return kExitMount;
  }
  session.handlers = true;
  if (fuse_session_mount(session.se, o.mountpoint.c_str()) != 0) {
    spdlog::error("cannot mount on '{}' (is /dev/fuse available, and are you root?)", o.mountpoint);
    return kExitMount;
  }
  session.mounted = true;
  // The transport's hooks see every request (they carry the kernel's
  // setuid marks through libfuse); its rings only with --io-uring, where the
  // kernel allows them.
  {
    fuseops::UringTransport::Options uo;
    uo.rings = o.io_uring;
    if (o.io_uring && !fuseops::UringTransport::KernelEnabled()) {
      spdlog::warn(
          "io_uring: rings unavailable (the kernel has no FUSE over io_uring, or "
          "/sys/module/fuse/parameters/enable_uring is off); serving through /dev/fuse");
      uo.rings = false;
    }
    uo.sched_idle = o.io_uring_sched_idle;
    uo.fail_opcode = TestFailOpcode();
    uo.max_write = context_.settings.max_write;
    transport_ = std::make_unique<fuseops::UringTransport>(uo);
    if (Status s = transport_->Install(session.se); !s.ok()) {
      spdlog::warn("{}; using /dev/fuse, the kernel clears setuid bits", s.ToString());
      transport_.reset();
    } else {
      context_.transport = transport_.get();
    }
  }
  spdlog::info("detourfs serving '{}' at '{}' (fd limit {}, fd cache {})", lower, o.mountpoint,
               fd_limit, o.fd_cache);
  // Never keep a working directory inside the mount: the daemon would wait
  // on itself. fuse_daemonize does the same when it forks.
  if (::chdir("/") != 0) spdlog::warn("cannot chdir to /, ignoring");
  if (fuse_daemonize(o.foreground ? 1 : 0) != 0) {
    spdlog::error("cannot daemonize");
    return kExitMount;
  }
  // After the fork: its threads live in the process that serves.
  overlay_->StartBackground();
  (void)sd_notifyf(0, "READY=1\nSTATUS=Serving %s at %s", lower.c_str(), o.mountpoint.c_str());

  if (transport_) {
    // Here, on the thread that runs the loop: a ring failure wakes it.
    if (Status s = transport_->Start(); !s.ok()) spdlog::warn("{}", s.ToString());
  }
  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop, o.threads);
  // Keep the workers: creating a thread per burst costs more than it saves.
  fuse_loop_cfg_set_idle_threads(loop, o.threads);
  // One /dev/fuse fd shared by the workers: a cloned fd per thread measured
  // slower here (more wake-ups on 2 cores; docs/benchmarks.md).
  fuse_loop_cfg_set_clone_fd(loop, 0);
  const int rc = fuse_session_loop_mt(session.se, loop);
  fuse_loop_cfg_destroy(loop);
  (void)sd_notify(0, "STOPPING=1");
  // Unmount first, then stop the rings: while the mount is there the kernel
  // queues requests to the rings, and rings that stopped first would leave
  // them waiting until the device is closed. Unmounting closes libfuse's
  // device fd; the rings hold their own, and when they stop, the last one
  // closes and the kernel ends whatever is still queued (a lazily detached
  // mount in use).
  session.Unmount();
  if (transport_) {
    transport_->Stop();
    if (transport_->rings())
      spdlog::info("io_uring: {} requests served through rings", transport_->served());
    if (Status why = transport_->failure(); !why.ok()) {
      spdlog::error("FUSE session ended with error: {}", why.ToString());
      return kExitRuntime;
    }
  }
  // The loop returns the signal's number after SIGINT/SIGTERM/SIGHUP (in-flight
  // requests have finished by then), a negative errno on failure.
  if (rc < 0) {
    spdlog::error("FUSE session ended with error: {}", ErrnoText(-rc));
    return kExitRuntime;
  }
  if (rc > 0) spdlog::info("signal {} received, unmounting", rc);
  spdlog::info("detourfs on '{}' stopped", o.mountpoint);
  return kExitOk;
}

}  // namespace detourfs
