#include "loom/format/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "loom/core/error.h"

namespace loom::format {

AtomicFile::AtomicFile(std::string final_path) : final_(std::move(final_path)), tmp_(final_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("[format] {}: cannot create {}: {}", final_, tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("[format] {}: write failed: {} (is the disk full?)", final_, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
    written_ += uint64_t(w);
  }
}

void AtomicFile::pad_to(uint64_t alignment) {
  static const char zeros[4096] = {};
  uint64_t pad = (alignment - written_ % alignment) % alignment;
  while (pad > 0) {
    const size_t n = size_t(std::min<uint64_t>(pad, sizeof(zeros)));
    write(zeros, n);
    pad -= n;
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("[format] {}: fsync failed: {}", final_, std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("[format] {}: close failed: {}", final_, std::strerror(errno));
  if (::rename(tmp_.c_str(), final_.c_str()) != 0)
    fail("[format] {}: cannot rename {} over it: {}", final_, tmp_, std::strerror(errno));
  committed_ = true;
  // Make the rename itself durable; a failure here loses nothing already
  // written, so it is not an error.
  auto dir = std::filesystem::path(final_).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace loom::format
