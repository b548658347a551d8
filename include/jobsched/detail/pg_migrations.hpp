// SPDX-License-Identifier: MIT
#pragma once

// The PostgreSQL store's schema: created or upgraded in one transaction, under an advisory
// lock on the schema's name, so that of many processes opening it at once exactly one
// migrates and the rest see the result.

#include <libpq-fe.h>

#include <string>

#include "../error.hpp"
#include "pg.hpp"
#include "pg_sql.hpp"
#include "validate.hpp"

namespace jobsched::detail::pg {

// Refuses a schema name that is not a plain identifier (so it needs no escaping anywhere).
inline void check_schema_name(const std::string& schema) {
  bool plain = !schema.empty() && schema.size() <= 63 && !(schema[0] >= '0' && schema[0] <= '9');
  for (const char c : schema) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_');
  }
  if (!plain) {
    throw_invalid("PgOptions::schema must be 1 to 63 letters, digits and '_', not starting "
                  "with a digit; got '" + schema + "'");
  }
}

// What opening found: the version before (0 for a new schema) and after.
struct SchemaVersions {
  int before = 0;
  int after = 0;
};

// Brings `schema` to pg_sql::schema_version. SchemaError, changing nothing, for a version
// newer than this build knows.
inline SchemaVersions migrate(PGconn* connection, const std::string& schema) {
  const std::string quoted_schema = quoted(schema);
  const auto sql = [&](const char* text) {
    return pg_sql::in_schema(text, quoted_schema, schema);
  };
  Transaction transaction(connection);
  Params name;
  name.add_text(schema);
  run(connection, pg_sql::lock_migrations, name);
  // Created only when missing, rather than IF NOT EXISTS: that sends a NOTICE, which libpq
  // prints on the host's stderr (and a setting to silence it would change the host's
  // transaction).
  SchemaVersions versions;
  if (run(connection, pg_sql::version_table_exists, name).int64(0, 0) == 0) {
    run_script(connection, sql(pg_sql::version_table));
  } else {
    const Rows found = run(connection, sql(pg_sql::select_version));
    versions.before = found.empty() ? 0 : static_cast<int>(found.int64(0, 0));
  }
  if (versions.before > pg_sql::schema_version) {
    throw SchemaError(std::string(message_prefix) + "the PostgreSQL schema '" + schema +
                          "' has jobsched schema version " + std::to_string(versions.before) +
                          ", newer than this build knows (" +
                          std::to_string(pg_sql::schema_version) + "); nothing was changed",
                      SQLITE_ERROR, SQLITE_ERROR);
  }
  if (versions.before < 1)
    run_script(connection, sql(pg_sql::migration_1));
  versions.after = pg_sql::schema_version;
  if (versions.before != versions.after) {
    Params version;
    version.add(versions.after);
    run(connection, sql(pg_sql::insert_version), version);
  }
  transaction.commit();
  return versions;
}

}  // namespace jobsched::detail::pg
