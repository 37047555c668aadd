// The node's NVIDIA GPUs, through NVML (the driver's management library) loaded at run time: a
// node without the driver has no GPUs, never an error, and nothing CUDA-related is needed to
// build or run skyhost.
#pragma once

#include <string>
#include <vector>

namespace skyworker {

struct Gpu {
  std::string name;
  double memory_gb = 0;  // total, GiB
  double util = 0;       // percent; 0 where the GPU does not report it
  double used_gb = 0;
};

/// Every GPU NVML lists, with its current utilisation and memory use; empty without NVML.
/// Loads NVML on the first call. Not for several threads at once.
std::vector<Gpu> query_gpus();

}  // namespace skyworker
