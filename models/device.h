// Where a model computes: the CPU (OpenBLAS, oneDNN) or a CUDA GPU (cuBLAS,
// cuDNN). CUDA exists when the build found nvcc (TESSERA_WITH_CUDA) and the
// machine has a GPU with a working driver.
#ifndef TESSERA_MODELS_DEVICE_H_
#define TESSERA_MODELS_DEVICE_H_

#include <string>

#include "core/status.h"

namespace tessera {

enum class Device { kCpu, kCuda };

// "cpu", "cuda".
const char* DeviceName(Device device);

// True when this binary was built with the CUDA layers.
bool CudaBuilt();

// True when a CUDA device can be used; otherwise false and, when `why` is not
// null, the reason in a few words ("this build has no CUDA support (...)",
// "no CUDA device: ...").
bool CudaAvailable(std::string* why = nullptr);

// The device a --device value names: "cpu", "cuda", or "auto" (cuda when
// available, else cpu). InvalidArgument for other names, and for "cuda"
// when CUDA is not available (naming why).
StatusOr<Device> ResolveDevice(const std::string& name);

}  // namespace tessera

#endif  // TESSERA_MODELS_DEVICE_H_
