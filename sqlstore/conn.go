package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// A View reads through the pooled connection's driver directly, not
// through database/sql's Tx and Rows: the pool (sql.DB) lends the
// connection with sql.Conn.Raw, and the transaction, the queries and the
// rows are the driver's. Per row, database/sql takes two locks, copies
// the row and converts every value into its destination; for a large
// account pprof put that at a fifth of the export, more than everything
// the export does with the row afterwards. Nothing else changes: the same
// transaction options, the same values from the driver, read by the same
// Scanners database/sql would have called.
//
// The connection is the driver's only inside the function given to Raw,
// so the whole transaction runs there: begun, read, and committed or
// rolled back before Raw returns. database/sql holds the connection's lock
// meanwhile and knows nothing of the transaction; if it cannot be rolled
// back, the connection is reported bad so that the pool discards it
// rather than lend it out mid-transaction.

// dconn is a connection lent by the pool, used through its driver.
type dconn struct {
	ci     driver.Conn
	tx     driver.Tx
	reader RowReader // the store's, or nil
}

// withTx runs fn in a read-only transaction on a connection from the pool,
// opened with opts. If fn returns nil it commits (or, if commit is false,
// rolls back: a check has nothing to vouch for); otherwise, and when fn
// panics, it rolls back. Errors come back as fn returned them, or as
// *Error with OpBegin or OpCommit.
//
// If the transaction could not begin because the connection was lost
// (see retry.go), it is tried once more, on a connection that answers;
// never once fn has run.
func withTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, commit bool, fn func(*dconn) error) error {
	err, lost := tryTx(ctx, db, opts, commit, fn, false)
	if lost && ctx.Err() == nil {
		err, _ = tryTx(ctx, db, opts, commit, fn, true)
	}
	return err
}

// tryTx is one attempt of withTx, on a connection the pool lends (live:
// one that answered a ping). lost reports that the transaction did not
// begin because the connection was lost.
func tryTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, commit bool, fn func(*dconn) error, live bool) (result error, lost bool) {
	var conn *sql.Conn
	var err error
	if live {
		conn, err = liveConn(ctx, db)
	} else {
		conn, err = db.Conn(ctx)
	}
	if err != nil {
		return &Error{Op: OpBegin, Err: err}, false
	}
	defer conn.Close() // back to the pool, or closed if it was reported bad
	rawErr := conn.Raw(func(ci any) error {
		c := &dconn{}
		var ok bool
		if c.ci, ok = ci.(driver.Conn); !ok {
			result = &Error{Op: OpBegin, Err: fmt.Errorf("database/sql lent a %T, not a driver.Conn", ci)}
			return nil
		}
		if err := c.begin(ctx, opts); err != nil {
			result = &Error{Op: OpBegin, Err: err}
			if lostConnection(c.ci, err) {
				lost = true
				return driver.ErrBadConn // the pool drops it
			}
			return badConn(err)
		}
		ended := false
		defer func() {
			if !ended { // fn panicked: roll back before the panic goes on
				c.tx.Rollback()
			}
		}()
		result = fn(c)
		ended = true
		if result != nil || !commit {
			if err := c.tx.Rollback(); err != nil {
				// The transaction may still be open: the pool must not
				// lend this connection again. result stays fn's error,
				// the one to report.
				return driver.ErrBadConn
			}
			return badConn(result)
		}
		if err := c.tx.Commit(); err != nil {
			result = &Error{Op: OpCommit, Err: err}
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				result = &Error{Op: OpCommit, Err: fmt.Errorf("%w: %w", ctxErr, err)}
			}
			return driver.ErrBadConn
		}
		return nil
	})
	if result == nil && rawErr != nil {
		result = &Error{Op: OpBegin, Err: rawErr}
	}
	return result, lost
}

// badConn passes on driver.ErrBadConn, so that database/sql discards the
// connection, and nothing else: Raw's error is only for that.
func badConn(err error) error {
	if errors.Is(err, driver.ErrBadConn) {
		return driver.ErrBadConn
	}
	return nil
}

// begin starts the transaction as database/sql's BeginTx does: through
// ConnBeginTx, the only way to ask a driver for options.
func (c *dconn) begin(ctx context.Context, opts *sql.TxOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, ok := c.ci.(driver.ConnBeginTx)
	if !ok {
		return errors.New("the driver cannot begin a transaction with options (no driver.ConnBeginTx)")
	}
	tx, err := b.BeginTx(ctx, driver.TxOptions{Isolation: driver.IsolationLevel(opts.Isolation), ReadOnly: opts.ReadOnly})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		tx.Rollback()
		return err
	}
	c.tx = tx
	return nil
}

// args converts the query's arguments as database/sql would: the
// driver's own check if it has one, otherwise (or if it skips) the
// default conversion (an int becomes an int64).
func (c *dconn) args(values []any) ([]driver.NamedValue, error) {
	nvs := make([]driver.NamedValue, len(values))
	checker, _ := c.ci.(driver.NamedValueChecker)
	for i, v := range values {
		nv := driver.NamedValue{Ordinal: i + 1, Value: v}
		err := driver.ErrSkip
		if checker != nil {
			err = checker.CheckNamedValue(&nv)
		}
		if errors.Is(err, driver.ErrSkip) {
			nv.Value, err = driver.DefaultParameterConverter.ConvertValue(v)
		}
		if err != nil {
			return nil, err
		}
		nvs[i] = nv
	}
	return nvs, nil
}

// query runs a query: directly when the driver can, otherwise (it says
// driver.ErrSkip, as go-sql-driver/mysql does for arguments unless it
// interpolates them) as a prepared statement, closed with the rows.
func (c *dconn) query(ctx context.Context, query string, args []any) (*driverRows, error) {
	if c.reader != nil {
		rows, ok, err := c.reader.Query(ctx, c.ci, query, args)
		if err != nil {
			return nil, err
		}
		if ok {
			return &driverRows{fast: rows}, nil
		}
	}
	nvs, err := c.args(args)
	if err != nil {
		return nil, err
	}
	if q, ok := c.ci.(driver.QueryerContext); ok {
		rows, err := q.QueryContext(ctx, query, nvs)
		if !errors.Is(err, driver.ErrSkip) {
			if err != nil {
				return nil, err
			}
			return &driverRows{rows: rows}, nil
		}
	}
	var stmt driver.Stmt
	if p, ok := c.ci.(driver.ConnPrepareContext); ok {
		stmt, err = p.PrepareContext(ctx, query)
	} else {
		stmt, err = c.ci.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if sq, ok := stmt.(driver.StmtQueryContext); ok {
		rows, err = sq.QueryContext(ctx, nvs)
	} else {
		vals := make([]driver.Value, len(nvs))
		for i, nv := range nvs {
			vals[i] = nv.Value
		}
		rows, err = stmt.Query(vals) //nolint:staticcheck // for drivers without StmtQueryContext
	}
	if err != nil {
		stmt.Close()
		return nil, err
	}
	return &driverRows{rows: rows, stmt: stmt}, nil
}

// driverRows reads a driver's rows, or a RowReader's, into Scanners.
type driverRows struct {
	rows driver.Rows
	stmt driver.Stmt // closed with the rows, if the query prepared one
	vals []driver.Value

	fast  Rows // a RowReader's rows, in place of rows
	fvals []Value
}

// value returns column i of the row last read.
func (r *driverRows) value(i int) driver.Value {
	if r.fast != nil {
		return r.fvals[i].DriverValue()
	}
	return r.vals[i]
}

// columns returns the names of the columns.
func (r *driverRows) columns() []string {
	if r.fast != nil {
		return r.fast.Columns()
	}
	return r.rows.Columns()
}

// values returns the row last read as driver.Values.
func (r *driverRows) values() []driver.Value {
	if r.fast == nil {
		return r.vals
	}
	vals := make([]driver.Value, len(r.fvals))
	for i := range r.fvals {
		vals[i] = r.fvals[i].DriverValue()
	}
	return vals
}

// width returns the number of columns of the row last read.
func (r *driverRows) width() int {
	if r.fast != nil {
		return len(r.fvals)
	}
	return len(r.vals)
}

// next reads the next row into dest, one Scanner per column (nil reads
// and keeps nothing), and reports false at the end of the rows. The
// driver's values (which it may reuse for the next row) are handed to the
// Scanners, which copy what they keep.
func (r *driverRows) next(dest []sql.Scanner) (bool, error) {
	if r.fast != nil {
		return r.nextFast(dest)
	}
	if r.vals == nil {
		n := len(r.rows.Columns())
		if dest != nil && n != len(dest) {
			return false, fmt.Errorf("the query returned %d columns, want %d", n, len(dest))
		}
		r.vals = make([]driver.Value, n)
	}
	if err := r.rows.Next(r.vals); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, err
	}
	for i, s := range dest {
		if err := s.Scan(r.vals[i]); err != nil {
			return false, fmt.Errorf("column %d (%s): %w", i, r.rows.Columns()[i], err)
		}
	}
	return true, nil
}

// nextFast is next for a RowReader's rows: the Scanners of this package
// read each Value as it is, any other Scanner its driver.Value.
func (r *driverRows) nextFast(dest []sql.Scanner) (bool, error) {
	if r.fvals == nil {
		cols := r.fast.Columns()
		if dest != nil && len(cols) != len(dest) {
			return false, fmt.Errorf("the query returned %d columns, want %d", len(cols), len(dest))
		}
		r.fvals = make([]Value, len(cols))
	}
	more, err := r.fast.Next(r.fvals)
	if err != nil || !more {
		return false, err
	}
	for i, s := range dest {
		var err error
		if vs, ok := s.(valueScanner); ok {
			err = vs.scanValue(&r.fvals[i])
		} else {
			err = s.Scan(r.fvals[i].DriverValue())
		}
		if err != nil {
			return false, fmt.Errorf("column %d (%s): %w", i, r.fast.Columns()[i], err)
		}
	}
	return true, nil
}

// close closes the rows and the statement, if any, and returns the first
// error.
func (r *driverRows) close() error {
	if r.fast != nil {
		return r.fast.Close()
	}
	err := r.rows.Close()
	if r.stmt != nil {
		if serr := r.stmt.Close(); err == nil {
			err = serr
		}
	}
	return err
}
