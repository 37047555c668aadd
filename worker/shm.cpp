#include "worker/shm.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace skyworker {

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("shared memory: ") + what + ": " + std::strerror(errno));
}

// The raw system call: glibc's wrapper would raise the worker's minimum glibc to 2.27.
int new_memfd() {
  return static_cast<int>(syscall(SYS_memfd_create, "skyworker", 1u /* MFD_CLOEXEC */));
}

// mmap refuses 0 bytes; an empty region maps one page it never shows.
size_t map_size(size_t n) {
  return n == 0 ? 1 : n;
}

}  // namespace

std::shared_ptr<Region> Region::create(size_t size) {
  int fd = new_memfd();
  if (fd < 0) fail("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(map_size(size))) != 0) {
    close(fd);
    fail("ftruncate");
  }
  void* p = mmap(nullptr, map_size(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    fail("mmap");
  }
  return std::shared_ptr<Region>(new Region(fd, static_cast<char*>(p), size, true));
}

std::shared_ptr<Region> Region::open(int fd, size_t size) {
  void* p = mmap(nullptr, map_size(size), PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    fail("mmap");
  }
  return std::shared_ptr<Region>(new Region(fd, static_cast<char*>(p), size, false));
}

Region::~Region() {
  munmap(data_, map_size(size_));
  close(fd_);
}

void Region::resize(size_t size) {
  if (!writable_) throw std::logic_error("shared memory: resize of a read-only region");
  if (ftruncate(fd_, static_cast<off_t>(map_size(size))) != 0) fail("ftruncate");
  void* p = mremap(data_, map_size(size_), map_size(size), MREMAP_MAYMOVE);
  if (p == MAP_FAILED) fail("mremap");
  data_ = static_cast<char*>(p);
  size_ = size;
}

void Bytes::assign(const char* p, size_t n) {
  if (n < kShared) {
    big_.reset();
    small_ = skyhost::wire::Payload(std::string(p, n));
    return;
  }
  try {
    big_ = Region::create(n);
  } catch (const std::exception&) {  // no memfd here (a sandbox): the heap will do
    big_.reset();
    small_ = skyhost::wire::Payload(std::string(p, n));
    return;
  }
  small_ = skyhost::wire::Payload();
  std::memcpy(big_->data(), p, n);
}

}  // namespace skyworker
