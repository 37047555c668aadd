// Stands in for the NVIDIA driver's libnvidia-ml.so.1 where no GPU exists (tests/cli/jobs.t):
// two GPUs, the first 35% busy with 1 GiB in use, the second not reporting utilisation, as
// some GPUs do. It checks skyworker's side of the NVML interface, not a GPU.
#include <cstring>

namespace {
struct Device {
  const char* name;
  unsigned long long used;
  int util;  // -1: not supported
};
Device g_devices[2] = {{"NVIDIA H100 80GB HBM3", 1ull << 30, 35}, {"NVIDIA H100 80GB HBM3", 0, -1}};
bool g_init = false;
constexpr int kSuccess = 0, kUninitialized = 1, kInvalidArgument = 2, kNotSupported = 3;
}  // namespace

extern "C" {

struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned int gpu, memory;
};

int nvmlInit_v2() {
  g_init = true;
  return kSuccess;
}

int nvmlDeviceGetCount_v2(unsigned int* n) {
  if (!g_init) return kUninitialized;
  *n = 2;
  return kSuccess;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, Device** dev) {
  if (!g_init) return kUninitialized;
  if (i >= 2) return kInvalidArgument;
  *dev = &g_devices[i];
  return kSuccess;
}

int nvmlDeviceGetName(Device* dev, char* name, unsigned int size) {
  if (!g_init) return kUninitialized;
  std::strncpy(name, dev->name, size - 1);
  name[size - 1] = '\0';
  return kSuccess;
}

int nvmlDeviceGetMemoryInfo(Device* dev, NvmlMemory* m) {
  if (!g_init) return kUninitialized;
  m->total = 81559ull << 20;
  m->used = dev->used;
  m->free = m->total - m->used;
  return kSuccess;
}

int nvmlDeviceGetUtilizationRates(Device* dev, NvmlUtilization* u) {
  if (!g_init) return kUninitialized;
  if (dev->util < 0) return kNotSupported;
  u->gpu = static_cast<unsigned int>(dev->util);
  u->memory = 10;
  return kSuccess;
}

}  // extern "C"
