// ControlServer: flakyfs's run-time control, a Unix stream socket taking one
// FaultPlan command per line and answering each with "ok [reply]" or
// "error <why>". `flakyfs ctl SOCKET COMMAND...` is its client.
#pragma once

#include <string>
#include <thread>

#include "fault_plan.h"

namespace flakyfs {

class ControlServer {
 public:
  ControlServer(FaultPlan* plan) : plan_(plan) {}  // NOLINT
  ~ControlServer();
  // Binds `path` (mode 0600, replacing a stale socket) and starts serving.
  std::string Start(const std::string& path);

 private:
  void Serve();
  void ServeConnection(int fd);

  FaultPlan* plan_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

// Sends one command; returns the answer line ("ok ..." / "error ...") or
// "error cannot connect: ..." when the socket cannot be reached.
std::string SendControl(const std::string& socket_path, const std::string& command);

}  // namespace flakyfs
