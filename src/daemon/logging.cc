// spdlog sinks and level for the daemon.
#include "daemon/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

namespace detourfs {

Status SetUpLogging(const std::string& level, const std::string& file, bool foreground) {
  std::vector<spdlog::sink_ptr> sinks;
  try {
    // stderr always: in the background it carries start-up errors to the
    // user until the fork points it at /dev/null.
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (!file.empty()) {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
    } else if (!foreground) {
      sinks.push_back(
          std::make_shared<spdlog::sinks::syslog_sink_mt>("detourfs", LOG_PID, LOG_DAEMON, false));
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError(std::string("cannot set up logging: ") + e.what());
  }
  if (!foreground && !file.empty()) sinks.front()->set_level(spdlog::level::warn);
  auto logger = std::make_shared<spdlog::logger>("detourfs", sinks.begin(), sinks.end());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e detourfs[%P] %l: %v");
  logger->set_level(spdlog::level::from_str(level));
  // Warnings and errors reach the file at once: they may be the last words
  // before a crash.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return Status::OK();
}

}  // namespace detourfs
