// IntentLog (intent_log.h).
#include "store/intent_log.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "store/tree_walk.h"
#include "sys/sys.h"
#include "sys/tmp_file.h"
#include "util/random_token.h"

namespace detourfs {
namespace {

constexpr std::string_view kHeader = "detourfs-intent 1\n";
constexpr std::string_view kDoneLine = "done 0000\n";  // its length

const char* StepName(StepKind k) {
  switch (k) {
    case StepKind::kRename:
      return "rename";
    case StepKind::kRenameNoReplace:
      return "rename-noreplace";
    case StepKind::kWhiteout:
      return "whiteout";
    case StepKind::kTrash:
      return "trash";
    case StepKind::kHold:
      return "hold";
    case StepKind::kHoldWhole:
      return "hold-whole";
    case StepKind::kDropWhiteout:
      return "drop-whiteout";
  }
  return "?";
}

std::string Escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Result<std::string> Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return Errno{EUCLEAN};
    const std::string hex(s.substr(i + 1, 2));
    char* end = nullptr;
    const long v = std::strtol(hex.c_str(), &end, 16);
    if (end != hex.c_str() + 2) return Errno{EUCLEAN};
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

std::string EncodePath(const IntentPath& p) {
  return std::to_string(static_cast<int>(p.layer)) + ":" +
         std::to_string(static_cast<int>(p.area)) + ":" + Escape(p.path);
}

Result<IntentPath> DecodePath(std::string_view s) {
  if (s.size() < 4 || s[1] != ':' || s[3] != ':') return Errno{EUCLEAN};
  const int layer = s[0] - '0';
  const int area = s[2] - '0';
  if (layer < 0 || layer > 2 || area < 0 || area > static_cast<int>(Area::kKept))
    return Errno{EUCLEAN};
  Result<std::string> path = Unescape(s.substr(4));
  if (!path.ok()) return Errno{path.error()};
  return IntentPath{static_cast<Layer>(layer), static_cast<Area>(area), std::move(*path)};
}

std::string Checksum(std::string_view body) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(XXH64(body.data(), body.size(), 0)));  // NOLINT
  return buf;
}

}  // namespace

std::string EncodeIntent(const Intent& intent) {
  std::string body(kHeader);
  for (const IntentStep& s : intent.steps) {
    body += StepName(s.kind);
    body += ' ';
    body += EncodePath(s.a);
    if (IsMove(s.kind)) {
      body += ' ';
      body += EncodePath(s.b);
    }
    body += '\n';
  }
  return body + "end " + Checksum(body) + "\n";
}

Result<Intent> DecodeIntent(std::string_view text) {
  const size_t end = text.rfind("end ");
  if (text.substr(0, kHeader.size()) != kHeader || end == std::string_view::npos) {
    return Errno{EUCLEAN};
  }
  const std::string_view body = text.substr(0, end);
  std::string_view sum = text.substr(end + 4);
  const size_t sum_end = sum.find('\n');
  std::string_view progress = sum_end == std::string_view::npos ? "" : sum.substr(sum_end + 1);
  sum = sum.substr(0, sum_end);
  if (sum != Checksum(body)) return Errno{EUCLEAN};
  Intent intent;
  // Progress lines ("done NNNN", one per finished step, each synced before
  // the next step); a torn last one is not counted.
  while (progress.size() >= kDoneLine.size()) {
    const std::string_view line = progress.substr(0, kDoneLine.size());
    progress.remove_prefix(kDoneLine.size());
    if (line.substr(0, 5) != "done " || line.back() != '\n') break;
    size_t n = 0;
    for (char c : line.substr(5, 4)) {
      if (c < '0' || c > '9') return Errno{EUCLEAN};
      n = n * 10 + static_cast<size_t>(c - '0');
    }
    intent.done = std::max(intent.done, n);
  }
  std::string_view rest = body.substr(kHeader.size());
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return Errno{EUCLEAN};
    std::string_view line = rest.substr(0, nl);
    rest = rest.substr(nl + 1);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return Errno{EUCLEAN};
    const std::string_view name = line.substr(0, sp);
    IntentStep step;
    bool known = false;
    for (StepKind k :
         {StepKind::kRename, StepKind::kRenameNoReplace, StepKind::kWhiteout, StepKind::kTrash,
          StepKind::kHold, StepKind::kHoldWhole, StepKind::kDropWhiteout}) {
      if (name == StepName(k)) {
        step.kind = k;
        known = true;
      }
    }
    if (!known) return Errno{EUCLEAN};
    std::string_view args = line.substr(sp + 1);
    const size_t sp2 = args.find(' ');
    Result<IntentPath> a = DecodePath(IsMove(step.kind) ? args.substr(0, sp2) : args);
    if (!a.ok()) return Errno{a.error()};
    step.a = std::move(*a);
    if (IsMove(step.kind)) {
      if (sp2 == std::string_view::npos) return Errno{EUCLEAN};
      Result<IntentPath> b = DecodePath(args.substr(sp2 + 1));
      if (!b.ok()) return Errno{b.error()};
      step.b = std::move(*b);
    }
    intent.steps.push_back(std::move(step));
  }
  if (intent.done > intent.steps.size()) return Errno{EUCLEAN};
  return intent;
}

Result<std::string> IntentLog::Write(const Intent& intent) {
  const std::string text = EncodeIntent(intent);
  Result<sys::TmpFile> tmp = sys::OpenTmpfile(dir_->get(), 0600);
  if (!tmp.ok()) return Errno{tmp.error()};
  DETOURFS_TRY(sys::WriteAll(tmp->get(), text.data(), text.size()));
  DETOURFS_TRY(sys::Fsync(tmp->get(), true));
  // Names sort in the order records were made: a time, then a tie-breaker.
  char name[64];
  std::snprintf(name, sizeof(name), "%020lld-%06llu-%s",
                static_cast<long long>(::time(nullptr)),             // NOLINT
                static_cast<unsigned long long>(next_++ % 1000000),  // NOLINT
                TokenName(NewRandomToken()).substr(0, 8).c_str());
  DETOURFS_TRY(tmp->Link(dir_->get(), name));
  DETOURFS_TRY(sys::SyncDir(dir_->get()));
  return std::string(name);
}

Result<void> IntentLog::MarkDone(const std::string& name, size_t steps) {
  if (steps > 9999) return Errno{EINVAL};
  char line[16];
  std::snprintf(line, sizeof(line), "done %04zu\n", steps);
  Result<UniqueFd> fd = sys::OpenBeneath(dir_->get(), name.c_str(), O_WRONLY | O_APPEND);
  if (!fd.ok()) return Errno{fd.error()};
  DETOURFS_TRY(sys::WriteAll(fd->get(), line, kDoneLine.size()));
  return sys::Fsync(fd->get(), true);
}

Result<std::string> IntentLog::MarkServed(const std::string& name) {
  if (Served(name)) return name;
  const std::string served = name + std::string(kServedSuffix);
  DETOURFS_TRY(
      sys::RenameAt(dir_->get(), name.c_str(), dir_->get(), served.c_str(), RENAME_NOREPLACE));
  DETOURFS_TRY(sys::SyncDir(dir_->get()));
  return served;
}

Result<void> IntentLog::Remove(const std::string& name) {
  Result<void> r = sys::UnlinkAt(dir_->get(), name.c_str(), 0);
  if (!r.ok() && r.error() != ENOENT) return r;
  return {};
}

Result<std::vector<std::pair<std::string, Intent>>> IntentLog::Pending() {
  Result<std::vector<WalkItem>> items = ListDir(dir_->get());
  if (!items.ok()) return Errno{items.error()};
  std::sort(items->begin(), items->end(),
            [](const WalkItem& a, const WalkItem& b) { return a.name < b.name; });
  std::vector<std::pair<std::string, Intent>> out;
  for (const WalkItem& item : *items) {
    if (sys::IsTmpfileName(item.name)) {
      (void)Remove(item.name);  // a record not yet written whole (sys/tmp_file.h)
      continue;
    }
    Result<UniqueFd> fd = sys::OpenBeneath(dir_->get(), item.name.c_str(), O_RDONLY);
    if (!fd.ok()) return Errno{fd.error()};
    Result<std::string> text = sys::ReadAll(fd->get());
    if (!text.ok()) return Errno{text.error()};
    Result<Intent> intent = DecodeIntent(*text);
    if (!intent.ok()) {
      spdlog::warn("intent record '{}' is torn or corrupt: dropped (its change had not started)",
                   item.name);
      (void)Remove(item.name);
      continue;
    }
    out.emplace_back(item.name, std::move(*intent));
  }
  return out;
}

}  // namespace detourfs
