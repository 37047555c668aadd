#include "worker/plugin_loader.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "host/links/wire.hpp"
#include "worker/plugin_values.hpp"

namespace skyworker {

namespace {

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// glibc's dlopen says "No such file or directory" for a library built for another machine: the
// ELF header says what it is.
std::string elf_hint(const std::string& path) {
  unsigned char h[20];
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  size_t n = std::fread(h, 1, sizeof h, f);
  std::fclose(f);
  if (n < sizeof h || std::memcmp(h,
                                  "\x7f"
                                  "ELF",
                                  4) != 0)
    return "; the file is not an ELF library";
  unsigned machine = h[18] | (h[19] << 8);  // little-endian files; a big-endian one shows too
  if (h[4] == 2 && machine == 62) return "";
  const char* name = machine == 3     ? "x86 (32-bit)"
                     : machine == 40  ? "ARM (32-bit)"
                     : machine == 183 ? "AArch64"
                     : machine == 243 ? "RISC-V"
                     : machine == 21  ? "PowerPC64"
                     : machine == 62  ? "x86-64 (32-bit class)"
                                      : nullptr;
  return std::string("; the file is built for ") +
         (name ? name : "machine " + std::to_string(machine)) + ", this node runs x86-64";
}

// Where an SSH node keeps the uploaded file (by content), else the host's own path.
std::string resolve(const PluginDef& def) {
  const char* home = std::getenv("HOME");
  if (home != nullptr && !def.hash.empty()) {
    std::string cached =
        std::string(home) + "/.skyhost/plugins/" + def.hash + "/" + base_name(def.path);
    if (access(cached.c_str(), R_OK) == 0) return cached;
  }
  return def.path;
}

}  // namespace

bool is_plugin_def(std::string_view closure) {
  return closure.size() > 1 && closure[0] == 0;
}

PluginDef parse_plugin_def(std::string_view closure) {
  skyhost::wire::Reader r(closure);
  if (r.get_u8() != 0 || r.get_u8() != 1) throw skyhost::wire::Error("unknown plugin reference");
  PluginDef d;
  d.isolate = (r.get_u8() & 1) != 0;
  for (std::string* f : {&d.name, &d.path, &d.symbol, &d.hash}) {
    uint32_t n = r.get_u32();
    f->assign(r.get_raw(n));
  }
  return d;
}

const sky_plugin* PluginLoader::load(const PluginDef& def, std::string& why) {
  std::lock_guard lock(mu_);
  std::string key = def.path + '\0' + def.symbol + '\0' + def.hash;
  if (auto it = records_.find(key); it != records_.end()) return it->second;
  std::string path = resolve(def);
  void*& lib = libs_[path];
  if (lib == nullptr) {
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      std::string msg = e != nullptr ? e : "dlopen failed";
      why = (msg.find(path) == std::string::npos ? path + ": " + msg : msg) + elf_hint(path);
      libs_.erase(path);
      return nullptr;
    }
  }
  std::string sym = "sky_plugin_" + def.symbol;
  dlerror();
  auto* rec = static_cast<const sky_plugin*>(dlsym(lib, sym.c_str()));
  if (rec == nullptr) {
    why = path + ": no plugin '" + def.symbol + "' (symbol " + sym +
          " not found; is it exported with SKY_PLUGIN(" + def.symbol + ")?)";
    return nullptr;
  }
  if (rec->abi_version != SKY_PLUGIN_ABI_VERSION || rec->fn == nullptr) {
    why = path + ": plugin '" + def.symbol + "' was built for plugin ABI version " +
          std::to_string(rec->abi_version) + "; this worker runs version " +
          std::to_string(SKY_PLUGIN_ABI_VERSION);
    return nullptr;
  }
  records_[key] = rec;
  return rec;
}

PluginReply call_plugin(const sky_plugin* rec, std::string_view args) {
  PluginReply r;
  ArgViews views;
  try {
    views.parse(args);
  } catch (const std::exception& e) {
    r.text = e.what();
    return r;
  }
  ResultWriter w;
  int rc;
  try {
    rc = rec->fn(ResultWriter::api(), w.call(), views.data(), views.size());
  } catch (...) {  // a C function should not throw; one written in C++ might
    r.text = "an exception escaped the plugin (SKY_PLUGIN catches them; a C function must too)";
    return r;
  }
  if (rc != 0 && !w.failed()) w.fail("failed (returned " + std::to_string(rc) + ")");
  if (!w.finish()) {
    r.text = w.why();
    return r;
  }
  r.status = PluginStatus::kOk;
  r.region = w.out().take_region();
  if (!r.region) r.text.assign(w.out().view());
  return r;
}

}  // namespace skyworker
