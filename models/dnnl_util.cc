#include "models/dnnl_util.h"

namespace tessera::dnnl_util {

using dnnl::memory;

dnnl::engine& Engine() {
  thread_local dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

memory::desc Plain(const memory::dims& dims) {
  static constexpr memory::format_tag kTags[] = {memory::format_tag::undef, memory::format_tag::a,
                                                 memory::format_tag::ab, memory::format_tag::abc,
                                                 memory::format_tag::abcd};
  return memory::desc(dims, memory::data_type::f32, kTags[dims.size()]);
}

memory Wrap(const memory::desc& desc, const float* data) {
  return memory(desc, Engine(), const_cast<float*>(data));
}

namespace {

memory& Scratch(const memory::desc& desc, memory* scratch) {
  if (!*scratch || scratch->get_desc() != desc) *scratch = memory(desc, Engine());
  return *scratch;
}

}  // namespace

memory InLayout(const memory& user, const memory::desc& want, memory* scratch) {
  if (user.get_desc() == want) return user;
  memory& converted = Scratch(want, scratch);
  dnnl::reorder(user, converted).execute(Stream(), const_cast<memory&>(user), converted);
  return converted;
}

memory OutputFor(const memory& user, const memory::desc& produced, memory* scratch) {
  if (user.get_desc() == produced) return user;
  return Scratch(produced, scratch);
}

void CopyOut(const memory& produced, const memory& user) {
  if (produced.get_data_handle() == user.get_data_handle()) return;
  dnnl::reorder(produced, user).execute(Stream(), const_cast<memory&>(produced), const_cast<memory&>(user));
}

ConvDims ConvDimsOf(const ConvGeometry& g, int64_t batch) {
  return {{batch, g.in_channels, g.height, g.width},
          {batch, g.out_channels, g.out_height(), g.out_width()},
          {g.out_channels, g.in_channels, g.kernel, g.kernel},
          {g.out_channels},
          {g.stride, g.stride},
          {g.padding, g.padding}};
}

}  // namespace tessera::dnnl_util
