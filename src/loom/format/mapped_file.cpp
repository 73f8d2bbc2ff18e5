#include "loom/format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "loom/core/error.h"

namespace loom::format {

namespace {

// Closes the descriptor on every path out of open(); the mapping outlives it.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  FileDescriptor file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) {
    const int err = errno;
    fail("[format] {}: cannot open: {}{}", path, std::strerror(err),
         err == ENOENT ? " (check the path)" : "");
  }
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail("[format] {}: cannot stat: {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("[format] {}: is a directory, expected a model file", path);
  if (!S_ISREG(st.st_mode)) fail("[format] {}: is not a regular file", path);
  if (st.st_size < 0 || uint64_t(st.st_size) > std::numeric_limits<size_t>::max())
    fail("[format] {}: file size {} cannot be mapped on this machine", path, int64_t(st.st_size));

  // The constructor is private, so make_shared cannot reach it; ownership is
  // handed to the shared_ptr at once, before the mapping exists, so the
  // destructor unmaps on every later path.
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  // mmap of length 0 is an error (EINVAL), and an empty file has nothing to map.
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
    if (p == MAP_FAILED) fail("[format] {}: cannot map {} bytes: {}", path, f->size_, std::strerror(errno));
    f->data_ = static_cast<const std::byte*>(p);
    f->owned_ = true;
  }
  return f;
}

std::shared_ptr<const MappedFile> MappedFile::from_memory(const void* data, size_t size, std::string name) {
  if (data == nullptr && size != 0) fail("[format] {}: null buffer of {} bytes", name, size);
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->data_ = static_cast<const std::byte*>(data);
  f->size_ = size;
  f->owned_ = false;
  f->path_ = std::move(name);
  return f;
}

MappedFile::~MappedFile() {
  if (owned_ && data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace loom::format
