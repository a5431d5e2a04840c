// ChangeRecord names and the JSON-lines sink (change_record.h).
#include "store/change_record.h"

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "sys/sys.h"
#include "util/locks.h"

namespace detourfs {
namespace {

class JsonLinesSink : public ChangeSink {
 public:
  explicit JsonLinesSink(UniqueFd fd) : fd_(std::move(fd)) {}
  void Append(const ChangeRecord& r) override {
    nlohmann::json j{{"seq", r.seq},
                     {"kind", ChangeKindName(r.kind)},
                     {"layer", LayerName(r.layer)},
                     {"path", r.path},
                     {"id", r.id}};
    if (!r.path2.empty()) j["path2"] = r.path2;
    if (r.kind == ChangeKind::kWrite || r.kind == ChangeKind::kTruncate) {
      j["offset"] = r.offset;
      j["length"] = r.length;
    }
    const std::string line =
        j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    MutexLock lock(&mu_);
    (void)sys::WriteAll(fd_.get(), line.data(), line.size());
  }

 private:
  Mutex mu_;
  UniqueFd fd_;
};

}  // namespace

const char* ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kCreate:
      return "create";
    case ChangeKind::kMkdir:
      return "mkdir";
    case ChangeKind::kLink:
      return "link";
    case ChangeKind::kUnlink:
      return "unlink";
    case ChangeKind::kRmdir:
      return "rmdir";
    case ChangeKind::kWhiteout:
      return "whiteout";
    case ChangeKind::kOpaque:
      return "opaque";
    case ChangeKind::kRename:
      return "rename";
    case ChangeKind::kCopyUp:
      return "copyup";
    case ChangeKind::kWrite:
      return "write";
    case ChangeKind::kTruncate:
      return "truncate";
    case ChangeKind::kSetattr:
      return "setattr";
    case ChangeKind::kXattr:
      return "xattr";
    case ChangeKind::kSpill:
      return "spill";
    case ChangeKind::kMove:
      return "move";
  }
  return "?";
}

std::unique_ptr<ChangeSink> OpenJsonLinesSink(const std::string& path) {
  Result<UniqueFd> fd = sys::OpenPath(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600);
  if (!fd.ok()) return nullptr;
  return std::make_unique<JsonLinesSink>(std::move(*fd));
}

}  // namespace detourfs
