#include "models/max_pool2d.h"

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

namespace {

Shape PooledShape(const Shape& in, int64_t kernel, int64_t stride) {
  return {in[0], (in[1] - kernel) / stride + 1, (in[2] - kernel) / stride + 1};
}

}  // namespace

// Pooling runs on the plain layout: the workspace (argmax positions) the
// training forward writes is what the backward pass reads.
struct MaxPool2d::Primitives {
  dnnl::pooling_forward::primitive_desc fwd_pd;
  dnnl::pooling_backward::primitive_desc bwd_pd;
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward bwd;
  memory::desc src_plain, dst_plain;
  memory workspace;
};

MaxPool2d::MaxPool2d(const Shape& in_shape, int64_t kernel, int64_t stride)
    : Layer(in_shape, PooledShape(in_shape, kernel, stride)), kernel_(kernel), stride_(stride) {}

MaxPool2d::~MaxPool2d() = default;

MaxPool2d::Primitives& MaxPool2d::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  p->src_plain = Plain({batch, in_shape()[0], in_shape()[1], in_shape()[2]});
  p->dst_plain = Plain({batch, out_shape()[0], out_shape()[1], out_shape()[2]});
  const memory::dims strides = {stride_, stride_}, kernel = {kernel_, kernel_}, pad = {0, 0};
  dnnl::pooling_forward::desc fwd_desc(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, p->src_plain,
                                       p->dst_plain, strides, kernel, pad, pad);
  p->fwd_pd = dnnl::pooling_forward::primitive_desc(fwd_desc, Engine());
  dnnl::pooling_backward::desc bwd_desc(dnnl::algorithm::pooling_max, p->src_plain, p->dst_plain, strides, kernel, pad,
                                        pad);
  p->bwd_pd = dnnl::pooling_backward::primitive_desc(bwd_desc, Engine(), p->fwd_pd);
  p->fwd = dnnl::pooling_forward(p->fwd_pd);
  p->bwd = dnnl::pooling_backward(p->bwd_pd);
  p->workspace = memory(p->fwd_pd.workspace_desc(), Engine());
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void MaxPool2d::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  p.fwd.execute(Stream(), {{DNNL_ARG_SRC, Wrap(p.src_plain, x)},
                           {DNNL_ARG_DST, Wrap(p.dst_plain, y)},
                           {DNNL_ARG_WORKSPACE, p.workspace}});
  Stream().wait();
}

void MaxPool2d::Backward(const float* /*x*/, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (dx == nullptr || batch == 0) return;
  Primitives& p = For(batch);
  p.bwd.execute(Stream(), {{DNNL_ARG_DIFF_DST, Wrap(p.dst_plain, dy)},
                           {DNNL_ARG_DIFF_SRC, Wrap(p.src_plain, dx)},
                           {DNNL_ARG_WORKSPACE, p.workspace}});
  Stream().wait();
}

}  // namespace tessera
