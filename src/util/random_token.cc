// Random tokens (random_token.h).
#include "util/random_token.h"

#include <sys/random.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <ctime>

namespace detourfs {

uint64_t NewRandomToken() {
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

std::string TokenName(uint64_t token) {
  char name[17];
  std::snprintf(name, sizeof(name), "%016" PRIx64, token);
  return name;
}

}  // namespace detourfs
