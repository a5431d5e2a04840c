// Random tokens: 64-bit names for files the daemon makes in its own
// directories (spilled data, move records), unlikely to ever meet.
#pragma once

#include <cstdint>
#include <string>

namespace detourfs {

// A fresh token (never 0), from the kernel's random pool.
uint64_t NewRandomToken();
// A token as a file name: 16 hex digits.
std::string TokenName(uint64_t token);

}  // namespace detourfs
