// FaultPlan: command parsing, decisions, vanish bookkeeping, counters.
#include "fault_plan.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>
#include <sstream>

namespace flakyfs {
namespace {

constexpr std::array<std::string_view, kOpCount> kOpNames = {
    "getattr",     "readlink", "mknod",   "mkdir",  "unlink",   "rmdir",     "symlink",
    "rename",      "link",     "chmod",   "chown",  "truncate", "open",      "read",
    "write",       "statfs",   "release", "fsync",  "setxattr", "getxattr",  "listxattr",
    "removexattr", "opendir",  "readdir", "create", "utimens",  "fallocate", "fsyncdir"};

constexpr std::array<std::string_view, kFaultKindCount> kKindNames = {
    "eio", "enospc", "erofs", "short_write", "vanish", "lie"};

constexpr std::array<std::string_view, kClassCount> kClassNames = {"meta", "read", "write",
                                                                   "fsync"};

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

// "250us", "1ms", "0.2s", "0".
bool ParseMicros(std::string_view text, std::chrono::microseconds* out) {
  double number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || number < 0) return false;
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  double factor = 0;
  if (unit == "us") {
    factor = 1;
  } else if (unit == "ms") {
    factor = 1e3;
  } else if (unit == "s") {
    factor = 1e6;
  } else if (unit.empty() && number == 0) {
    factor = 0;
  } else {
    return false;
  }
  if (number * factor > 3600e6) return false;
  *out = std::chrono::microseconds(static_cast<int64_t>(number * factor));
  return true;
}

bool ParseProbability(std::string_view text, double* out) {
  double p = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
  if (ec != std::errc() || end != text.data() + text.size() || p < 0 || p > 1) return false;
  *out = p;
  return true;
}

std::vector<Op> DefaultOps(FaultKind kind) {
  std::vector<Op> ops;
  switch (kind) {
    case FaultKind::kEio:
      for (size_t i = 0; i < kOpCount; ++i) {
        if (static_cast<Op>(i) != Op::kRelease) ops.push_back(static_cast<Op>(i));
      }
      break;
    case FaultKind::kEnospc:
      ops = {Op::kMknod, Op::kMkdir,  Op::kSymlink,   Op::kLink,
             Op::kWrite, Op::kCreate, Op::kFallocate, Op::kSetxattr};
      break;
    case FaultKind::kErofs:
      ops = {Op::kMknod,   Op::kMkdir,     Op::kUnlink,   Op::kRmdir,
             Op::kSymlink, Op::kRename,    Op::kLink,     Op::kChmod,
             Op::kChown,   Op::kTruncate,  Op::kWrite,    Op::kCreate,
             Op::kUtimens, Op::kFallocate, Op::kSetxattr, Op::kRemovexattr};
      break;
    case FaultKind::kShortWrite:
      ops = {Op::kWrite};
      break;
    case FaultKind::kVanish:
      ops = {Op::kRelease};
      break;
    case FaultKind::kLie:
      ops = {Op::kRename, Op::kUnlink, Op::kRmdir};
      break;
    case FaultKind::kCount:
      break;
  }
  return ops;
}

}  // namespace

std::string_view OpName(Op op) { return kOpNames[static_cast<size_t>(op)]; }

std::optional<Op> OpByName(std::string_view name) {
  for (size_t i = 0; i < kOpCount; ++i) {
    if (kOpNames[i] == name) return static_cast<Op>(i);
  }
  return std::nullopt;
}

std::string_view FaultKindName(FaultKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

OpClass ClassOf(Op op) {
  switch (op) {
    case Op::kRead:
    case Op::kReaddir:
    case Op::kReadlink:
    case Op::kGetxattr:
    case Op::kListxattr:
      return OpClass::kRead;
    case Op::kWrite:
    case Op::kFallocate:
      return OpClass::kWrite;
    case Op::kFsync:
    case Op::kFsyncdir:
      return OpClass::kFsync;
    default:
      return OpClass::kMeta;
  }
}

FaultPlan::FaultPlan() = default;

double FaultPlan::Draw(size_t salt, Op op, std::string_view path, uint64_t occurrence) const {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, seed_);
  const std::array<uint64_t, 3> head = {salt, static_cast<uint64_t>(op), occurrence};
  XXH64_update(state, head.data(), sizeof(head));
  XXH64_update(state, path.data(), path.size());
  uint64_t h = XXH64_digest(state);
  XXH64_freeState(state);
  return static_cast<double>(h >> 11U) * 0x1.0p-53;
}

bool FaultPlan::RuleApplies(const FaultRule& rule, Op op, std::string_view path) const {
  const std::vector<Op>& ops = rule.ops;
  bool op_ok = ops.empty() ? false : std::find(ops.begin(), ops.end(), op) != ops.end();
  if (!op_ok) return false;
  if (rule.glob && (path.empty() || !rule.glob->Matches(path, false))) {
    // Directory-only globs ("dir/") are matched as directories.
    if (!rule.glob->dir_only() || path.empty() || !rule.glob->Matches(path, true)) return false;
  }
  return true;
}

Decision FaultPlan::Decide(Op op, std::string_view path, size_t size) {
  std::lock_guard lock(mu_);
  Decision d;
  ++op_count_[static_cast<size_t>(op)];
  const Latency& lat = latency_[static_cast<size_t>(ClassOf(op))];
  bool random = lat.jitter.count() > 0 || stall_probability_ > 0 ||
                std::any_of(rules_.begin(), rules_.end(), [](const FaultRule& r) {
                  return r.probability > 0 && r.probability < 1;
                });
  uint64_t occurrence = 0;
  if (random) {
    uint64_t key = XXH64(path.data(), path.size(), static_cast<uint64_t>(op));
    occurrence = occurrences_[key]++;
  }
  d.delay = lat.base;
  if (lat.jitter.count() > 0) {
    d.delay += std::chrono::microseconds(static_cast<int64_t>(
        Draw(1000, op, path, occurrence) * static_cast<double>(lat.jitter.count())));
  }
  if (stall_probability_ > 0 && Draw(1001, op, path, occurrence) < stall_probability_) {
    d.delay += stall_;
    ++stalls_;
  }
  delayed_us_ += static_cast<uint64_t>(d.delay.count());
  for (size_t i = 0; i < rules_.size(); ++i) {
    const FaultRule& rule = rules_[i];
    if (rule.kind == FaultKind::kVanish || !RuleApplies(rule, op, path)) continue;
    if (rule.probability < 1 && Draw(i, op, path, occurrence) >= rule.probability) continue;
    switch (rule.kind) {
      case FaultKind::kEio:
        d.error = EIO;
        break;
      case FaultKind::kEnospc:
        d.error = ENOSPC;
        break;
      case FaultKind::kErofs:
        d.error = EROFS;
        break;
      case FaultKind::kShortWrite:
        if (size < 2) continue;  // a 1-byte write cannot be short
        d.short_write = size / 2;
        break;
      case FaultKind::kLie:
        d.lie = true;
        break;
      case FaultKind::kVanish:
      case FaultKind::kCount:
        continue;
    }
    ++injected_[static_cast<size_t>(rule.kind)];
    break;
  }
  return d;
}

std::optional<PermanentDamage> FaultPlan::OnClosedAfterWrite(std::string_view path) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < rules_.size(); ++i) {
    const FaultRule& rule = rules_[i];
    if (rule.kind != FaultKind::kVanish || !RuleApplies(rule, Op::kRelease, path)) continue;
    if (rule.probability < 1) {
      uint64_t key = XXH64(path.data(), path.size(), static_cast<uint64_t>(Op::kRelease));
      if (Draw(i, Op::kRelease, path, occurrences_[key]++) >= rule.probability) continue;
    }
    ++injected_[static_cast<size_t>(FaultKind::kVanish)];
    if (rule.vanish_for.count() == 0) return PermanentDamage{std::string(path), rule.vanish_mode};
    vanished_[std::string(path)] = Vanish{rule.vanish_mode, Clock::now() + rule.vanish_for};
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<VanishedView> FaultPlan::Vanished(std::string_view path) {
  std::lock_guard lock(mu_);
  if (vanished_.empty()) return std::nullopt;
  auto it = vanished_.find(path);
  if (it == vanished_.end()) return std::nullopt;
  if (Clock::now() >= it->second.until) {
    vanished_.erase(it);
    return std::nullopt;
  }
  ++vanish_hits_;
  return VanishedView{it->second.mode};
}

void FaultPlan::Forget(std::string_view path) {
  std::lock_guard lock(mu_);
  if (vanished_.empty()) return;
  auto it = vanished_.find(path);
  if (it != vanished_.end()) vanished_.erase(it);
}

uint64_t FaultPlan::Injected(FaultKind kind) const {
  std::lock_guard lock(mu_);
  return injected_[static_cast<size_t>(kind)];
}

std::string FaultPlan::CountersJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json j;
  nlohmann::json ops = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < kOpCount; ++i) {
    if (op_count_[i] != 0) ops[std::string(kOpNames[i])] = op_count_[i];
    total += op_count_[i];
  }
  j["ops"] = ops;
  j["ops_total"] = total;
  nlohmann::json injected = nlohmann::json::object();
  for (size_t i = 0; i < kFaultKindCount; ++i) injected[std::string(kKindNames[i])] = injected_[i];
  j["injected"] = injected;
  j["stalls"] = stalls_;
  j["vanish_hits"] = vanish_hits_;
  j["vanished_now"] = vanished_.size();
  j["delayed_us"] = delayed_us_;
  return j.dump();
}

std::string FaultPlan::ParseFault(const std::vector<std::string_view>& words,
                                  FaultRule* rule) const {
  if (words.size() < 2) return "fault needs a kind (eio, enospc, erofs, short_write, vanish, lie)";
  bool known = false;
  for (size_t i = 0; i < kFaultKindCount; ++i) {
    if (kKindNames[i] == words[1]) {
      rule->kind = static_cast<FaultKind>(i);
      known = true;
    }
  }
  if (!known) return "unknown fault kind '" + std::string(words[1]) + "'";
  for (size_t i = 2; i < words.size(); ++i) {
    std::string_view w = words[i];
    size_t eq = w.find('=');
    if (eq == std::string_view::npos) return "expected key=value, got '" + std::string(w) + "'";
    std::string_view key = w.substr(0, eq);
    std::string_view value = w.substr(eq + 1);
    if (key == "prob") {
      if (!ParseProbability(value, &rule->probability))
        return "bad prob '" + std::string(value) + "'";
    } else if (key == "glob") {
      detourfs::Glob glob;
      if (auto s = detourfs::Glob::Compile(value, &glob); !s.ok()) return s.ToString();
      rule->glob = std::move(glob);
    } else if (key == "ops") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        auto op = OpByName(value.substr(start, comma - start));
        if (!op) return "unknown op '" + std::string(value.substr(start, comma - start)) + "'";
        rule->ops.push_back(*op);
        start = comma + 1;
      }
    } else if (key == "mode") {
      if (value == "enoent") {
        rule->vanish_mode = VanishMode::kEnoent;
      } else if (value == "size") {
        rule->vanish_mode = VanishMode::kSize;
      } else if (value == "content") {
        rule->vanish_mode = VanishMode::kContent;
      } else {
        return "mode must be enoent, size or content";
      }
    } else if (key == "for") {
      std::chrono::microseconds us{};
      if (!ParseMicros(value, &us)) return "bad duration '" + std::string(value) + "'";
      rule->vanish_for = std::chrono::duration_cast<std::chrono::milliseconds>(us);
      if (rule->vanish_for.count() == 0 && us.count() != 0)
        rule->vanish_for = std::chrono::milliseconds(1);
    } else {
      return "unknown key '" + std::string(key) + "'";
    }
  }
  if (rule->ops.empty()) rule->ops = DefaultOps(rule->kind);
  return {};
}

std::string FaultPlan::Apply(std::string_view command, std::string* reply) {
  std::vector<std::string_view> words = Words(command);
  reply->clear();
  if (words.empty() || words[0].front() == '#') return {};
  std::string_view verb = words[0];
  if (verb == "counters") {
    *reply = CountersJson();
    return {};
  }
  std::lock_guard lock(mu_);
  if (verb == "seed") {
    uint64_t seed = 0;
    if (words.size() != 2 ||
        std::from_chars(words[1].data(), words[1].data() + words[1].size(), seed).ec !=
            std::errc()) {
      return "usage: seed N";
    }
    seed_ = seed;
    occurrences_.clear();
  } else if (verb == "latency") {
    if (words.size() < 3 || words.size() > 4)
      return "usage: latency meta|read|write|fsync|all BASE [JITTER]";
    Latency lat;
    if (!ParseMicros(words[2], &lat.base)) return "bad latency '" + std::string(words[2]) + "'";
    if (words.size() == 4 && !ParseMicros(words[3], &lat.jitter)) {
      return "bad jitter '" + std::string(words[3]) + "'";
    }
    bool found = false;
    for (size_t i = 0; i < kClassCount; ++i) {
      if (words[1] == "all" || words[1] == kClassNames[i]) {
        latency_[i] = lat;
        found = true;
      }
    }
    if (!found)
      return "unknown class '" + std::string(words[1]) + "' (meta, read, write, fsync, all)";
  } else if (verb == "stall") {
    if (words.size() != 3) return "usage: stall PROB DURATION";
    double p = 0;
    std::chrono::microseconds d{};
    if (!ParseProbability(words[1], &p)) return "bad prob '" + std::string(words[1]) + "'";
    if (!ParseMicros(words[2], &d)) return "bad duration '" + std::string(words[2]) + "'";
    stall_probability_ = p;
    stall_ = d;
  } else if (verb == "fault") {
    FaultRule rule;
    if (std::string why = ParseFault(words, &rule); !why.empty()) return why;
    rule.text = std::string(command);
    rules_.push_back(std::move(rule));
    *reply = "rule " + std::to_string(rules_.size());
  } else if (verb == "clear") {
    rules_.clear();
    vanished_.clear();
    if (words.size() == 2 && words[1] == "all") {
      latency_ = {};
      stall_probability_ = 0;
    } else if (words.size() != 1) {
      return "usage: clear [all]";
    }
  } else if (verb == "reset-counters") {
    op_count_ = {};
    injected_ = {};
    stalls_ = vanish_hits_ = delayed_us_ = 0;
  } else if (verb == "show") {
    std::ostringstream out;
    out << "seed " << seed_;
    for (size_t i = 0; i < kClassCount; ++i) {
      out << "; latency " << kClassNames[i] << " " << latency_[i].base.count() << "us "
          << latency_[i].jitter.count() << "us";
    }
    out << "; stall " << stall_probability_ << " " << stall_.count() << "us";
    for (const FaultRule& r : rules_) out << "; " << r.text;
    *reply = out.str();
  } else {
    return "unknown command '" + std::string(verb) +
           "' (seed, latency, stall, fault, clear, counters, reset-counters, show, "
           "durability, sync, powercut)";
  }
  return {};
}

}  // namespace flakyfs
