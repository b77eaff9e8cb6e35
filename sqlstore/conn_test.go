package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
)

// The store reads through the driver of a connection lent by the pool
// (conn.go). These tests hold it to what database/sql would have done:
// prepare when the driver asks to, never hand back a connection whose
// transaction may be open, and end every transaction whatever fn does.

// TestPreparedWhenTheDriverSkips: a driver that answers a direct query
// with driver.ErrSkip (go-sql-driver/mysql without interpolateParams)
// gets each query as a prepared statement, closed after its rows, and
// the export is the same.
func TestPreparedWhenTheDriverSkips(t *testing.T) {
	for i, c := range sqlText {
		t.Run(c.dialect.String()+"/"+c.layout, func(t *testing.T) {
			m := newMocked(t, i)
			m.mock.ExpectBegin()
			for _, q := range []struct {
				sql  string
				rows *sqlmock.Rows
			}{{c.user, m.userRows()}, {c.agents, m.agentRows()}, {c.tasks, m.taskRows()}, {c.workflows, m.workflowRows()}} {
				m.mock.ExpectQuery(q.sql).WithArgs(m.args()...).WillReturnError(driver.ErrSkip)
				m.mock.ExpectPrepare(q.sql).WillBeClosed().ExpectQuery().WithArgs(m.args()...).WillReturnRows(q.rows)
			}
			m.mock.ExpectCommit()
			var got bytes.Buffer
			_, err := export.NewExporter(m.store).Export(context.Background(), &got, export.Request{UserID: mockUser, ExportedAt: mockAt})
			require.NoError(t, err)
			require.Equal(t, string(mockDocument().Bytes()), got.String())
			require.NoError(t, m.mock.ExpectationsWereMet())
		})
	}
}

// TestConnectionDiscarded: when a transaction cannot be shown to have
// ended (the rollback or the commit failed), or fn panicked mid-read, the
// connection is closed rather than lent out again.
func TestConnectionDiscarded(t *testing.T) {
	cases := []struct {
		name   string
		expect func(m *mocked)
		fn     func(export.Tx) error
		check  func(t *testing.T, err error)
	}{
		{
			name: "rollback fails",
			expect: func(m *mocked) {
				m.expectUser().WillReturnRows(m.userRows())
				m.mock.ExpectRollback().WillReturnError(errors.New("connection lost"))
			},
			fn:    func(export.Tx) error { return errStop },
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, errStop) },
		},
		{
			name: "commit fails",
			expect: func(m *mocked) {
				m.expectUser().WillReturnRows(m.userRows())
				m.mock.ExpectCommit().WillReturnError(errors.New("connection lost"))
			},
			fn: func(export.Tx) error { return nil },
			check: func(t *testing.T, err error) {
				require.ErrorContains(t, err, "committing transaction: connection lost")
			},
		},
		{
			name: "fn panics while reading",
			expect: func(m *mocked) {
				m.expectUser().WillReturnRows(m.userRows())
				m.mock.ExpectQuery(sqlText[0].agents).WithArgs(m.args()...).WillReturnRows(m.agentRows()).RowsWillBeClosed()
				m.mock.ExpectRollback()
			},
			fn: func(tx export.Tx) error {
				for range tx.Agents(context.Background()) {
					panic("host code panicked")
				}
				return nil
			},
			check: func(t *testing.T, err error) { t.Fatal("the panic did not reach the caller") },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMocked(t, 0)
			m.mock.ExpectBegin()
			c.expect(m)
			m.mock.ExpectClose()
			func() {
				if c.name == "fn panics while reading" {
					defer func() { require.Equal(t, "host code panicked", recover()) }()
				}
				c.check(t, m.store.View(context.Background(), mockUser, c.fn))
			}()
			require.Eventually(t, func() bool { return m.mock.ExpectationsWereMet() == nil }, 5*time.Second, 5*time.Millisecond,
				"the connection was not closed: %v", m.mock.ExpectationsWereMet())
		})
	}
}

// TestConnectionKeptAfterARollback: an ordinary failure (here a missing
// user) rolls back and returns the connection to the pool, unclosed.
func TestConnectionKeptAfterARollback(t *testing.T) {
	m := newMocked(t, 0)
	for range 2 {
		m.mock.ExpectBegin()
		m.expectUser().WillReturnRows(m.userRows().RowError(0, errors.New("boom")))
		m.mock.ExpectRollback()
	}
	for range 2 {
		require.ErrorContains(t, m.store.View(context.Background(), mockUser, func(export.Tx) error { return nil }), "boom")
	}
	// sqlmock has one connection: had the first been closed, the second
	// View could not have begun on it.
	require.NoError(t, m.mock.ExpectationsWereMet())
}

// TestSectionsReadOneAtATime: a section started while another is still
// open fails with an error that says so, instead of interleaving two
// result sets on one driver connection.
func TestSectionsReadOneAtATime(t *testing.T) {
	m := newMocked(t, 0)
	m.mock.ExpectBegin()
	m.expectUser().WillReturnRows(m.userRows())
	m.mock.ExpectQuery(sqlText[0].agents).WithArgs(m.args()...).WillReturnRows(m.agentRows()).RowsWillBeClosed()
	m.mock.ExpectCommit()
	var nested error
	err := m.store.View(context.Background(), mockUser, func(tx export.Tx) error {
		for _, err := range tx.Agents(context.Background()) {
			require.NoError(t, err)
			for _, err := range tx.Workflows(context.Background()) {
				nested = err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.ErrorContains(t, nested, "read one at a time")
	require.NoError(t, m.mock.ExpectationsWereMet())
}
