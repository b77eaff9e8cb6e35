package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// The real databases the tests run on. SQLite always runs (an embedded
// file per test); PostgreSQL and MySQL/MariaDB run when their DSN is set,
// as .ci/run sets them:
//
//	EXPORT_TEST_POSTGRES_DSN="postgres://user@127.0.0.1:5432/db?sslmode=disable"
//	EXPORT_TEST_MYSQL_DSN="user:password@tcp(127.0.0.1:3306)/db"
//
// Each test works in a schema (PostgreSQL) or database (MySQL) of its own,
// created and dropped by the test, so the DSN's user needs the right to
// create them, and runs never see each other's tables.
const (
	postgresEnv = "EXPORT_TEST_POSTGRES_DSN"
	mysqlEnv    = "EXPORT_TEST_MYSQL_DSN"
)

// testDB is one database to run a test on.
type testDB struct {
	dialect sqlstore.Dialect
	db      *sql.DB
	schema  string // prefix for table names: "" or "schema."
	dsn     string // what db was opened with, for another pool on it
}

// databases lists the databases a test runs on, as subtest names. Those
// whose DSN is unset are still listed, and skip with the reason.
var databases = []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens a fresh, empty place to create tables in, or skips.
func openDB(t testing.TB, d sqlstore.Dialect) *testDB {
	t.Helper()
	switch d {
	case sqlstore.SQLite:
		return openSQLite(t, filepath.Join(t.TempDir(), "export.db"))
	case sqlstore.Postgres:
		return openServer(t, d, "pgx", postgresEnv, "PostgreSQL tests skipped: set %s to a DSN (postgres://user@host:port/db?sslmode=disable) whose user may create schemas; .ci/run does",
			"CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE")
	case sqlstore.MySQL:
		return openServer(t, d, "mysql", mysqlEnv, "MySQL/MariaDB tests skipped: set %s to a DSN (user:password@tcp(host:port)/db) whose user may create databases; .ci/run does",
			"CREATE DATABASE %s CHARACTER SET utf8mb4", "DROP DATABASE %s")
	}
	t.Fatalf("no test database for %v", d)
	return nil
}

// openServer connects to the server named by the environment variable
// env, or skips saying how to set it, and makes a schema (a database, in
// MySQL's words) that lives as long as the test.
func openServer(t testing.TB, d sqlstore.Dialect, driver, env, skip, create, drop string) *testDB {
	t.Helper()
	dsn := os.Getenv(env)
	if dsn == "" {
		t.Skipf(skip, env)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	schema := randomName("export_test_")
	mustExec(t, db, fmt.Sprintf(create, schema))
	t.Cleanup(func() { mustExec(t, db, fmt.Sprintf(drop, schema)) })
	return &testDB{dialect: d, db: db, schema: schema + ".", dsn: dsn}
}

// openSQLite opens the file in WAL mode, as an application serving
// concurrent requests from SQLite would: readers and the writer do not
// block each other, and the busy timeout queues writers.
func openSQLite(t testing.TB, path string) *testDB {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &testDB{dialect: sqlstore.SQLite, db: db, dsn: dsn}
}

func mustExec(t testing.TB, db *sql.DB, stmt string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(stmt), err)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// layout returns l with every table in the test's schema.
func (tdb *testDB) layout(l sqlstore.Layout) sqlstore.Layout {
	l.User.Table = tdb.schema + l.User.Table
	l.Agent.Table = tdb.schema + l.Agent.Table
	l.ScheduledTask.Table = tdb.schema + l.ScheduledTask.Table
	l.Workflow.Table = tdb.schema + l.Workflow.Table
	return l
}

// setup creates l's tables with sqlstore.CreateTables and returns the
// store and a writer for them.
func (tdb *testDB) setup(t testing.TB, l sqlstore.Layout, times sqlfixture.TimeForm) (*sqlstore.Store, *sqlfixture.Writer) {
	t.Helper()
	l = tdb.layout(l)
	if err := sqlstore.CreateTables(ctxFor(t), tdb.db, tdb.dialect, l); err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.New(tdb.db, tdb.dialect, sqlstore.WithLayout(l))
	if err != nil {
		t.Fatal(err)
	}
	return s, &sqlfixture.Writer{DB: tdb.db, Dialect: tdb.dialect, Layout: l, Times: times}
}
