// Which server holds a sparse table's row (issue 16): ids are spread over
// the servers by a hash of the id, not by ranges of keys, so that a table's
// hot ids (often small or sequential numbers) do not all land on one server.
// Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014) of the id's SplitMix64 finalizer: from
// N to N+1 servers only about 1/(N+1) of the ids move (all of them to the
// new server), which keeps a resume onto more servers cheap.
// Functions only: thread-safe.
#ifndef TESSERA_CORE_ID_PARTITION_H_
#define TESSERA_CORE_ID_PARTITION_H_

#include <cstdint>

namespace tessera {

// The server, in [0, servers), that holds row `id` of table `table` (the
// table is mixed in so that two tables' equal ids spread independently).
// REQUIRES: servers >= 1.
int ServerOfId(uint64_t table, uint64_t id, int servers);

}  // namespace tessera

#endif  // TESSERA_CORE_ID_PARTITION_H_
