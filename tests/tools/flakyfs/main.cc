// flakyfs: a fault-injecting pass-through FUSE filesystem for tests and
// benchmarks — a simulated cross-node volume that is slow and loses writes.
//   flakyfs [--source DIR] [--control SOCKET] [--rule CMD]... MOUNTPOINT
//   flakyfs ctl SOCKET COMMAND...
// README.md in this directory documents the commands.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "control_server.h"
#include "flaky_fs.h"

namespace {

struct Options {
  std::string mountpoint;
  std::string source;
  std::string control;
  std::vector<std::string> rules;
  uint64_t seed = 1;
  double cache = 0;
  unsigned threads = 16;
  std::vector<std::string> fuse_options;
  bool debug = false;
};

int Serve(const Options& o) {
  flakyfs::FlakyFs fs;
  fs.cache_timeout = o.cache;
  const std::string source = o.source.empty() ? o.mountpoint : o.source;
  // Opened before the mount, so that mounting in place still reaches it.
  fs.source_fd = open(source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fs.source_fd < 0) {
    std::perror(("flakyfs: cannot open source " + source).c_str());
    return 1;
  }
  fs.model.set_source(fs.source_fd);
  auto apply = [&fs](std::string_view command, std::string* reply) {
    return flakyfs::ApplyCommand(fs.plan, fs.model, command, reply);
  };
  std::string reply;
  if (std::string why = apply("seed " + std::to_string(o.seed), &reply); !why.empty()) {
    std::fprintf(stderr, "flakyfs: %s\n", why.c_str());
    return 1;
  }
  for (const std::string& rule : o.rules) {
    if (std::string why = apply(rule, &reply); !why.empty()) {
      std::fprintf(stderr, "flakyfs: --rule '%s': %s\n", rule.c_str(), why.c_str());
      return 1;
    }
  }
  flakyfs::ControlServer control(apply);
  if (!o.control.empty()) {
    if (std::string why = control.Start(o.control); !why.empty()) {
      std::fprintf(stderr, "flakyfs: %s\n", why.c_str());
      return 1;
    }
  }
  std::string opts =
      "default_permissions,allow_other,fsname=flakyfs:" + source + ",subtype=flakyfs";
  for (const std::string& extra : o.fuse_options) opts += "," + extra;
  std::vector<std::string> argv_s = {"flakyfs", "-o", opts};
  if (o.debug) argv_s.emplace_back("-d");
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse* f = fuse_new(&args, &flakyfs::FlakyOperations(), sizeof(fuse_operations), &fs);
  fuse_opt_free_args(&args);
  if (f == nullptr) return 1;
  int rc = 1;
  if (fuse_mount(f, o.mountpoint.c_str()) == 0) {
    if (fuse_set_signal_handlers(fuse_get_session(f)) == 0) {
      fuse_loop_config* loop = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(loop, o.threads);
      fuse_loop_cfg_set_idle_threads(loop, o.threads);
      int r = fuse_loop_mt(f, loop);
      fuse_loop_cfg_destroy(loop);
      // A signal (SIGTERM, SIGINT) ends the loop with its number: a clean stop.
      rc = r < 0 ? 1 : 0;
      fuse_remove_signal_handlers(fuse_get_session(f));
    }
    fuse_unmount(f);
  }
  fuse_destroy(f);
  // The model's state goes; the tree stays as it is, as after a clean shutdown.
  apply("durability off", &reply);
  close(fs.source_fd);
  return rc;
}

}  // namespace

// For ASan builds: libfuse's high-level library keeps a directory handle's
// entries (one malloc and one strdup each) until RELEASEDIR, which the
// kernel sends in the background and drops when the mount goes first (a
// test that lists a directory and unmounts at once). That memory belongs to
// libfuse, not to flakyfs; the detourfs daemon uses the low-level API and
// stays fully checked.
extern "C" const char* __lsan_default_suppressions() {  // NOLINT(bugprone-reserved-identifier)
  return "leak:libfuse3.so\n";
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "ctl") {
    if (argc < 4) {
      std::fprintf(stderr, "usage: flakyfs ctl SOCKET COMMAND...\n");
      return 2;
    }
    std::string command;
    for (int i = 3; i < argc; ++i) command += (i > 3 ? " " : "") + std::string(argv[i]);
    std::string answer = flakyfs::SendControl(argv[2], command);
    std::puts(answer.c_str());
    return answer.rfind("ok", 0) == 0 ? 0 : 1;
  }
  Options o;
  CLI::App app{
      "flakyfs: a pass-through FUSE filesystem that injects latency and faults.\n"
      "Mounts over MOUNTPOINT in place (or serves --source there). `flakyfs ctl SOCKET CMD`\n"
      "changes it at run time; see tests/tools/flakyfs/README.md for the commands."};
  app.add_option("mountpoint", o.mountpoint, "Where to mount")->required();
  app.add_option("--source", o.source, "Directory to serve (default: the mountpoint itself)");
  app.add_option("--control", o.control, "Unix socket for run-time commands");
  app.add_option("--rule", o.rules,
                 "A command applied at start (repeatable), e.g. 'latency all 1ms'");
  app.add_option("--seed", o.seed, "Seed of every random draw");
  app.add_option("--cache", o.cache,
                 "Kernel attribute/entry cache seconds (default 0: every "
                 "access reaches flakyfs, so every fault is seen)");
  app.add_option("--threads", o.threads, "Worker threads (default 16)");
  app.add_option("-o", o.fuse_options, "More FUSE mount options")->delimiter(',');
  app.add_flag("-d,--debug", o.debug, "FUSE debug output");
  CLI11_PARSE(app, argc, argv);
  return Serve(o);
}
