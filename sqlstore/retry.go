package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"syscall"
)

// Opening a view is retried once when the connection it was opened on
// turns out to be lost: typically the first export after the database
// server restarted, over a pooled connection that the restart killed
// (PostgreSQL sends 57P01 to each session it shuts down; the driver
// reports it on the next statement, the BEGIN). Nothing has been read
// then, so a second attempt on a live connection is safe; once a row has
// been read there is no retry (the transaction's snapshot would change).
//
// The store imports no driver, so a lost connection is recognised by
// what drivers share rather than by their error types:
//   - driver.ErrBadConn, which database/sql defines for it;
//   - an SQLSTATE (pgx's *pgconn.PgError and lib/pq's *pq.Error have a
//     SQLState method) of class 08 (connection exception) or 57P01,
//     57P02, 57P03 (the server shutting down or not yet up);
//   - io.ErrUnexpectedEOF, ECONNRESET, EPIPE: the socket closed under
//     the driver;
//   - and, for drivers whose errors say none of that, the connection
//     itself: a driver.Validator that reports the connection invalid
//     after the failure has closed it for good. go-sql-driver/mysql does
//     so on "invalid connection" (its ErrInvalidConn, where the C client
//     says 2006 "server has gone away" or 2013 "lost connection") and on
//     the server's 1053 (shutdown in progress) and 1927 (connection
//     killed); pgx does on every FATAL.

// lostConnection reports whether err, returned by the connection ci,
// means that the connection is gone.
func lostConnection(ci driver.Conn, err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		switch code := state.SQLState(); {
		case len(code) == 5 && code[:2] == "08", code == "57P01", code == "57P02", code == "57P03":
			return true
		}
	}
	if v, ok := ci.(driver.Validator); ok && !v.IsValid() {
		return true
	}
	return false
}

// liveConn lends a connection that answers a ping. After a lost
// connection the pool's other idle ones are likely dead too (a restart
// kills them all) and a driver need not notice before using one: each
// that fails its ping is dropped (database/sql closes a connection whose
// ping reports driver.ErrBadConn, and one that reports itself invalid
// when it is given back), up to as many as the pool holds idle, and
// then a new one is dialled.
func liveConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	var last error
	for range db.Stats().Idle + 1 {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		if last = conn.PingContext(ctx); last == nil {
			return conn, nil
		}
		conn.Close()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}
