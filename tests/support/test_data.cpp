#include "support/test_data.h"

#include <cstdlib>
#include <filesystem>

namespace loom::test {

DataLookup find_data(const std::string& relative) {
  DataLookup r;
  const char* env = std::getenv("LOOM_SHARED_DATA");
  const std::string root = env && *env ? env : LOOM_SHARED_DATA_DEFAULT;
  r.path = root + "/" + relative;
  r.found = std::filesystem::is_regular_file(r.path);
  const char* allow = std::getenv("LOOM_ALLOW_MISSING_DATA");
  r.allow_missing = allow && std::string(allow) == "1";
  if (!r.found) {
    r.message = "shared test data missing: " + r.path +
                " (put ../shared beside the checkout, set LOOM_SHARED_DATA, or set LOOM_ALLOW_MISSING_DATA=1 to skip)";
  }
  return r;
}

std::string scratch_dir(const std::string& test_name) {
  const auto dir = std::filesystem::path(LOOM_BINARY_DIR) / "test-scratch" / test_name;
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string loom_binary() { return std::string(LOOM_BINARY_DIR) + "/bin/loom"; }

}  // namespace loom::test
