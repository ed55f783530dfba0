// The wide part's feature ids (issue 16; SparseEmbeddingSpec.wide_table,
// docs/FORMATS.md "Wide features"): from an example's field ids (one per
// field, as the sparse_embedding's id slots hold them), its wide ids: each
// field's own id (wide_fields), then one id per wide_cross. Training,
// predict and serve must all make them here, so that they agree. Functions
// only: thread-safe.
#ifndef TESSERA_CORE_FEATURE_CROSS_H_
#define TESSERA_CORE_FEATURE_CROSS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "proto/job.pb.h"

namespace tessera {

// The id of cross number `cross` (its index in wide_cross) of `ids` (its
// fields' ids, in the cross's order): 64-bit FNV-1a over the cross's number
// as 4 little-endian bytes, then each id as 8 little-endian bytes. The one
// hash that equals kNoSparseId becomes kNoSparseId - 1; kNoSparseId when
// one of the ids is kNoSparseId (an empty field).
uint64_t CrossId(int cross, std::span<const uint64_t> ids);

// An example's wide features: fields (with wide_fields) plus wide_cross_size().
int64_t WideSlots(const proto::SparseEmbeddingSpec& spec);

// The wide ids of `count` examples whose field ids are
// field_ids[count * spec.fields()]: WideSlots(spec) per example, its fields'
// own ids first (with wide_fields), then its crosses' in wide_cross order.
// REQUIRES: spec valid (ValidateSparseEmbeddingLayer), field_ids of that size.
std::vector<uint64_t> WideIds(const proto::SparseEmbeddingSpec& spec, const std::vector<uint64_t>& field_ids,
                              int64_t count);

}  // namespace tessera

#endif  // TESSERA_CORE_FEATURE_CROSS_H_
