// The hub's databases in its data folder: control.db (workloads, placements, fleet-wide events)
// and shard-NN.db for each shard (node-scoped state), as the Controller expects them.
//
// A data folder from before sharding (one hub.db) becomes the control database; its node-scoped
// rows are dropped, because the agents rebuild them (every shard then counts as rebuilt). A shard
// file that is missing while the control database already existed was lost: it is created empty
// and reported in `rebuilt`, so the controller waits for that shard's nodes to resync. A folder
// holding shard files of a different shard count is refused: agents and hub must agree on it.
//
// On PostgreSQL (--store) the same stores are schemas of one database: "control" and "shard_07";
// a shard schema missing while "control" exists was lost (dropped), and is rebuilt the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cloud-hub/store.hpp"
#include "common/expected.hpp"

namespace flotilla::hub {

struct HubStores {
  std::unique_ptr<Store> control;
  std::vector<std::unique_ptr<Store>> shards;  // by shard number
  std::set<uint32_t> rebuilt;                  // shards whose store was lost and opened empty
};

// The path of shard `shard`'s database in `dir`: DIR/shard-07.db.
std::string shard_store_path(const std::string& dir, uint32_t shard);
Expected<HubStores> open_hub_stores(const std::string& dir, uint32_t shards,
                                    const StoreOptions& options);
// The PostgreSQL schema of shard `shard`: shard_07.
std::string shard_schema(uint32_t shard);
// The stores in the PostgreSQL database of `conninfo` (a postgres:// URI or key=value pairs).
// An error in a build without PostgreSQL (cross builds).
Expected<HubStores> open_postgres_hub_stores(const std::string& conninfo, uint32_t shards,
                                             const StoreOptions& options);

}  // namespace flotilla::hub
