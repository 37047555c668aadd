// The worker links glibc dynamically (plugins need dlopen) and everything else statically. The
// static libstdc++ and libgcc of this toolchain call three glibc functions newer than the rest
// of what the worker needs (glibc 2.34): defined here, they bind to these instead, and the
// worker runs on any glibc from 2.34 on (tests/support/glibc-floor.sh checks it).
#include <dlfcn.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace {

// getrandom(2), without glibc's wrapper (2.25).
bool random_bytes(void* buf, size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    long r = syscall(SYS_getrandom, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

extern "C" {

// glibc 2.36; std::random_device's default source.
uint32_t arc4random(void) {
  uint32_t v = 0;
  if (!random_bytes(&v, sizeof v)) _exit(127);  // as glibc does when it has no randomness
  return v;
}

// glibc 2.25; std::random_device's "getentropy" source.
int getentropy(void* buf, size_t n) {
  if (n > 256) {
    errno = EIO;
    return -1;
  }
  return random_bytes(buf, n) ? 0 : -1;
}

// glibc 2.35; libgcc's unwinder finds the unwind tables of the object holding a code address
// with it. Found here the way libgcc did before 2.35: walking the loaded objects.
int _dl_find_object(void* address, struct dl_find_object* result) {
  struct Search {
    uintptr_t pc;
    dl_find_object* out;
    bool found;
  } s{reinterpret_cast<uintptr_t>(address), result, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        bool inside = false;
        void* eh = nullptr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_GNU_EH_FRAME) eh = reinterpret_cast<void*>(start);
          if (ph.p_type != PT_LOAD) continue;
          if (start < lo) lo = start;
          if (start + ph.p_memsz > hi) hi = start + ph.p_memsz;
          if (s->pc >= start && s->pc < start + ph.p_memsz) inside = true;
        }
        if (!inside) return 0;
        s->out->dlfo_flags = 0;
        s->out->dlfo_map_start = reinterpret_cast<void*>(lo);
        s->out->dlfo_map_end = reinterpret_cast<void*>(hi);
        s->out->dlfo_link_map = nullptr;
        s->out->dlfo_eh_frame = eh;
        s->found = true;
        return 1;
      },
      &s);
  return s.found ? 0 : -1;
}

}  // extern "C"
