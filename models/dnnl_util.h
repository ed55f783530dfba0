// Shared oneDNN plumbing for the CPU layers: one engine and stream per
// thread, plain (NCHW) descriptors, and reorders between a layer's plain
// buffers and the blocked layouts oneDNN's fastest kernels choose.
// Include only from .cc files: dnnl.hpp is heavy.
#ifndef TESSERA_MODELS_DNNL_UTIL_H_
#define TESSERA_MODELS_DNNL_UTIL_H_

#include <dnnl.hpp>

#include "models/conv2d.h"

namespace tessera::dnnl_util {

dnnl::engine& Engine();
dnnl::stream& Stream();

// f32 descriptor in the plain row-major layout for 1 to 4 dimensions
// (x, nc, ncw, nchw).
dnnl::memory::desc Plain(const dnnl::memory::dims& dims);

// Wraps caller-owned floats; oneDNN does not write through `data` unless the
// memory is used as an output.
dnnl::memory Wrap(const dnnl::memory::desc& desc, const float* data);

// `user`'s contents in layout `want`: `user` itself when the layouts agree,
// otherwise `*scratch` (allocated on first use) filled by a reorder.
dnnl::memory InLayout(const dnnl::memory& user, const dnnl::memory::desc& want, dnnl::memory* scratch);

// The memory a primitive should write when the caller wants the result in
// `user`: `user` itself when the layouts agree, otherwise `*scratch`; pass
// the result to CopyOut afterwards.
dnnl::memory OutputFor(const dnnl::memory& user, const dnnl::memory::desc& produced, dnnl::memory* scratch);
void CopyOut(const dnnl::memory& produced, const dnnl::memory& user);

// oneDNN's dims of convolution `g` over `batch` examples, in the order
// `auto [src, dst, weight, bias, strides, padding] = ConvDimsOf(g, batch)`.
struct ConvDims {
  dnnl::memory::dims src, dst, weight, bias, strides, padding;
};
ConvDims ConvDimsOf(const ConvGeometry& g, int64_t batch);

}  // namespace tessera::dnnl_util

#endif  // TESSERA_MODELS_DNNL_UTIL_H_
