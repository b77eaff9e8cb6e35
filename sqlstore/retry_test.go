package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// sqlStateError is an error with an SQLSTATE, as pgx's and lib/pq's are.
type sqlStateError string

func (e sqlStateError) Error() string    { return "server said " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

// flakyConnector lends connections whose BeginTx fails with beginErr the
// first time (on the first connection), and whose queries fail with
// queryErr; it counts the BEGINs.
type flakyConnector struct {
	beginErr, queryErr error
	invalidAfter       bool // the failed connection reports itself invalid, as go-sql-driver/mysql's does
	always             bool // every BEGIN fails, not only the first
	begins             atomic.Int32
}

func (c *flakyConnector) Connect(context.Context) (driver.Conn, error) { return &flakyConn{c: c}, nil }
func (c *flakyConnector) Driver() driver.Driver                        { return nil }

type flakyConn struct {
	c    *flakyConnector
	dead bool
}

func (c *flakyConn) Prepare(string) (driver.Stmt, error) { return nil, errStop }
func (c *flakyConn) Close() error                        { return nil }
func (c *flakyConn) Begin() (driver.Tx, error)           { return nil, errStop }
func (c *flakyConn) IsValid() bool                       { return !c.dead }
func (c *flakyConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	if (c.c.begins.Add(1) == 1 || c.c.always) && c.c.beginErr != nil {
		c.dead = c.c.invalidAfter
		return nil, c.c.beginErr
	}
	return flakyTx{}, nil
}
func (c *flakyConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return nil, c.c.queryErr
}

type flakyTx struct{}

func (flakyTx) Commit() error   { return nil }
func (flakyTx) Rollback() error { return nil }

// TestViewRetriesLostConnection: opening the view is retried once when
// BEGIN failed because the connection was lost, and only then: not for
// other errors, not when the context ended, and never once the
// transaction has begun (here the user's query fails on a lost
// connection after BEGIN: one BEGIN only).
func TestViewRetriesLostConnection(t *testing.T) {
	for _, c := range []struct {
		name         string
		beginErr     error
		invalidAfter bool
		queryErr     error
		always       bool
		begins       int32
	}{
		{name: "driver.ErrBadConn", beginErr: driver.ErrBadConn, begins: 2},
		{name: "PostgreSQL admin shutdown", beginErr: fmt.Errorf("FATAL: %w", sqlStateError("57P01")), begins: 2},
		{name: "PostgreSQL crash shutdown", beginErr: sqlStateError("57P02"), begins: 2},
		{name: "PostgreSQL cannot connect now", beginErr: sqlStateError("57P03"), begins: 2},
		{name: "connection failure class 08", beginErr: sqlStateError("08006"), begins: 2},
		{name: "unexpected EOF", beginErr: fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), begins: 2},
		{name: "the driver closed the connection", beginErr: errors.New("invalid connection"), invalidAfter: true, begins: 2},
		{name: "lost again on the retry", beginErr: sqlStateError("57P01"), always: true, begins: 2},
		{name: "permission denied", beginErr: sqlStateError("42501"), begins: 1},
		{name: "another error on a live connection", beginErr: errors.New("invalid connection"), begins: 1},
		{name: "canceled", beginErr: fmt.Errorf("begin: %w", context.Canceled), invalidAfter: true, begins: 1},
		{name: "lost after BEGIN", queryErr: driver.ErrBadConn, begins: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := &flakyConnector{beginErr: c.beginErr, queryErr: c.queryErr, invalidAfter: c.invalidAfter, always: c.always}
			db := sql.OpenDB(conn)
			defer db.Close()
			s, err := sqlstore.New(db, sqlstore.Postgres)
			require.NoError(t, err)
			if conn.queryErr == nil {
				conn.queryErr = errStop // the retried view gets as far as the user's query
			}
			err = s.View(context.Background(), "alice", func(export.Tx) error { return nil })
			require.Error(t, err)
			require.Equal(t, c.begins, conn.begins.Load(), "BEGINs: %v", err)
			switch {
			case c.always:
				require.ErrorIs(t, err, c.beginErr)
			case c.begins == 2:
				require.ErrorIs(t, err, errStop, "the second attempt's error is the one reported")
			}
		})
	}
}
