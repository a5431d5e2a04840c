// The fuzz targets' bodies, shared by the libFuzzer binaries (built with
// clang, scripts/fuzz.sh) and by the unit test that replays the seed corpus
// and every past crash as regression tests in the normal build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace detourfs::fuzz {

// Input: the first line is a glob, each further line a path. Compiles the
// glob and matches every path; checks invariants against fnmatch(3) for
// single-component ASCII patterns. Aborts on a violated invariant.
void FuzzGlob(const uint8_t* data, size_t size);

// Input: a TOML document. Parses and validates it; on success, describes it,
// explains a few paths and checks placement. Aborts on a violated invariant.
void FuzzConfig(const uint8_t* data, size_t size);

// Input: a flush manifest's bytes. A decode either refuses them or gives
// steps whose paths stay in the tree and whose encoding is the input again.
void FuzzManifest(const uint8_t* data, size_t size);

// Input: a journal segment's bytes. The scan's good prefix scans to the
// same changes, and nothing it returns lies past it.
void FuzzJournal(const uint8_t* data, size_t size);

}  // namespace detourfs::fuzz
