// Example plugin: dense single-precision matrix multiply, C = A * B, row-major float32 matrices
// passed as binary strings (string.pack("<f", ...) in Lua, or numpy's tobytes()).
//
//   local gemm = sky.plugin("build/libgemm.so", "gemm")
//   local c = gemm(a, b, m, k, n) >> pool          -- a: m*k floats, b: k*n floats
//
// Build: any C++20 compiler, the headers in include/ (CMake: target skyhost::plugin). The CUDA
// variant is the same plugin calling cuBLAS instead of the loops below (docs/plugins.md).
#include <cstring>
#include <skyhost/plugin.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// The bytes of a string argument are not aligned: read them with memcpy.
std::vector<float> floats(std::string_view bytes, size_t count, const char* what) {
  if (bytes.size() != count * sizeof(float))
    throw std::invalid_argument(std::string(what) + " holds " + std::to_string(bytes.size()) +
                                " bytes, expected " + std::to_string(count * sizeof(float)));
  std::vector<float> out(count);
  if (count > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

/// C (m x n) = A (m x k) * B (k x n); the result is written straight into the task's result.
void gemm(sky::Call& call, std::string_view a_bytes, std::string_view b_bytes, int64_t m, int64_t k,
          int64_t n) {
  if (m < 0 || k < 0 || n < 0) throw std::invalid_argument("gemm: negative dimension");
  const auto M = static_cast<size_t>(m), K = static_cast<size_t>(k), N = static_cast<size_t>(n);
  std::vector<float> a = floats(a_bytes, M * K, "a");
  std::vector<float> b = floats(b_bytes, K * N, "b");
  char* out = call.push_bytes(M * N * sizeof(float));
  std::vector<float> row(N);
  for (size_t i = 0; i < M; ++i) {
    std::fill(row.begin(), row.end(), 0.0f);
    for (size_t p = 0; p < K; ++p) {
      const float aip = a[i * K + p];
      const float* bp = &b[p * N];
      for (size_t j = 0; j < N; ++j) row[j] += aip * bp[j];  // vectorised by the compiler
    }
    if (N > 0) std::memcpy(out + i * N * sizeof(float), row.data(), N * sizeof(float));
  }
}
SKY_PLUGIN(gemm);

/// Sum of squares of i for i in [lo, hi): the loop of the compute benchmark (bench/plugin.lua).
double sum_squares(int64_t lo, int64_t hi) {
  double s = 0;
  for (int64_t i = lo; i < hi; ++i) s += static_cast<double>(i) * static_cast<double>(i);
  return s;
}
SKY_PLUGIN(sum_squares);
