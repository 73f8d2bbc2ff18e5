#include "loom/format/mapped_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "loom/core/error.h"
#include "support/test_data.h"

namespace {

using loom::format::MappedFile;

std::string error_of(const std::string& path) {
  try {
    MappedFile::open(path);
  } catch (const loom::Error& e) {
    return e.what();
  }
  return "";
}

TEST(MappedFile, MapsTheBytesOfAFile) {
  const std::string path = loom::test::scratch_dir("mapped_file") + "/hello.bin";
  const std::string content = std::string("hello\0world", 11);
  std::ofstream(path, std::ios::binary) << content;

  auto f = MappedFile::open(path);
  ASSERT_EQ(f->size(), content.size());
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(std::memcmp(f->data(), content.data(), content.size()), 0);
  EXPECT_EQ(f->bytes().size(), content.size());
}

TEST(MappedFile, EmptyFileMapsAsSizeZero) {
  const std::string path = loom::test::scratch_dir("mapped_file") + "/empty.bin";
  std::ofstream(path, std::ios::binary).close();
  auto f = MappedFile::open(path);
  EXPECT_EQ(f->size(), 0u);
  EXPECT_TRUE(f->bytes().empty());
}

TEST(MappedFile, MissingFileNamesThePath) {
  const std::string path = loom::test::scratch_dir("mapped_file") + "/does-not-exist.gguf";
  const std::string msg = error_of(path);
  EXPECT_EQ(msg.rfind("[format] ", 0), 0u) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(MappedFile, DirectoryIsAnError) {
  const std::string dir = loom::test::scratch_dir("mapped_file");
  const std::string msg = error_of(dir);
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

TEST(MappedFile, FromMemoryWrapsCallerBytesWithoutCopying) {
  const char bytes[] = "GGUF....";
  auto f = MappedFile::from_memory(bytes, 8, "in-memory");
  EXPECT_EQ(static_cast<const void*>(f->data()), static_cast<const void*>(bytes));
  EXPECT_EQ(f->size(), 8u);
  EXPECT_EQ(f->path(), "in-memory");

  auto empty = MappedFile::from_memory(nullptr, 0, "nothing");
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_THROW(MappedFile::from_memory(nullptr, 4, "null"), loom::Error);
}

TEST(MappedFile, MappingOutlivesTheDescriptorAndSharedOwners) {
  LOOM_DATA(path, "models/tok512.bin");
  std::shared_ptr<const MappedFile> keep;
  {
    auto f = MappedFile::open(path);
    keep = f;
  }
  // 6227 bytes is the size of tok512.bin; its first int32 is max_token_length 7.
  ASSERT_EQ(keep->size(), 6227u);
  int32_t first = 0;
  std::memcpy(&first, keep->data(), 4);
  EXPECT_EQ(first, 7);
}

}  // namespace
