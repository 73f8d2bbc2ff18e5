// MappedFile: a read-only memory mapping of a whole file (RAII). Model
// weights are used straight from the mapping where the backend can read host
// memory, so nothing is copied twice.
//
//   auto f = MappedFile::open("model.gguf");   // throws loom::Error naming the file
//   std::span<const std::byte> bytes = f->bytes();
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace loom::format {

class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  // Wraps bytes already in memory (fuzzing, tests); the caller keeps them alive.
  static std::shared_ptr<const MappedFile> from_memory(const void* data, size_t size, std::string name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;  // true when data_ is our mmap
  std::string path_;
};

}  // namespace loom::format
