// Replays the fuzzers' seed corpus and every crash they ever found
// (tests/fuzz/corpus/*) through the fuzz targets in the normal build, so a
// fixed crash stays fixed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_targets.h"

namespace detourfs::fuzz {
namespace {

std::string CorpusDir() {
  const char* dir = std::getenv("DETOURFS_FUZZ_CORPUS");
  return dir != nullptr ? dir : "tests/fuzz/corpus";
}

template <typename Target>
size_t Replay(const std::string& name, Target target) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CorpusDir() + "/" + name)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    SCOPED_TRACE(entry.path().string());
    target(reinterpret_cast<const uint8_t*>(data.data()), data.size());  // NOLINT
    ++n;
  }
  return n;
}

TEST(FuzzCorpusTest, GlobCorpusRunsClean) { EXPECT_GE(Replay("glob", FuzzGlob), 10U); }

TEST(FuzzCorpusTest, ConfigCorpusRunsClean) { EXPECT_GE(Replay("config", FuzzConfig), 5U); }

TEST(FuzzCorpusTest, ManifestCorpusRunsClean) { EXPECT_GE(Replay("manifest", FuzzManifest), 3U); }

TEST(FuzzCorpusTest, JournalCorpusRunsClean) { EXPECT_GE(Replay("journal", FuzzJournal), 3U); }

}  // namespace
}  // namespace detourfs::fuzz
