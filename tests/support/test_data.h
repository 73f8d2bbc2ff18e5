// Access to ../shared/data from tests. A missing file fails the test loudly,
// unless LOOM_ALLOW_MISSING_DATA=1 is set (a user's machine without shared/),
// in which case the test is skipped with the reason printed.
//
//   TEST(Model, Stories) { LOOM_DATA(path, "models/stories260K.bin"); ... }
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace loom::test {

struct DataLookup {
  bool found = false;
  bool allow_missing = false;
  std::string path;
  std::string message;
};

// Looks up `relative` under $LOOM_SHARED_DATA (default: the CMake option).
DataLookup find_data(const std::string& relative);

// Folder for files a test writes (under the build tree), created on demand.
std::string scratch_dir(const std::string& test_name);

// Absolute path of the built loom command.
std::string loom_binary();

}  // namespace loom::test

#define LOOM_DATA(var, relative)                                  \
  std::string var;                                                \
  do {                                                            \
    auto loom_lookup_ = ::loom::test::find_data(relative);        \
    if (!loom_lookup_.found) {                                    \
      if (loom_lookup_.allow_missing) GTEST_SKIP() << loom_lookup_.message; \
      FAIL() << loom_lookup_.message;                             \
    }                                                             \
    var = loom_lookup_.path;                                      \
  } while (0)
