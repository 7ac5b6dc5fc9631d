// store::db over PostgreSQL (pg.hpp): the hub's stores in one database, each in a schema of its
// own ("control", "shard_07"), selected by search_path on the store's connection so that the
// same SQL serves SQLite and PostgreSQL.
//
// Statements are prepared once per connection (named s1, s2, ...) and reused; their `?`/`?N`
// placeholders become `$N`. BLOB parameters go in binary format; BYTEA results are decoded to
// their bytes. The schema version lives in the table flotilla_schema_version of each schema; schema
// creation and migrations take one advisory lock, so instances starting together do not race.
// A connection found broken outside a transaction is opened again (statements prepared anew);
// inside one, the transaction fails and rolls back.
//
// Thread-safety: a connection is used by one thread at a time (callers serialise).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "cloud-hub/store_db.hpp"
#include "common/expected.hpp"

namespace flotilla::hub::db {

// Connects to `conninfo` (a postgres:// URI or libpq key=value pairs) and creates `schema`
// ([a-z0-9_]) if it does not exist.
Expected<std::unique_ptr<Conn>> open_postgres(const std::string& conninfo,
                                              const std::string& schema);
// The store schemas in the database: "control" and "shard_NN" as far as they exist.
Expected<std::set<std::string>> postgres_store_schemas(const std::string& conninfo);
// `sql` with its `?` and `?N` placeholders as `$N` (quoted text left alone), and the number of
// parameters.
std::pair<std::string, int> to_dollar_params(const std::string& sql);

}  // namespace flotilla::hub::db
