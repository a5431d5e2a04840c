// MoveIntents (move_intents.h): records as NUL-separated fields.
#include "store/move_intents.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <array>

#include "detourfs/status.h"
#include "overlay/backing_tree.h"
#include "sys/sys.h"
#include "util/random_token.h"

namespace detourfs {
namespace {

constexpr std::string_view kMagic = "detourfs-move-intent 1";
constexpr size_t kMaxRecord = size_t{16} * 1024;  // two paths of at most PATH_MAX, and some

std::string Encode(const MoveIntent& intent) {
  std::string s(kMagic);
  s.push_back('\0');
  s.push_back(static_cast<char>('0' + static_cast<int>(intent.layer)));
  s.push_back('\0');
  s += intent.parent;
  s.push_back('\0');
  s += intent.hidden;
  s.push_back('\0');
  return s;
}

bool Decode(const std::string& s, MoveIntent* intent) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\0') continue;
    fields.emplace_back(s.substr(start, i - start));
    start = i + 1;
  }
  if (start != s.size() || fields.size() != 4 || fields[0] != kMagic || fields[1].size() != 1) {
    return false;
  }
  const int layer = fields[1][0] - '0';
  if (layer < 0 || layer > static_cast<int>(Layer::kDisk)) return false;
  intent->layer = static_cast<Layer>(layer);
  intent->parent = std::move(fields[2]);
  intent->hidden = std::move(fields[3]);
  // Only ever a hidden name, one component.
  return intent->hidden.size() > MoveIntents::kHiddenPrefix.size() &&
         intent->hidden.compare(0, MoveIntents::kHiddenPrefix.size(), MoveIntents::kHiddenPrefix) ==
             0 &&
         intent->hidden.find('/') == std::string::npos;
}

// The bytes of record `name` in `dirfd`, up to a little past kMaxRecord.
Result<std::string> ReadRecord(int dirfd, const std::string& name) {
  Result<UniqueFd> fd = sys::OpenBeneath(dirfd, name.c_str(), O_RDONLY);
  if (!fd.ok()) return Errno{fd.error()};
  std::string data;
  std::array<char, 4096> buf{};
  while (data.size() <= kMaxRecord) {
    Result<size_t> n = sys::Read(fd->get(), buf.data(), buf.size());
    if (!n.ok()) return Errno{n.error()};
    if (*n == 0) break;
    data.append(buf.data(), *n);
  }
  return data;
}

}  // namespace

Result<std::string> MoveIntents::Begin(const MoveIntent& intent) const {
  const std::string record = Encode(intent);
  Result<UniqueFd> fd = sys::OpenBeneath(dir_->get(), ".", O_TMPFILE | O_WRONLY, 0600);
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::WriteAll(fd->get(), record.data(), record.size()));
  for (int attempt = 0;; ++attempt) {
    std::string name = TokenName(NewRandomToken());
    Result<void> linked = sys::LinkFd(fd->get(), dir_->get(), name.c_str());
    if (linked.ok()) return name;
    if (linked.error() != EEXIST || attempt == 8) return Errno{linked.error()};
  }
}

void MoveIntents::End(const std::string& record) const {
  if (Result<void> r = sys::UnlinkAt(dir_->get(), record.c_str(), 0); !r.ok()) {
    spdlog::warn("move record {} stays until the next start: {}", record, ErrnoText(r.error()));
  }
}

Result<std::vector<std::pair<std::string, MoveIntent>>> MoveIntents::Pending() const {
  Result<std::vector<std::string>> names = EntryNames(dir_->get());
  if (!names.ok()) return Errno{names.error()};
  std::vector<std::pair<std::string, MoveIntent>> pending;
  for (const std::string& name : *names) {
    Result<std::string> data = ReadRecord(dir_->get(), name);
    MoveIntent intent;
    if (!data.ok() || !Decode(*data, &intent)) {
      spdlog::warn("move record {} is unreadable and left as it is: {}", name,
                   data.ok() ? "not a record" : ErrnoText(data.error()));
      continue;
    }
    pending.emplace_back(name, std::move(intent));
  }
  return pending;
}

}  // namespace detourfs
