// MoveIntents (move_intents.h): records as NUL-separated fields.
#include "store/move_intents.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

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

}  // namespace

Result<std::string> MoveIntents::Begin(const MoveIntent& intent) const {
  const std::string record = Encode(intent);
  Result<UniqueFd> fd = sys::OpenBeneath(dir_->get(), ".", O_TMPFILE | O_WRONLY, 0600);
  if (!fd.ok()) return Errno{fd.error()};
  for (size_t done = 0; done < record.size();) {
    const ssize_t n = ::write(fd->get(), record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno{n < 0 ? errno : EIO};
    done += static_cast<size_t>(n);
  }
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
  std::vector<std::string> names;
  DETOURFS_TRY(ForEachEntry(dir_->get(), [&](std::string_view n, ino_t, mode_t) -> Result<void> {
    names.emplace_back(n);
    return {};
  }));
  std::vector<std::pair<std::string, MoveIntent>> pending;
  for (const std::string& name : names) {
    Result<UniqueFd> fd = sys::OpenBeneath(dir_->get(), name.c_str(), O_RDONLY);
    std::string data;
    if (fd.ok()) {
      std::array<char, 4096> buf{};
      for (;;) {
        const ssize_t n = ::read(fd->get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || data.size() > kMaxRecord) break;
        data.append(buf.data(), static_cast<size_t>(n));
      }
    }
    MoveIntent intent;
    if (!fd.ok() || !Decode(data, &intent)) {
      spdlog::warn("move record {} is unreadable and left as it is: {}", name,
                   fd.ok() ? "not a record" : ErrnoText(fd.error()));
      continue;
    }
    pending.emplace_back(name, std::move(intent));
  }
  return pending;
}

}  // namespace detourfs
