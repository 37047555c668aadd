#include "worker/gpu.hpp"

#include <dlfcn.h>

namespace skyworker {

namespace {

// The few NVML entry points used, with their C ABI (nvml.h is not packaged by Debian's main
// archive): every call returns 0 (NVML_SUCCESS) or an error code; devices are opaque handles.
struct NvmlDevice;
struct NvmlMemory {
  unsigned long long total, free, used;  // bytes
};
struct NvmlUtilization {
  unsigned int gpu, memory;  // percent over the last sample period
};
constexpr unsigned int kNameSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

struct Nvml {
  int (*count)(unsigned int*) = nullptr;
  int (*handle)(unsigned int, NvmlDevice**) = nullptr;
  int (*name)(NvmlDevice*, char*, unsigned int) = nullptr;
  int (*memory)(NvmlDevice*, NvmlMemory*) = nullptr;
  int (*utilization)(NvmlDevice*, NvmlUtilization*) = nullptr;
};

template <typename Fn>
bool find(void* lib, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, symbol));
  return fn != nullptr;
}

/// NVML initialised, or nothing (no driver, an old one, or no device it can manage). Kept open
/// and initialised for the life of the worker, as its metrics thread samples it.
const Nvml* load() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return nullptr;
  static Nvml nvml;
  int (*init)() = nullptr;
  if (!find(lib, "nvmlInit_v2", init) || !find(lib, "nvmlDeviceGetCount_v2", nvml.count) ||
      !find(lib, "nvmlDeviceGetHandleByIndex_v2", nvml.handle) ||
      !find(lib, "nvmlDeviceGetName", nvml.name) ||
      !find(lib, "nvmlDeviceGetMemoryInfo", nvml.memory) ||
      !find(lib, "nvmlDeviceGetUtilizationRates", nvml.utilization) || init() != 0) {
    dlclose(lib);
    return nullptr;
  }
  return &nvml;
}

constexpr double kGiB = 1024.0 * 1024 * 1024;

}  // namespace

std::vector<Gpu> query_gpus() {
  static const Nvml* nvml = load();
  std::vector<Gpu> gpus;
  unsigned int n = 0;
  if (nvml == nullptr || nvml->count(&n) != 0) return gpus;
  for (unsigned int i = 0; i < n && i < 64; i++) {
    NvmlDevice* dev = nullptr;
    if (nvml->handle(i, &dev) != 0) continue;  // a GPU NVML may not touch (permissions)
    Gpu g;
    char name[kNameSize] = {0};
    if (nvml->name(dev, name, kNameSize) == 0) g.name = name;
    NvmlMemory mem{};
    if (nvml->memory(dev, &mem) == 0) {
      g.memory_gb = static_cast<double>(mem.total) / kGiB;
      g.used_gb = static_cast<double>(mem.used) / kGiB;
    }
    NvmlUtilization util{};
    if (nvml->utilization(dev, &util) == 0) g.util = util.gpu;
    gpus.push_back(std::move(g));
  }
  return gpus;
}

}  // namespace skyworker
