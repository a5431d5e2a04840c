// SpillStore (spill_store.h).
#include "store/spill_store.h"

#include <fcntl.h>
#include <unistd.h>

#include "overlay/backing_tree.h"
#include "sys/sys.h"
#include "util/random_token.h"

namespace detourfs {

uint64_t SpillStore::NewToken() { return NewRandomToken(); }

std::string SpillStore::NameOf(uint64_t token) { return TokenName(token); }

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
