// The control socket of flakyfs (control_server.h).
#include "control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace flakyfs {
namespace {

bool MakeAddress(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  *addr = {};
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

ControlServer::~ControlServer() {
  if (listen_fd_ >= 0) {
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
  }
}

std::string ControlServer::Start(const std::string& path) {
  sockaddr_un addr{};
  if (!MakeAddress(path, &addr)) return "control socket path too long: " + path;
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return std::string("socket: ") + std::strerror(errno);
  unlink(path.c_str());
  mode_t old = umask(077);
  int r = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // NOLINT
  umask(old);
  if (r != 0 || listen(listen_fd_, 16) != 0) {
    return "cannot listen on " + path + ": " + std::strerror(errno);
  }
  path_ = path;
  thread_ = std::thread([this] { Serve(); });
  return {};
}

void ControlServer::Serve() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    ServeConnection(fd);
    close(fd);
  }
}

void ControlServer::ServeConnection(int fd) {
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl = 0;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::string reply;
      std::string error = handler_(line, &reply);
      std::string answer =
          error.empty() ? "ok" + (reply.empty() ? "" : " " + reply) : "error " + error;
      if (!WriteAll(fd, answer + "\n")) return;
    }
  }
}

std::string SendControl(const std::string& socket_path, const std::string& command) {
  sockaddr_un addr{};
  if (!MakeAddress(socket_path, &addr)) return "error cannot connect: socket path too long";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {  // NOLINT
    std::string answer = "error cannot connect to " + socket_path + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return answer;
  }
  std::string answer;
  if (WriteAll(fd, command + "\n")) {
    shutdown(fd, SHUT_WR);
    char buf[4096];
    ssize_t n = 0;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  if (answer.empty()) answer = "error no answer from " + socket_path;
  return answer;
}

}  // namespace flakyfs
