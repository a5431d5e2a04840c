// Ring thread plan: see uring_queues.h.
#include "fuse/uring_queues.h"

#include <algorithm>
#include <charconv>

namespace detourfs::fuseops {
namespace {

// Parses a CPU number at the front of `text`, advancing it.
bool TakeNumber(std::string_view* text, unsigned* out) {
  const char* begin = text->data();
  const auto [end, ec] = std::from_chars(begin, begin + text->size(), *out);
  if (ec != std::errc() || end == begin) return false;
  text->remove_prefix(static_cast<size_t>(end - begin));
  return true;
}

}  // namespace

std::vector<unsigned> ParseCpuList(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::vector<unsigned> cpus;
  while (!text.empty()) {
    unsigned first = 0;
    if (!TakeNumber(&text, &first)) return {};
    unsigned last = first;
    if (!text.empty() && text.front() == '-') {
      text.remove_prefix(1);
      if (!TakeNumber(&text, &last) || last < first) return {};
    }
    if (last >= kMaxCpus) return {};
    for (unsigned cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    if (!text.empty()) {
      if (text.front() != ',') return {};
      text.remove_prefix(1);
      if (text.empty()) return {};
    }
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<RingThreadPlan> PlanRingThreads(unsigned queues, const std::vector<unsigned>& cpus,
                                            unsigned threads_per_cpu) {
  std::vector<RingThreadPlan> plan;
  if (queues == 0) return plan;
  std::vector<unsigned> serving;
  for (unsigned cpu : cpus) {
    if (cpu < queues) serving.push_back(cpu);
  }
  std::sort(serving.begin(), serving.end());
  serving.erase(std::unique(serving.begin(), serving.end()), serving.end());
  if (serving.empty()) serving.push_back(0);
  const unsigned per_cpu = std::max(1U, threads_per_cpu);
  for (unsigned cpu : serving) {
    for (unsigned t = 0; t < per_cpu; ++t) plan.push_back(RingThreadPlan{cpu, {cpu}});
  }
  size_t next = 0;
  for (unsigned qid = 0; qid < queues; ++qid) {
    if (std::binary_search(serving.begin(), serving.end(), qid)) continue;
    plan[next].queues.push_back(qid);
    next = (next + 1) % plan.size();
  }
  return plan;
}

}  // namespace detourfs::fuseops
