// SpillStore (spill_store.h).
#include "store/spill_store.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "overlay/backing_tree.h"
#include "sys/sys.h"

namespace detourfs {

uint64_t SpillStore::NewToken() {
  uint64_t token = 0;
  while (token == 0) {
    // 8 bytes from the urandom pool never block or come short after boot;
    // should they, the clock still makes tokens unlikely to meet.
    if (::getrandom(&token, sizeof(token), 0) != static_cast<ssize_t>(sizeof(token))) {
      struct timespec now {};
      ::clock_gettime(CLOCK_REALTIME, &now);
      token = (static_cast<uint64_t>(now.tv_sec) << 30) ^ static_cast<uint64_t>(now.tv_nsec) ^
              (static_cast<uint64_t>(::getpid()) << 48);
    }
  }
  return token;
}

std::string SpillStore::NameOf(uint64_t token) {
  char name[17];
  std::snprintf(name, sizeof(name), "%016" PRIx64, token);
  return name;
}

uint64_t SpillStore::TokenOf(const std::string& name) {
  if (name.size() != 16) return 0;
  uint64_t token = 0;
  for (char c : name) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return 0;
    }
    token = (token << 4) | static_cast<uint64_t>(digit);
  }
  return token;
}

Result<UniqueFd> SpillStore::Open(uint64_t token, int flags) const {
  if (token == 0) return Errno{EINVAL};
  return sys::OpenBeneath(dir(), NameOf(token).c_str(), flags | O_NOFOLLOW);
}

Result<void> SpillStore::Remove(uint64_t token) const {
  if (token == 0) return Errno{EINVAL};
  return sys::UnlinkAt(dir(), NameOf(token).c_str(), 0);
}

Result<std::vector<uint64_t>> SpillStore::Tokens() const {
  std::vector<uint64_t> tokens;
  DETOURFS_TRY(ForEachEntry(dir(), [&](std::string_view name, ino_t, mode_t) -> Result<void> {
    if (uint64_t t = TokenOf(std::string(name)); t != 0) tokens.push_back(t);
    return {};
  }));
  return tokens;
}

}  // namespace detourfs
