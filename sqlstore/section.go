package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/agentbot/export"
)

// ErrSectionQuery is returned (wrapped) when a section's query does not
// take exactly one parameter, the user's ID: a query that binds no
// parameter reads every user's rows.
var ErrSectionQuery = errors.New("sqlstore: a section's query must take the user's ID as its one parameter")

// Section returns a section of the host's own (see export.Section) read
// by query inside the export's transaction, so it sees the same snapshot
// as the built-in sections. Register it with the exporter:
//
//	exp := export.NewExporter(store)
//	err := exp.AddSection(sqlstore.Section("notifications",
//		`SELECT id, title, "readAt", "createdAt" FROM "Notification"
//		 WHERE "userId" = $1 ORDER BY "createdAt", id COLLATE "C"`))
//
// query takes the user's ID as its one argument ($1 on PostgreSQL, ?
// elsewhere) and selects only that user's rows, in the order to write
// them; each row becomes one object whose keys are the column names (use
// AS to name them) and whose values are the driver's: text, numbers,
// booleans, NULL and timestamps (time.Time, written in the format's
// form; select a timestamp stored as text or a number in the form it
// should have). On MySQL, make the owner comparison exact, as the
// built-in queries are: with a VARBINARY owner column (as this package's
// DDL declares IDs) "col = ?" is exact; with a text column, compare
// CAST(col AS BINARY) = CAST(? AS BINARY), or a look-alike ID ("Alice",
// "alice ") would match.
//
// The first export that reads the section asks the database how many
// parameters the prepared query takes, and fails (with ErrSectionQuery,
// before reading a row) unless it is exactly one: a query that does not
// bind the user's ID would export every user's rows. PostgreSQL and MySQL
// report the count when the driver prepares the statement; on SQLite,
// whose driver may not, it is the highest parameter the compiled
// statement reads (EXPLAIN), so a parameter the planner finds it never
// needs (WHERE 1 OR "userId" = ?) counts as none. The check proves that
// the query binds the ID, not that it selects by it: a query that binds
// it and still reads other users' rows (WHERE ? IS NOT NULL, a join to another
// user's data) is the host's to get right; storetest's OwnedSection
// checks it on test data.
//
// Select only the columns the user should receive: whatever the query
// returns is exported.
func Section(name, query string) export.Section {
	op := "reading " + name
	var checked atomic.Bool // the query takes one parameter; asked once
	return export.Section{Name: name, Read: func(ctx context.Context, tx export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			v, ok := export.AsTx[*view](tx)
			if !ok {
				yield(nil, &Error{Op: op, Err: fmt.Errorf("section read from a %T, not an sqlstore Tx", tx)})
				return
			}
			if !checked.Load() {
				if err := v.checkSectionQuery(ctx, query); err != nil {
					yield(nil, &Error{Op: op, Err: err})
					return
				}
				checked.Store(true)
			}
			if err := v.allowSorts(ctx); err != nil {
				yield(nil, &Error{Op: op, Err: err})
				return
			}
			err := v.each(ctx, query, v.args[:1], nil, func(r *driverRows) bool {
				return yield(record(r.columns(), r.values()), nil)
			})
			if err != nil {
				yield(nil, &Error{Op: op, Err: err})
			}
		}
	}}
}

// checkSectionQuery fails unless query takes exactly one parameter.
func (v *view) checkSectionQuery(ctx context.Context, query string) error {
	n, err := v.paramCount(ctx, query)
	if err != nil {
		return fmt.Errorf("counting the query's parameters: %w", err)
	}
	const must = "the query must take the user's ID as its one parameter"
	switch {
	case n == 0:
		return sectionQueryError(fmt.Sprintf("%s, and this one takes none, so it would export every user's rows: select them with WHERE <owner column> = %s", must, v.s.dialect.placeholder(1)))
	case n > 1:
		return sectionQueryError(fmt.Sprintf("%s, and this one takes %d (to compare the ID twice, use $1 again on PostgreSQL, ?1 on SQLite, or join (SELECT ? AS id) on MySQL)", must, n))
	}
	return nil
}

// sectionQueryError is ErrSectionQuery with the query's count, without
// the sentinel's package prefix (Error's own says "sqlstore:").
type sectionQueryError string

func (e sectionQueryError) Error() string { return string(e) }

// Is reports that e is ErrSectionQuery.
func (e sectionQueryError) Is(target error) bool { return target == ErrSectionQuery }

// paramCount returns how many parameters query takes: what the driver's
// prepared statement says, or where it does not say (modernc.org/sqlite
// answers -1), what the database does.
func (v *view) paramCount(ctx context.Context, query string) (int, error) {
	if !ignoreNumInput {
		stmt, err := v.c.prepare(ctx, query)
		if err != nil {
			return 0, err
		}
		n := stmt.NumInput()
		if err := stmt.Close(); err != nil {
			return 0, err
		}
		if n >= 0 {
			return n, nil
		}
	}
	switch v.s.dialect {
	case SQLite:
		return v.sqliteParamCount(ctx, query)
	case Postgres:
		return v.postgresParamCount(ctx, query)
	}
	return 0, fmt.Errorf("the driver (%T) does not say how many parameters a statement takes", v.c.ci)
}

// sqliteParamCount reads the compiled statement (EXPLAIN): each
// parameter the statement reads is a Variable instruction whose P1 is the
// parameter's number, and the count is the highest of them, as
// sqlite3_bind_parameter_count's is.
func (v *view) sqliteParamCount(ctx context.Context, query string) (int, error) {
	// EXPLAIN only compiles the query, but the driver binds a value to
	// every parameter first: enough NULLs for any plausible query.
	n, args := 0, make([]any, 64)
	err := v.each(ctx, "EXPLAIN "+query, args, nil, func(r *driverRows) bool {
		// The columns: addr, opcode, p1, p2, p3, p4, p5, comment.
		if r.width() < 3 {
			return false
		}
		var op text
		var p1 sql.NullInt64
		if op.Scan(r.value(1)) == nil && op == "Variable" && p1.Scan(r.value(2)) == nil && int(p1.Int64) > n {
			n = int(p1.Int64)
		}
		return true
	})
	return n, err
}

// checks numbers the statements postgresParamCount prepares: a session's
// prepared statements outlive a transaction rolled back before DEALLOCATE.
var checks atomic.Int64

// postgresParamCount prepares the query as a named statement and reads
// its parameter types from pg_prepared_statements.
func (v *view) postgresParamCount(ctx context.Context, query string) (int, error) {
	name := fmt.Sprintf("export_section_check_%d", checks.Add(1))
	if err := v.each(ctx, "PREPARE "+name+" AS "+query, nil, nil, func(*driverRows) bool { return true }); err != nil {
		return 0, err
	}
	var n sql.NullInt64
	err := v.each(ctx, "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1", []any{name},
		[]sql.Scanner{&n}, func(*driverRows) bool { return false })
	if derr := v.each(ctx, "DEALLOCATE "+name, nil, nil, func(*driverRows) bool { return true }); err == nil {
		err = derr
	}
	if err == nil && !n.Valid {
		err = errors.New("the prepared statement is not in pg_prepared_statements")
	}
	return int(n.Int64), err
}

// ignoreNumInput is for tests: count parameters as for a driver whose
// statements do not report it.
var ignoreNumInput bool

// prepare prepares query on the connection, inside its transaction.
func (c *dconn) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.ci.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.ci.Prepare(query)
}

// record copies one row into a Record: the driver may reuse its values'
// memory for the next row.
func record(cols []string, vals []driver.Value) export.Record {
	rec := make(export.Record, len(cols))
	for i, c := range cols {
		v := vals[i]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		rec[i] = export.Field{Key: c, Value: v}
	}
	return rec
}
