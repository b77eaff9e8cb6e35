// Package sqlfixture writes users and records into tables of an sqlstore
// layout, for tests, benchmarks and the demo's seed data. The library
// itself never writes; this is the other side, kept out of the public API.
package sqlfixture

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// TimeForm is how timestamps are written. Real applications keep one form
// per column; tests try each.
type TimeForm int

const (
	// ISOText writes what each dialect's own columns hold, at millisecond
	// precision: "2026-03-01 09:00:00.123+00:00" for PostgreSQL (the
	// explicit zone makes timestamptz columns right too; timestamp
	// columns ignore it), "2026-03-01 09:00:00.123" for MySQL, and
	// "2026-03-01T09:00:00.123456789Z" (fixed width, so text order is
	// time order) for SQLite.
	ISOText TimeForm = iota
	// UnixMillis writes integer Unix milliseconds (SQLite).
	UnixMillis
	// OffsetText writes "2026-03-01 11:00:00.123456+02:00": microseconds
	// and a fixed non-UTC offset (SQLite).
	OffsetText
	// GoString writes time.Time.String()'s form in UTC, which is what
	// modernc.org/sqlite stores for a time.Time by default (SQLite).
	GoString
)

// Writer implements storetest.Fixture over one layout's tables.
type Writer struct {
	DB      *sql.DB
	Dialect sqlstore.Dialect
	Layout  sqlstore.Layout
	Times   TimeForm
	// Extra holds more columns to write in every row of a table (table
	// name as in Layout, then column name): the columns of a real
	// application's tables that the export must never read.
	Extra map[string]map[string]any
	// Exec, when set, runs the Put writes instead of DB: a *sql.Tx, to
	// write many rows in one transaction.
	Exec interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}
}

// q quotes as sqlstore does: double quotes on PostgreSQL, grave accents
// elsewhere (SQLite takes a double-quoted unknown column for a string).
func (w *Writer) q(name string) string {
	if w.Dialect != sqlstore.Postgres {
		return "`" + strings.ReplaceAll(name, ".", "`.`") + "`"
	}
	return `"` + strings.ReplaceAll(name, ".", `"."`) + `"`
}

// upsert inserts a row or replaces the one with the same ID (cols[0]).
func (w *Writer) upsert(ctx context.Context, table string, cols []string, vals ...any) error {
	if extra := w.Extra[table]; len(extra) > 0 {
		cols = append([]string(nil), cols...)
		for _, c := range slices.Sorted(maps.Keys(extra)) {
			cols, vals = append(cols, c), append(vals, extra[c])
		}
	}
	quoted := make([]string, len(cols))
	marks := make([]string, len(cols))
	sets := make([]string, 0, len(cols)-1)
	for i, c := range cols {
		quoted[i] = w.q(c)
		marks[i] = "?"
		if w.Dialect == sqlstore.Postgres {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		if i > 0 {
			if w.Dialect == sqlstore.MySQL {
				sets = append(sets, quoted[i]+" = VALUES("+quoted[i]+")")
			} else {
				sets = append(sets, quoted[i]+" = excluded."+quoted[i])
			}
		}
	}
	stmt := "INSERT INTO " + w.q(table) + " (" + strings.Join(quoted, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	if w.Dialect == sqlstore.MySQL {
		stmt += " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
	} else {
		stmt += " ON CONFLICT (" + quoted[0] + ") DO UPDATE SET " + strings.Join(sets, ", ")
	}
	var err error
	if w.Exec != nil {
		_, err = w.Exec.ExecContext(ctx, stmt, vals...)
	} else {
		_, err = w.DB.ExecContext(ctx, stmt, vals...)
	}
	return err
}

func null(s export.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

// Time returns t as the writer stores it.
func (w *Writer) Time(t time.Time) any {
	t = t.UTC()
	switch w.Dialect {
	case sqlstore.Postgres:
		return t.Truncate(time.Millisecond).Format("2006-01-02 15:04:05.000-07:00")
	case sqlstore.MySQL:
		return t.Truncate(time.Millisecond).Format("2006-01-02 15:04:05.000")
	}
	switch w.Times {
	case UnixMillis:
		return t.UnixMilli()
	case OffsetText:
		return t.In(time.FixedZone("", 2*3600)).Format("2006-01-02 15:04:05.000000-07:00")
	case GoString:
		return t.String()
	}
	return t.Format("2006-01-02T15:04:05.000000000Z")
}

// Precision is the finest time step the writer keeps.
func (w *Writer) Precision() time.Duration {
	switch {
	case w.Dialect != sqlstore.SQLite, w.Times == UnixMillis:
		return time.Millisecond
	case w.Times == OffsetText:
		return time.Microsecond
	}
	return time.Nanosecond
}

func (w *Writer) PutUser(ctx context.Context, u export.User) error {
	c := w.Layout.User
	return w.upsert(ctx, c.Table, []string{c.ID, c.Email, c.Name, c.Plan, c.Role, c.ReferralCode, c.ReferralCredits},
		u.ID, u.Email, null(u.Name), null(u.Plan), u.Role, null(u.ReferralCode), u.ReferralCredits)
}

// DeleteUser deletes the user and their records in one transaction,
// without relying on the foreign keys' cascade (SQLite enforces it only
// when a connection asks).
func (w *Writer) DeleteUser(ctx context.Context, userID string) error {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	l := w.Layout
	for _, tc := range [][2]string{
		{l.Agent.Table, l.Agent.UserID}, {l.ScheduledTask.Table, l.ScheduledTask.UserID},
		{l.Workflow.Table, l.Workflow.UserID}, {l.User.Table, l.User.ID},
	} {
		mark := "?"
		if w.Dialect == sqlstore.Postgres {
			mark = "$1"
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+w.q(tc[0])+" WHERE "+w.q(tc[1])+" = "+mark, userID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (w *Writer) PutAgent(ctx context.Context, userID string, a export.Agent) error {
	c := w.Layout.Agent
	return w.upsert(ctx, c.Table, []string{c.ID, c.UserID, c.Name, c.Model, c.Status, c.CreatedAt, c.UpdatedAt},
		a.ID, userID, a.Name, a.Model, a.Status, w.Time(a.CreatedAt), w.Time(a.UpdatedAt))
}

func (w *Writer) PutScheduledTask(ctx context.Context, userID string, t export.ScheduledTask) error {
	c := w.Layout.ScheduledTask
	return w.upsert(ctx, c.Table, []string{c.ID, c.UserID, c.Name, c.CronSchedule, c.Enabled, c.CreatedAt},
		t.ID, userID, t.Name, t.CronSchedule, t.Enabled, w.Time(t.CreatedAt))
}

func (w *Writer) PutWorkflow(ctx context.Context, userID string, wf export.Workflow) error {
	c := w.Layout.Workflow
	return w.upsert(ctx, c.Table, []string{c.ID, c.UserID, c.Name, c.Enabled, c.CreatedAt},
		wf.ID, userID, wf.Name, wf.Enabled, w.Time(wf.CreatedAt))
}

// PutDocument writes a whole document's user and records.
func (w *Writer) PutDocument(ctx context.Context, d *export.Document) error {
	if err := w.PutUser(ctx, d.User); err != nil {
		return err
	}
	for _, a := range d.Agents {
		if err := w.PutAgent(ctx, d.User.ID, a); err != nil {
			return err
		}
	}
	for _, t := range d.ScheduledTasks {
		if err := w.PutScheduledTask(ctx, d.User.ID, t); err != nil {
			return err
		}
	}
	for _, wf := range d.Workflows {
		if err := w.PutWorkflow(ctx, d.User.ID, wf); err != nil {
			return err
		}
	}
	return nil
}

// UserIDs returns up to limit user IDs in byte order, for a demo's
// sign-in page.
func (w *Writer) UserIDs(ctx context.Context, limit int) ([]string, error) {
	id := w.q(w.Layout.User.ID)
	order := id
	switch w.Dialect {
	case sqlstore.Postgres:
		order += ` COLLATE "C"`
	case sqlstore.MySQL:
		order = "CAST(" + id + " AS BINARY)"
	}
	rows, err := w.DB.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT %d", id, w.q(w.Layout.User.Table), order, limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		ids = append(ids, s)
	}
	return ids, rows.Err()
}
