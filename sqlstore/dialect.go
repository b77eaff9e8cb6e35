package sqlstore

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL database the store talks to. It decides quoting,
// placeholders, how the transaction is opened and how IDs are compared in
// byte order.
type Dialect int

// The supported dialects.
const (
	// Postgres is PostgreSQL (any driver: pgx's stdlib, lib/pq). The
	// transaction is REPEATABLE READ, READ ONLY: one snapshot, taken by
	// the first query. IDs are ordered with COLLATE "C", byte order
	// whatever the database's collation (ICU, en_US...).
	Postgres Dialect = iota + 1
	// SQLite (modernc.org/sqlite, mattn/go-sqlite3). The transaction is
	// deferred: SQLite pins its snapshot at the first read, and holds it
	// to the end, whatever other connections write (in WAL mode they go
	// on writing; in rollback-journal mode they wait). IDs are ordered
	// with COLLATE BINARY. Timestamps are read as stored, whatever the
	// column's declared type and the DSN's time options, and parsed
	// here: see the package doc.
	SQLite
	// MySQL is MySQL or MariaDB (go-sql-driver/mysql). The transaction is
	// REPEATABLE READ, READ ONLY: InnoDB takes one consistent snapshot at
	// the first read and keeps it to the end. IDs are ordered as binary
	// strings (CAST(id AS BINARY)), whatever the column's collation.
	MySQL
)

// String returns the dialect's name as ParseDialect reads it.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	case MySQL:
		return "mysql"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// ParseDialect reads a dialect name: "postgres" (or "postgresql", "pgx"),
// "sqlite" (or "sqlite3"), "mysql" (or "mariadb").
func ParseDialect(name string) (Dialect, error) {
	switch strings.ToLower(name) {
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	case "mysql", "mariadb":
		return MySQL, nil
	}
	return 0, fmt.Errorf("sqlstore: unknown dialect %q (known: postgres, sqlite, mysql)", name)
}

func (d Dialect) valid() bool { return d >= Postgres && d <= MySQL }

// quote quotes a name that validName accepted (so it holds no quote
// character to escape), part by part for schema-qualified tables.
//
// SQLite gets grave accents, which it accepts as MySQL does: a name in
// double quotes that matches no column is taken by SQLite for a string
// literal, so a misspelt column in a layout would silently read as a
// constant (and a misspelt user ID column would find no user) instead of
// failing.
func (d Dialect) quote(name string) string {
	q := `"`
	if d != Postgres {
		q = "`"
	}
	return q + strings.ReplaceAll(name, ".", q+"."+q) + q
}

// placeholder returns the n-th (1-based) bind parameter.
func (d Dialect) placeholder(n int) string {
	if d == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// txOptions are the options of the export's transaction.
//
// database/sql refuses options a driver cannot honour ("driver does not
// support read-only transactions") unless the driver implements
// ConnBeginTx, in which case the driver decides. pgx and lib/pq honour
// both options; go-sql-driver/mysql sends SET TRANSACTION ISOLATION LEVEL
// REPEATABLE READ and START TRANSACTION READ ONLY; modernc.org/sqlite
// answers ReadOnly with a plain (deferred) BEGIN even when the DSN asks
// for _txlock=immediate, which is what the export wants: an immediate
// transaction would take the write lock. Store.Check verifies on
// PostgreSQL that the options took effect.
func (d Dialect) txOptions() *sql.TxOptions {
	if d == SQLite {
		return &sql.TxOptions{ReadOnly: true}
	}
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

// byteOrder returns an ORDER BY term that compares the column in byte
// order, which is what Go's string comparison and the contract use.
func (d Dialect) byteOrder(col string) string {
	switch d {
	case Postgres:
		return d.quote(col) + ` COLLATE "C"`
	case SQLite:
		return d.quote(col) + " COLLATE BINARY"
	default:
		return "CAST(" + d.quote(col) + " AS BINARY)"
	}
}

// timestampColumn returns the select expression for a timestamp column.
// SQLite's is cast to BLOB (which SQLite does through text: integers
// become their digits) so that the driver hands over the stored bytes
// instead of parsing them with its own rules: with a DSN's _timezone,
// _texttotime or _inttotime, modernc.org/sqlite would read zone-less
// text in another zone, or integers below 1e12 as seconds. It also saves
// the driver's slower parse.
func (d Dialect) timestampColumn(col string) string {
	if d == SQLite {
		return "CAST(" + d.quote(col) + " AS BLOB)"
	}
	return d.quote(col)
}
