// Human units in the config: sizes ("16GiB", "512M", "1000000"), durations
// ("30s", "1m30s", "250ms") and fractions ("90%", "0.9"). Each parser returns
// an empty string on success or what is wrong with the text.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace detourfs {

// Binary units: K/KiB = 1024, M/MiB, G/GiB, T/TiB; decimal: KB = 1000, MB, GB,
// TB; "B" or none: bytes. Case-insensitive; a decimal point is allowed
// ("1.5GiB"). Overflow is an error.
std::string ParseSize(std::string_view text, uint64_t* bytes);

// One or more <number><unit> parts with units ms, s, m, h, d: "1h30m", "500ms".
std::string ParseDuration(std::string_view text, std::chrono::milliseconds* out);

// "90%" or "0.9": a fraction in [0, 1].
std::string ParseFraction(std::string_view text, double* out);

// "16 GiB", "1.5 MiB", "512 B": for printing sizes back.
std::string FormatSize(uint64_t bytes);
// "30s", "1h30m", "250ms".
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace detourfs
