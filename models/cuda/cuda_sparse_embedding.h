// The CUDA twin of SparseEmbedding (models/sparse_embedding.h), a subclass
// of it: BindRows and ValidateInput stay the CPU layer's (the rows are bound
// on the host, per batch). Forward uploads the bound rows and gathers each
// bag in one kernel, in the CPU layer's order of additions; Backward reads
// the slots back to the host, groups the uses by row (as
// CudaColumnEmbedding), sums each row's gradient without atomics in the
// CPU's order (a MEAN bag's use divided by its count first, as the CPU
// does), and copies the rows' gradients into the bound host buffer before it
// returns: bitwise the CPU layer. dx passes the numeric features' dy
// through (slots: zero). Device pointers for x, y, dy and dx; work on the
// context's stream; not thread-safe.
#ifndef TESSERA_MODELS_CUDA_CUDA_SPARSE_EMBEDDING_H_
#define TESSERA_MODELS_CUDA_CUDA_SPARSE_EMBEDDING_H_

#include <memory>

#include "models/cuda/cuda_context.h"
#include "models/sparse_embedding.h"

namespace tessera::cuda {

// The CUDA layer of `cpu` (whose shapes and settings it takes).
std::unique_ptr<Layer> CreateCudaSparseEmbedding(const SparseEmbedding& cpu, std::shared_ptr<CudaContext> context);

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_CUDA_SPARSE_EMBEDDING_H_
