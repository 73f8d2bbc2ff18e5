// AtomicFile: writes a file so that it appears under its name only when
// complete. Bytes go to PATH.tmp; commit() fsyncs it and renames it over PATH.
// Destroying an uncommitted AtomicFile removes PATH.tmp, so a failed write
// (disk full, an exception half-way) never leaves a truncated model behind.
//
//   AtomicFile out("model.safetensors");
//   out.write(header.data(), header.size());
//   out.commit();
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::format {

class AtomicFile {
 public:
  explicit AtomicFile(std::string final_path);  // throws naming PATH when PATH.tmp cannot be created
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  // Writes zero bytes up to the next multiple of `alignment` (counted from the file start).
  void pad_to(uint64_t alignment);
  uint64_t written() const { return written_; }
  void commit();

 private:
  std::string final_;
  std::string tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace loom::format
