// Routing flakyfs's commands (commands.h).
#include "commands.h"

#include <vector>

namespace flakyfs {
namespace {

std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::string ApplyCommand(FaultPlan& plan, PowerCutModel& model, std::string_view command,
                         std::string* reply) {
  std::vector<std::string_view> words = Words(command);
  reply->clear();
  if (!words.empty() && PowerCutModel::IsCommand(words[0])) return model.Apply(words, reply);
  std::string error = plan.Apply(command, reply);
  if (error.empty() && !words.empty() && words[0] == "show") {
    *reply += model.enabled() ? "; durability strict" : "; durability off";
  }
  return error;
}

}  // namespace flakyfs
