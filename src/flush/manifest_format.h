// A flush epoch's manifest (docs/flush.md): the list of steps that make a
// persisted subtree on the volume equal to its state at the epoch's capture,
// in the order they are applied. Encoding and decoding only, no syscalls, so
// the format is tested byte by byte and read the same way offline.
//
// A manifest is written whole and checksummed (header and body); a decode
// refuses anything torn, corrupt, of another version, or naming a path that
// could leave the volume's tree (absolute, "..", empty components) or enter
// detourfs's private directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detourfs/result.h"

namespace detourfs::flush {

inline constexpr uint32_t kManifestVersion = 1;
inline constexpr size_t kManifestHeaderSize = 48;
// Staged objects are numbered from 1.
inline constexpr uint64_t kNoStagedObject = 0;

// What a step does. The values are the format's: never renumber.
enum class StepKind : uint8_t {
  kRemove = 1,     // remove `path` and everything beneath it, if present
  kPlace = 2,      // rename the staged object into place at `path`,
                   // replacing what is there (a file, symlink, device, fifo)
  kDirectory = 3,  // make `path` a directory (the staged empty one, or the
                   // one there, given the staged one's owner, mode, xattrs)
  kLink = 4,       // make `path` another name of `target` (placed earlier)
};

struct ManifestStep {
  StepKind kind = StepKind::kRemove;
  std::string path;    // relative to the volume's root
  std::string target;  // kLink: the first name; kPlace of a symlink: its target
  // kPlace, kDirectory: the object's number in the epoch's data/; a
  // directory step may have none (kNoStagedObject): the directory is there.
  uint64_t staged = 0;
  uint32_t mode = 0;  // type and permission bits (kPlace, kDirectory)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;  // kDirectory: set once its contents are in place
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;  // kPlace of a regular file
  uint64_t hash = 0;  // kPlace of a regular file: XXH3-64 of its data
  bool operator==(const ManifestStep&) const = default;
};

// A step of `kind` at `path` (`target` for a link or a symlink), the other
// fields zero.
inline ManifestStep MakeStep(StepKind kind, std::string path, std::string target = "") {
  ManifestStep s;
  s.kind = kind;
  s.path = std::move(path);
  s.target = std::move(target);
  return s;
}

struct Manifest {
  uint64_t epoch = 0;
  std::vector<ManifestStep> steps;
  bool operator==(const Manifest&) const = default;
};

std::string EncodeManifest(const Manifest& manifest);

// The manifest in `bytes`; EINVAL (with `why` said) for anything but a
// whole, valid manifest of this version.
Result<Manifest> DecodeManifest(std::string_view bytes, std::string* why);

// Whether `path` may be named by a step: relative, non-empty components, no
// "." or "..", no NUL, not detourfs's private directory or beneath it.
bool ValidStepPath(std::string_view path);

const char* StepKindName(StepKind kind);

}  // namespace detourfs::flush
