// Package sqlstore is an export.Store over the host application's own SQL
// tables, through database/sql: PostgreSQL, SQLite, MySQL or MariaDB.
//
// It takes the host's *sql.DB (never a DSN), imports no driver, never
// writes, and creates nothing unless asked (CreateTables, for demos and
// new applications). The host keeps its driver:
//
//	db, _ := sql.Open("pgx", dsn)                     // the host's pool
//	store, err := sqlstore.New(db, sqlstore.Postgres) // the application's (Prisma) tables
//	handler := export.NewHandler(export.NewExporter(store), currentUserID)
//
// # Tables
//
// A Layout names the four tables and the columns the export reads; only
// those are selected, so nothing else a row carries (configuration, key
// hashes, tokens) is ever read. PrismaLayout, the default, is the layout
// of the application this library replaces ("User", "Agent"... with
// camelCase columns); SnakeCaseLayout is the usual hand-written one; any
// other is a Layout of the host's, validated by New so that no configured
// name can inject SQL. All SQL text is built once, in New.
//
// # One point in time
//
// Each export is one read-only transaction. The user's row is read first,
// and every section comes from the snapshot that read pinned, whatever is
// written meanwhile:
//
//   - PostgreSQL: REPEATABLE READ, READ ONLY.
//   - MySQL/MariaDB: REPEATABLE READ, READ ONLY; InnoDB's consistent
//     snapshot is taken by the first read (the effect of START TRANSACTION
//     WITH CONSISTENT SNAPSHOT, one statement later).
//   - SQLite: a deferred transaction, whose snapshot is pinned by its
//     first read. What that costs depends on the file's journal mode, a
//     property of the file that the store never changes:
//     in WAL mode the reader sees the database as of that read while
//     writers go on committing; the WAL cannot be checkpointed past the
//     reader's snapshot, so it grows while a long export runs. In the
//     rollback-journal modes (DELETE, the default, TRUNCATE, PERSIST,
//     MEMORY) the reader holds a shared lock until it ends, so nothing
//     can change under it: a writer waits for the export (its busy
//     timeout) or fails with SQLITE_BUSY. Use WAL for a busy application.
//     A file replaced while the store serves it (renamed over, restored
//     from a backup) is not followed: the pool's open connections go on
//     reading the old file, new ones open the new one, so exports come
//     from either, and a WAL file left beside them belongs to one only.
//     Restart the process after replacing the file.
//
// The options reach the driver as database/sql would pass them
// (driver.ConnBeginTx); a driver without it fails the export. A driver
// could still ignore them silently, so Store.Check verifies on PostgreSQL
// that the transaction really is REPEATABLE READ and READ ONLY. Call Check
// at startup: it also proves every table and column of the layout exists,
// and returns warnings worth logging (a missing index).
//
// # Speed
//
// The pool lends a connection (sql.Conn.Raw) and the transaction, queries
// and rows are its driver's: database/sql's per-row locking, copying and
// conversion cost more than everything the export does with a row, for
// the same values read by the same Scanners. The connection is reported
// bad, and discarded by the pool, if its transaction cannot be shown to
// have ended.
//
// # Lost connections
//
// A server restart kills every pooled connection, and a driver need not
// notice before it uses one: the first export after a PostgreSQL restart
// failed at BEGIN (FATAL 57P01). When the transaction could not begin
// because its connection was lost, the store drops that connection and
// begins once more on one that answers a ping; never once the
// transaction has begun. A lost connection is driver.ErrBadConn, an error
// with an SQLState() of class 08 or 57P01-57P03 (pgx, lib/pq), an
// unexpected EOF or reset socket, or a connection that reports itself
// invalid after the failure (driver.Validator: go-sql-driver/mysql's
// "invalid connection"); retry.go has the details.
//
// Each section is read by one execution of one query, whatever the data
// holds. On SQLite that query selects one column per row instead of one
// per field (the driver's cost is per column):
//
//	concat_ws(char(0), rowid, ifnull(id, ''), ifnull(name, ''), ...)
//
// split here at the NULs. It is used only where it gives
// exactly the per-column values (SQLite 3.44 or later, a UTF-8 database,
// an ordinary table with a rowid whose text columns have TEXT affinity:
// checked once per schema version), and a row that does not split
// cleanly (a NUL inside a value, a flag or timestamp that is not what it
// should be) is read again on its own, per column, by its rowid, in the
// same transaction; packed.go has the reasoning.
//
// On PostgreSQL through pgx's database/sql driver, the option of package
// sqlstore/pgxrows reads the rows through pgx itself: database/sql's
// driver interface puts every string and time.Time of every row in an
// interface, an allocation each. See RowReader.
//
// Check warns (Warning, with the CREATE INDEX to run) when no index
// serves a section's ordered read on PostgreSQL or SQLite: the database
// then sorts all of a user's rows before it hands over the first.
//
// # Order, nulls and time
//
// A View holds one connection of the pool until it returns. Its sections
// are read one after another (as the exporter does): a section started
// while another's rows are still open fails with an error, rather than
// interleave two result sets on one connection (which MySQL cannot do).
//
// Each section is ordered in SQL by creation time, then ID in byte order
// whatever the column's collation: COLLATE "C" on PostgreSQL (production
// databases often default to ICU or en_US, which would put "a" before
// "B"), COLLATE BINARY on SQLite, CAST(id AS BINARY) on MySQL. Rows
// stream from the database into the encoder, one at a time. ID columns
// are text, as in the application (PostgreSQL refuses a collation on a
// uuid column).
//
// The index that makes this read cheap is, per section table:
//
//	CREATE INDEX ON "Agent" ("userId", "createdAt", "id" COLLATE "C");  -- PostgreSQL
//	CREATE INDEX ON agents (user_id, created_at, id);                   -- SQLite, MySQL
//
// With it PostgreSQL and SQLite walk one user's rows in export order,
// without a sort. MySQL finds the user's rows by it, then sorts them (its
// byte-order comparison of IDs is an expression no index holds).
// Schema returns the full DDL of each dialect and preset, and the files
// of schema/ hold it for review.
//
// NULL in a column the format calls a string exports as "" (the User
// fields that the format allows to be null stay null). A NULL timestamp
// fails the export rather than invent an instant.
//
// Timestamps are read from whatever the driver hands over: time.Time
// (PostgreSQL timestamp(3) holding UTC and timestamptz; MySQL DATETIME
// with parseTime=true), text (MySQL without parseTime) or, on SQLite, the
// bytes stored: ISO-8601 text with or without 'T', fraction and zone
// (text without a zone is UTC), Go's time.Time.String form, or integer
// Unix milliseconds. A real database keeps one form per column, which
// keeps the SQL order chronological. (A UTF-16 SQLite database hands over
// text timestamps in UTF-16, which this store does not read: it fails
// the export rather than guess.)
//
// IDs are compared exactly: under MySQL's usual collations 'abc' = 'ABC'
// and 'abc' = 'abc ', so the MySQL query adds a binary comparison of the
// owner's ID, and one user can never be handed another's rows.
//
// # Errors
//
// Failures are *Error values naming the step (OpBegin, OpAgents,
// OpCommit...) and wrapping the driver's error, which stays out of what
// clients see: export.Handler names only the stage ("could not read
// agents").
package sqlstore
