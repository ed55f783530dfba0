// How much memory this process has held at most: its peak resident set size
// ("high water mark"), which Linux keeps as VmHWM in /proc/self/status. A
// worker sends it with each PHASE_DONE, so summary.json can say how large
// the workers grew (worker_peak_rss_bytes).
#ifndef TESSERA_CORE_PROCESS_MEMORY_H_
#define TESSERA_CORE_PROCESS_MEMORY_H_

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace tessera {

// The bytes of the "VmHWM:  <n> kB" line of a /proc/<pid>/status text.
// NotFound when no line starts with "VmHWM:", DataLoss when its value is not
// "<digits> kB".
StatusOr<uint64_t> ParsePeakResidentBytes(std::string_view proc_status);

// This process's peak resident set size, from /proc/self/status. NotFound
// where there is no such file (not Linux) or it has no VmHWM line.
StatusOr<uint64_t> PeakResidentBytes();

}  // namespace tessera

#endif  // TESSERA_CORE_PROCESS_MEMORY_H_
