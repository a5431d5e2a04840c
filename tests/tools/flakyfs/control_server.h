// ControlServer: flakyfs's run-time control, a Unix stream socket taking one
// command per line (commands.h) and answering each with "ok [reply]" or
// "error <why>". `flakyfs ctl SOCKET COMMAND...` is its client.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace flakyfs {

class ControlServer {
 public:
  // Applies one command: returns "" or why it was refused, the answer in `reply`.
  using Handler = std::function<std::string(std::string_view command, std::string* reply)>;

  explicit ControlServer(Handler handler) : handler_(std::move(handler)) {}
  ~ControlServer();
  // Binds `path` (mode 0600, replacing a stale socket) and starts serving.
  std::string Start(const std::string& path);

 private:
  void Serve();
  void ServeConnection(int fd);

  Handler handler_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

// Sends one command; returns the answer line ("ok ..." / "error ...") or
// "error cannot connect: ..." when the socket cannot be reached.
std::string SendControl(const std::string& socket_path, const std::string& command);

}  // namespace flakyfs
