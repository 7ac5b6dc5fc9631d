#include "cloud-hub/hub_stores.hpp"

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "common/fs.hpp"
#include "common/log.hpp"
#ifdef FLOTILLA_HUB_PG
#include "cloud-hub/store_pg.hpp"
#endif

namespace flotilla::hub {
namespace {

// Moves a SQLite database with its WAL and shared-memory files (a stopped hub may leave
// committed transactions in the WAL).
Status rename_database(const std::string& from, const std::string& to) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string src = from + suffix;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    std::filesystem::rename(src, to + suffix, ec);
    if (ec)
      return Error("Failed to rename '" + src + "' to '" + to + suffix + "': " + ec.message());
  }
  return Ok();
}

// Shard numbers of the shard-NN.db files in `dir`.
std::set<uint32_t> shard_files(const std::string& dir) {
  std::set<uint32_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    unsigned n = 0;
    char tail[4] = {};
    if (std::sscanf(name.c_str(), "shard-%u.%3s", &n, tail) == 2 && std::string(tail) == "db" &&
        name == std::filesystem::path(shard_store_path("", n)).filename().string()) {
      out.insert(n);
    }
  }
  return out;
}

}  // namespace

std::string shard_store_path(const std::string& dir, uint32_t shard) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard-%02u.db", shard);
  return dir.empty() ? name : dir + "/" + name;
}

Expected<HubStores> open_hub_stores(const std::string& dir, uint32_t shards,
                                    const StoreOptions& options) {
  auto log = log::get("hub");
  const std::string control_path = dir + "/control.db";
  const std::string legacy_path = dir + "/hub.db";
  bool migrated = false;
  if (!fs::exists(control_path) && fs::exists(legacy_path)) {
    if (auto st = rename_database(legacy_path, control_path); !st) return st.error();
    migrated = true;
    log->warn("hub.db from before sharding became control.db; agents rebuild node state");
  }
  const bool had_control = fs::exists(control_path);
  const auto existing = shard_files(dir);
  if (!existing.empty() && *existing.rbegin() >= shards) {
    return Error("Failed to open the hub's data folder '" + dir + "': it holds " +
                 shard_store_path("", *existing.rbegin()) + ", made with more than --shards " +
                 std::to_string(shards) +
                 "; start with the shard count the agents use, or move the shard files away");
  }
  HubStores out;
  auto control = Store::open(control_path, options);
  if (!control) return control.error();
  out.control = std::move(*control);
  if (migrated) {
    // Node-scoped rows now live in the shards; these would only go stale.
    if (auto st = out.control->db().exec(
            "DELETE FROM nodes; DELETE FROM desired; DELETE FROM tombstones; "
            "DELETE FROM instances;");
        !st) {
      return st.error().WithContext("Failed to migrate '" + legacy_path + "'");
    }
  }
  for (uint32_t i = 0; i < shards; ++i) {
    const std::string path = shard_store_path(dir, i);
    const bool existed = existing.count(i) > 0;
    auto store = Store::open(path, options);
    if (!store) return store.error();
    out.shards.push_back(std::move(*store));
    if (had_control && !existed) out.rebuilt.insert(i);
  }
  if (!out.rebuilt.empty() && !migrated) {
    log->warn("{} of {} shard databases were missing and start empty: their nodes resync",
              out.rebuilt.size(), shards);
  }
  return out;
}

std::string shard_schema(uint32_t shard) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard_%02u", shard);
  return name;
}

Expected<HubStores> open_postgres_hub_stores(const std::string& conninfo, uint32_t shards,
                                             const StoreOptions& options) {
#ifdef FLOTILLA_HUB_PG
  auto log = log::get("hub");
  const std::string what = "Failed to open the hub's stores in PostgreSQL";
  auto schemas = db::postgres_store_schemas(conninfo);
  if (!schemas) return schemas.error().WithContext(what);
  const bool had_control = schemas->count("control") > 0;
  std::set<uint32_t> existing;
  for (const auto& name : *schemas) {
    unsigned n = 0;
    if (std::sscanf(name.c_str(), "shard_%u", &n) == 1 && name == shard_schema(n)) {
      existing.insert(n);
    }
  }
  if (!existing.empty() && *existing.rbegin() >= shards) {
    return Error(what + ": the database holds schema " + shard_schema(*existing.rbegin()) +
                 ", made with more than --shards " + std::to_string(shards) +
                 "; start with the shard count the agents use");
  }
  auto open = [&](const std::string& schema) -> Expected<std::unique_ptr<Store>> {
    auto conn = db::open_postgres(conninfo, schema);
    if (!conn) return conn.error().WithContext(what);
    return Store::open(std::move(*conn), options);
  };
  HubStores out;
  auto control = open("control");
  if (!control) return control.error();
  out.control = std::move(*control);
  for (uint32_t i = 0; i < shards; ++i) {
    auto store = open(shard_schema(i));
    if (!store) return store.error();
    out.shards.push_back(std::move(*store));
    if (had_control && existing.count(i) == 0) out.rebuilt.insert(i);
  }
  if (!out.rebuilt.empty()) {
    log->warn("{} of {} shard schemas were missing and start empty: their nodes resync",
              out.rebuilt.size(), shards);
  }
  log->info("stores in PostgreSQL schemas=control,shard_00..{} new={}", shard_schema(shards - 1),
            had_control ? "no" : "yes");
  return out;
#else
  (void)conninfo;
  (void)shards;
  (void)options;
  return Error(
      "Failed to open the hub's stores in PostgreSQL: this flotilla-hub was built "
      "without PostgreSQL (libpq)");
#endif
}

}  // namespace flotilla::hub
