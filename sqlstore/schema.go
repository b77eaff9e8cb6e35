package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Schema returns the statements that create the four tables of layout l
// in dialect d, if they do not exist, with the one index per section that
// makes the export's ordered read cheap:
//
//	(userId, createdAt, id)    -- PostgreSQL: id COLLATE "C"
//
// The export asks for one user's rows ordered by creation time then ID;
// with this index the database reads them in order, without sorting. The
// same statements are in the files of schema/ (schema/postgres-prisma.sql
// and so on), for a DBA's review or a migration tool.
//
// The types follow the application this library replaces: text IDs,
// timestamp(3) holding UTC (PostgreSQL), DATETIME(3) (MySQL), DATETIME
// holding ISO-8601 text or Unix milliseconds (SQLite). Apart from the
// columns the export reads, real tables have many more; these have none.
func Schema(d Dialect, l Layout) ([]string, error) {
	if !d.valid() {
		return nil, fmt.Errorf("sqlstore: unknown dialect %v", d)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	q := d.quote
	ty := ddlTypes(d)
	var stmts []string
	table := func(name string, cols [][2]string, foreign string, index string) {
		var b strings.Builder
		b.WriteString("CREATE TABLE IF NOT EXISTS " + q(name) + " (\n")
		for _, c := range cols {
			b.WriteString("  " + q(c[0]) + " " + c[1] + ",\n")
		}
		if foreign != "" {
			b.WriteString("  FOREIGN KEY (" + q(foreign) + ") REFERENCES " + q(l.User.Table) + " (" + q(l.User.ID) + ") ON DELETE CASCADE,\n")
		}
		if d == MySQL && index != "" {
			// MySQL has no CREATE INDEX IF NOT EXISTS; the index goes
			// into the table's definition.
			b.WriteString("  " + index + ",\n")
		}
		b.WriteString("  PRIMARY KEY (" + q(cols[0][0]) + ")\n)")
		if d == MySQL {
			b.WriteString(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
		}
		stmts = append(stmts, b.String())
		if d != MySQL && index != "" {
			stmts = append(stmts, index)
		}
	}
	index := func(tableName, userID, createdAt, id string) string {
		if d == MySQL {
			return "INDEX " + q(indexName(tableName, userID, createdAt, id)) + " (" + indexColumns(d, userID, createdAt, id) + ")"
		}
		return createIndex(d, tableName, userID, createdAt, id)
	}

	u, a, t, w := l.User, l.Agent, l.ScheduledTask, l.Workflow
	table(u.Table, [][2]string{
		{u.ID, ty.id + " NOT NULL"},
		{u.Email, ty.text},
		{u.Name, ty.text},
		// The application's plan is NOT NULL; the format allows null, so
		// these tables can hold every document.
		{u.Plan, ty.label + " DEFAULT 'free'"},
		{u.Role, ty.label + " NOT NULL DEFAULT 'user'"},
		{u.ReferralCode, ty.text},
		{u.ReferralCredits, "INTEGER NOT NULL DEFAULT 0"},
	}, "", "")
	table(a.Table, [][2]string{
		{a.ID, ty.id + " NOT NULL"},
		{a.UserID, ty.id + " NOT NULL"},
		{a.Name, ty.text + " NOT NULL"},
		{a.Model, ty.text},
		{a.Status, ty.label + " NOT NULL DEFAULT 'pending'"},
		{a.CreatedAt, ty.time + " NOT NULL DEFAULT " + ty.now},
		{a.UpdatedAt, ty.time + " NOT NULL"},
	}, a.UserID, index(a.Table, a.UserID, a.CreatedAt, a.ID))
	table(t.Table, [][2]string{
		{t.ID, ty.id + " NOT NULL"},
		{t.UserID, ty.id + " NOT NULL"},
		{t.Name, ty.text + " NOT NULL"},
		{t.CronSchedule, ty.text + " NOT NULL"},
		{t.Enabled, "BOOLEAN NOT NULL DEFAULT " + ty.true},
		{t.CreatedAt, ty.time + " NOT NULL DEFAULT " + ty.now},
	}, t.UserID, index(t.Table, t.UserID, t.CreatedAt, t.ID))
	table(w.Table, [][2]string{
		{w.ID, ty.id + " NOT NULL"},
		{w.UserID, ty.id + " NOT NULL"},
		{w.Name, ty.text + " NOT NULL"},
		{w.Enabled, "BOOLEAN NOT NULL DEFAULT " + ty.true},
		{w.CreatedAt, ty.time + " NOT NULL DEFAULT " + ty.now},
	}, w.UserID, index(w.Table, w.UserID, w.CreatedAt, w.ID))
	return stmts, nil
}

// columnTypes are a dialect's types: label is a short string with a
// default (MySQL refuses a literal default on TEXT).
type columnTypes struct{ id, text, label, time, now, true string }

func ddlTypes(d Dialect) columnTypes {
	switch d {
	case Postgres:
		return columnTypes{id: "TEXT", text: "TEXT", label: "TEXT", time: "TIMESTAMP(3)", now: "CURRENT_TIMESTAMP", true: "true"}
	case MySQL:
		// IDs compare as bytes: under a case-insensitive collation 'abc'
		// and 'ABC' are one key, and under every PAD SPACE collation
		// (utf8mb4_bin included) 'abc' and 'abc ' are.
		return columnTypes{id: "VARBINARY(255)", text: "TEXT", label: "VARCHAR(2048)",
			time: "DATETIME(3)", now: "CURRENT_TIMESTAMP(3)", true: "true"}
	default:
		// SQLite's CURRENT_TIMESTAMP is "YYYY-MM-DD HH:MM:SS" in UTC, one
		// of the text forms the store reads.
		return columnTypes{id: "TEXT", text: "TEXT", label: "TEXT", time: "DATETIME", now: "CURRENT_TIMESTAMP", true: "1"}
	}
}

// createIndex is the statement that creates the index a section's
// ordered read needs (PostgreSQL, SQLite; MySQL's goes into its table's
// definition).
func createIndex(d Dialect, table, userID, createdAt, id string) string {
	return "CREATE INDEX IF NOT EXISTS " + d.quote(indexName(table, userID, createdAt, id)) + " ON " + d.quote(table) +
		" (" + indexColumns(d, userID, createdAt, id) + ")"
}

func indexColumns(d Dialect, userID, createdAt, id string) string {
	last := d.quote(id)
	if d == Postgres {
		last = d.byteOrder(id)
	}
	return d.quote(userID) + ", " + d.quote(createdAt) + ", " + last
}

// indexName is <table>_<userId>_<createdAt>_<id>_idx, Prisma's naming,
// cut to the identifier limit.
func indexName(table, userID, createdAt, id string) string {
	if _, t, ok := strings.Cut(table, "."); ok {
		table = t
	}
	n := table + "_" + userID + "_" + createdAt + "_" + id + "_idx"
	if len(n) > maxIdent {
		n = n[:maxIdent]
	}
	return n
}

// CreateTables runs Schema's statements on db. It is for demos, tests
// and new applications: a host's existing tables are its own to manage,
// and the store never creates anything unless asked. Existing tables are
// left as they are (their indexes too: see the README for the index to
// add to an existing database).
func CreateTables(ctx context.Context, db *sql.DB, d Dialect, l Layout) error {
	if db == nil {
		return errors.New("sqlstore: nil *sql.DB")
	}
	stmts, err := Schema(d, l)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("sqlstore: creating tables: %w", err)
		}
	}
	return nil
}
