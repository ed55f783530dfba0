#include "models/device.h"

#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tessera {

const char* DeviceName(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

bool CudaBuilt() {
#ifdef TESSERA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool CudaAvailable(std::string* why) {
  std::string reason;
#ifdef TESSERA_WITH_CUDA
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    reason = std::string("no CUDA device: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear it, so later CUDA calls do not report it again
  } else if (count == 0) {
    reason = "no CUDA device";
  }
#else
  reason = "this build has no CUDA support (nvcc was not found when it was configured, or TESSERA_CUDA=OFF)";
#endif
  if (why != nullptr) *why = reason;
  return reason.empty();
}

StatusOr<Device> ResolveDevice(const std::string& name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "auto" || name == "cuda") {
    std::string why;
    if (CudaAvailable(&why)) return Device::kCuda;
    if (name == "auto") return Device::kCpu;
    return InvalidArgumentError("--device=cuda: " + why);
  }
  return InvalidArgumentError("--device must be auto, cpu or cuda, got '" + name + "'");
}

}  // namespace tessera
