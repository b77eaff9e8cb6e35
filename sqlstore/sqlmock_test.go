package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// sqlText is the exact SQL a store sends, per dialect and preset. It is
// the specification: a change to the SQL must change this table.
var sqlText = []struct {
	dialect                        sqlstore.Dialect
	layout                         string
	user, agents, tasks, workflows string
	twoArgs                        bool     // MySQL binds the user ID twice
	packed                         []string // SQLite: the sections' packed queries (packed.go)
	lookup                         []string // SQLite: the lookup of an odd packed row
}{
	{
		dialect: sqlstore.Postgres, layout: "prisma",
		user:      `SELECT "email", "name", "plan", "role", "referralCode", "referralCredits" FROM "User" WHERE "id" = $1`,
		agents:    `SELECT "id", "name", "model", "status", "createdAt", "updatedAt" FROM "Agent" WHERE "userId" = $1 ORDER BY "createdAt", "id" COLLATE "C"`,
		tasks:     `SELECT "id", "name", "cronSchedule", "enabled", "createdAt" FROM "ScheduledTask" WHERE "userId" = $1 ORDER BY "createdAt", "id" COLLATE "C"`,
		workflows: `SELECT "id", "name", "enabled", "createdAt" FROM "Workflow" WHERE "userId" = $1 ORDER BY "createdAt", "id" COLLATE "C"`,
	},
	{
		dialect: sqlstore.Postgres, layout: "snake_case",
		user:      `SELECT "email", "name", "plan", "role", "referral_code", "referral_credits" FROM "users" WHERE "id" = $1`,
		agents:    `SELECT "id", "name", "model", "status", "created_at", "updated_at" FROM "agents" WHERE "user_id" = $1 ORDER BY "created_at", "id" COLLATE "C"`,
		tasks:     `SELECT "id", "name", "cron_schedule", "enabled", "created_at" FROM "scheduled_tasks" WHERE "user_id" = $1 ORDER BY "created_at", "id" COLLATE "C"`,
		workflows: `SELECT "id", "name", "enabled", "created_at" FROM "workflows" WHERE "user_id" = $1 ORDER BY "created_at", "id" COLLATE "C"`,
	},
	{
		dialect: sqlstore.SQLite, layout: "prisma",
		user:      "SELECT `email`, `name`, `plan`, `role`, `referralCode`, `referralCredits` FROM `User` WHERE `id` = ?",
		agents:    "SELECT `id`, `name`, `model`, `status`, CAST(`createdAt` AS BLOB), CAST(`updatedAt` AS BLOB) FROM `Agent` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
		tasks:     "SELECT `id`, `name`, `cronSchedule`, `enabled`, CAST(`createdAt` AS BLOB) FROM `ScheduledTask` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
		workflows: "SELECT `id`, `name`, `enabled`, CAST(`createdAt` AS BLOB) FROM `Workflow` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
		packed: []string{
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`model`, ''), ifnull(`status`, ''), ifnull(`createdAt`, ''), ifnull(`updatedAt`, '')) FROM `Agent` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`cronSchedule`, ''), ifnull(`enabled`, ''), ifnull(`createdAt`, '')) FROM `ScheduledTask` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`enabled`, ''), ifnull(`createdAt`, '')) FROM `Workflow` WHERE `userId` = ? ORDER BY `createdAt`, `id` COLLATE BINARY",
		},
		lookup: []string{
			"SELECT `id`, `name`, `model`, `status`, CAST(`createdAt` AS BLOB), CAST(`updatedAt` AS BLOB) FROM `Agent` WHERE rowid = ? AND `userId` = ?",
			"SELECT `id`, `name`, `cronSchedule`, `enabled`, CAST(`createdAt` AS BLOB) FROM `ScheduledTask` WHERE rowid = ? AND `userId` = ?",
			"SELECT `id`, `name`, `enabled`, CAST(`createdAt` AS BLOB) FROM `Workflow` WHERE rowid = ? AND `userId` = ?",
		},
	},
	{
		dialect: sqlstore.SQLite, layout: "snake_case",
		user:      "SELECT `email`, `name`, `plan`, `role`, `referral_code`, `referral_credits` FROM `users` WHERE `id` = ?",
		agents:    "SELECT `id`, `name`, `model`, `status`, CAST(`created_at` AS BLOB), CAST(`updated_at` AS BLOB) FROM `agents` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
		tasks:     "SELECT `id`, `name`, `cron_schedule`, `enabled`, CAST(`created_at` AS BLOB) FROM `scheduled_tasks` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
		workflows: "SELECT `id`, `name`, `enabled`, CAST(`created_at` AS BLOB) FROM `workflows` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
		packed: []string{
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`model`, ''), ifnull(`status`, ''), ifnull(`created_at`, ''), ifnull(`updated_at`, '')) FROM `agents` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`cron_schedule`, ''), ifnull(`enabled`, ''), ifnull(`created_at`, '')) FROM `scheduled_tasks` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
			"SELECT concat_ws(char(0), rowid, ifnull(`id`, ''), ifnull(`name`, ''), ifnull(`enabled`, ''), ifnull(`created_at`, '')) FROM `workflows` WHERE `user_id` = ? ORDER BY `created_at`, `id` COLLATE BINARY",
		},
		lookup: []string{
			"SELECT `id`, `name`, `model`, `status`, CAST(`created_at` AS BLOB), CAST(`updated_at` AS BLOB) FROM `agents` WHERE rowid = ? AND `user_id` = ?",
			"SELECT `id`, `name`, `cron_schedule`, `enabled`, CAST(`created_at` AS BLOB) FROM `scheduled_tasks` WHERE rowid = ? AND `user_id` = ?",
			"SELECT `id`, `name`, `enabled`, CAST(`created_at` AS BLOB) FROM `workflows` WHERE rowid = ? AND `user_id` = ?",
		},
	},
	{
		dialect: sqlstore.MySQL, layout: "prisma", twoArgs: true,
		user:      "SELECT `email`, `name`, `plan`, `role`, `referralCode`, `referralCredits` FROM `User` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY)",
		agents:    "SELECT `id`, `name`, `model`, `status`, `createdAt`, `updatedAt` FROM `Agent` WHERE `userId` = ? AND CAST(`userId` AS BINARY) = CAST(? AS BINARY) ORDER BY `createdAt`, CAST(`id` AS BINARY)",
		tasks:     "SELECT `id`, `name`, `cronSchedule`, `enabled`, `createdAt` FROM `ScheduledTask` WHERE `userId` = ? AND CAST(`userId` AS BINARY) = CAST(? AS BINARY) ORDER BY `createdAt`, CAST(`id` AS BINARY)",
		workflows: "SELECT `id`, `name`, `enabled`, `createdAt` FROM `Workflow` WHERE `userId` = ? AND CAST(`userId` AS BINARY) = CAST(? AS BINARY) ORDER BY `createdAt`, CAST(`id` AS BINARY)",
	},
	{
		dialect: sqlstore.MySQL, layout: "snake_case", twoArgs: true,
		user:      "SELECT `email`, `name`, `plan`, `role`, `referral_code`, `referral_credits` FROM `users` WHERE `id` = ? AND CAST(`id` AS BINARY) = CAST(? AS BINARY)",
		agents:    "SELECT `id`, `name`, `model`, `status`, `created_at`, `updated_at` FROM `agents` WHERE `user_id` = ? AND CAST(`user_id` AS BINARY) = CAST(? AS BINARY) ORDER BY `created_at`, CAST(`id` AS BINARY)",
		tasks:     "SELECT `id`, `name`, `cron_schedule`, `enabled`, `created_at` FROM `scheduled_tasks` WHERE `user_id` = ? AND CAST(`user_id` AS BINARY) = CAST(? AS BINARY) ORDER BY `created_at`, CAST(`id` AS BINARY)",
		workflows: "SELECT `id`, `name`, `enabled`, `created_at` FROM `workflows` WHERE `user_id` = ? AND CAST(`user_id` AS BINARY) = CAST(? AS BINARY) ORDER BY `created_at`, CAST(`id` AS BINARY)",
	},
}

// driverValues are the values each driver hands database/sql for a
// timestamp and a boolean, so that the scan of each form is exercised.
func driverValues(d sqlstore.Dialect) (ts func(time.Time) driver.Value, yes, no driver.Value) {
	switch d {
	case sqlstore.Postgres: // pgx: time.Time (timestamp in UTC), bool
		return func(t time.Time) driver.Value { return t.UTC() }, true, false
	case sqlstore.SQLite: // CAST(... AS BLOB): bytes; integers as 0/1
		return func(t time.Time) driver.Value { return []byte(t.UTC().Format("2006-01-02 15:04:05.000")) }, int64(1), int64(0)
	default: // go-sql-driver/mysql without parseTime: bytes
		return func(t time.Time) driver.Value { return []byte(t.UTC().Format("2006-01-02 15:04:05.000")) }, []byte("1"), []byte("0")
	}
}

const mockUser = "user_abc123"

var mockAt = time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)

// mockDocument is what the mocked rows below hold.
func mockDocument() *export.Document {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	return &export.Document{
		ExportedAt: mockAt, Version: export.Version,
		User: export.User{ID: mockUser, Email: "", Name: export.Some("Jane Doe"), Role: "user",
			ReferralCode: export.Some("REF123"), ReferralCredits: 7},
		Agents: []export.Agent{
			{ID: "agent_1", Name: "first", Model: "", Status: "running", CreatedAt: day(1), UpdatedAt: day(2)},
			{ID: "agent_2", Name: "second", Model: "gpt-4o", Status: "pending", CreatedAt: day(3), UpdatedAt: day(4)},
		},
		ScheduledTasks: []export.ScheduledTask{{ID: "task_1", Name: "daily", CronSchedule: "0 9 * * *", Enabled: true, CreatedAt: day(5)}},
		Workflows: []export.Workflow{
			{ID: "wf_1", Name: "on", Enabled: true, CreatedAt: day(6)},
			{ID: "wf_2", Name: "off", Enabled: false, CreatedAt: day(7)},
		},
	}
}

// mocked is one store over sqlmock, with the expectations of a complete
// export queued up to a point.
type mocked struct {
	store *sqlstore.Store
	mock  sqlmock.Sqlmock
	spec  int // index into sqlText
}

func newMocked(t *testing.T, spec int) *mocked {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	l, err := sqlstore.LayoutByName(sqlText[spec].layout)
	require.NoError(t, err)
	s, err := sqlstore.New(db, sqlText[spec].dialect, sqlstore.WithLayout(l))
	require.NoError(t, err)
	// sqlmock is no SQLite: the sections are read per column, as on the
	// other databases. TestPackingFaults turns packing on.
	sqlstore.SetPacking(s, false)
	return &mocked{store: s, mock: mock, spec: spec}
}

func (m *mocked) args() []driver.Value {
	if sqlText[m.spec].twoArgs {
		return []driver.Value{mockUser, mockUser}
	}
	return []driver.Value{mockUser}
}

func (m *mocked) expectUser() *sqlmock.ExpectedQuery {
	return m.mock.ExpectQuery(sqlText[m.spec].user).WithArgs(m.args()...)
}

func (m *mocked) userRows() *sqlmock.Rows {
	// email and plan are NULL: email exports as "", plan as null.
	return sqlmock.NewRows([]string{"email", "name", "plan", "role", "referralCode", "referralCredits"}).
		AddRow(nil, "Jane Doe", nil, "user", "REF123", int64(7))
}

func (m *mocked) agentRows() *sqlmock.Rows {
	ts, _, _ := driverValues(sqlText[m.spec].dialect)
	r := sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"})
	for _, a := range mockDocument().Agents {
		var model driver.Value = a.Model
		if model == "" {
			model = nil // NULL model exports as ""
		}
		r.AddRow(a.ID, a.Name, model, a.Status, ts(a.CreatedAt), ts(a.UpdatedAt))
	}
	return r
}

func (m *mocked) taskRows() *sqlmock.Rows {
	ts, yes, no := driverValues(sqlText[m.spec].dialect)
	r := sqlmock.NewRows([]string{"id", "name", "cronSchedule", "enabled", "createdAt"})
	for _, x := range mockDocument().ScheduledTasks {
		r.AddRow(x.ID, x.Name, x.CronSchedule, pick(x.Enabled, yes, no), ts(x.CreatedAt))
	}
	return r
}

func (m *mocked) workflowRows() *sqlmock.Rows {
	ts, yes, no := driverValues(sqlText[m.spec].dialect)
	r := sqlmock.NewRows([]string{"id", "name", "enabled", "createdAt"})
	for _, x := range mockDocument().Workflows {
		r.AddRow(x.ID, x.Name, pick(x.Enabled, yes, no), ts(x.CreatedAt))
	}
	return r
}

func pick(b bool, yes, no driver.Value) driver.Value {
	if b {
		return yes
	}
	return no
}

// TestSQLText checks every dialect and preset sends exactly the SQL of
// sqlText, with the user ID as its only value, in one transaction, and
// that what the rows hold comes out as the document.
func TestSQLText(t *testing.T) {
	for i, c := range sqlText {
		t.Run(c.dialect.String()+"/"+c.layout, func(t *testing.T) {
			m := newMocked(t, i)
			packed, lookup := c.packed, c.lookup
			if packed == nil {
				packed, lookup = []string{"", "", ""}, []string{"", "", ""}
			}
			require.Equal(t, packed, sqlstore.PackedQueries(m.store), "packed queries (read where exact, see TestPackingFaults)")
			require.Equal(t, lookup, sqlstore.LookupQueries(m.store), "lookups of odd packed rows")
			m.mock.ExpectBegin()
			m.expectUser().WillReturnRows(m.userRows())
			m.mock.ExpectQuery(c.agents).WithArgs(m.args()...).WillReturnRows(m.agentRows()).RowsWillBeClosed()
			m.mock.ExpectQuery(c.tasks).WithArgs(m.args()...).WillReturnRows(m.taskRows()).RowsWillBeClosed()
			m.mock.ExpectQuery(c.workflows).WithArgs(m.args()...).WillReturnRows(m.workflowRows()).RowsWillBeClosed()
			m.mock.ExpectCommit()
			var buf bytes.Buffer
			res, err := export.NewExporter(m.store).Export(context.Background(), &buf, export.Request{UserID: mockUser, ExportedAt: mockAt})
			require.NoError(t, err)
			require.Equal(t, string(mockDocument().Bytes()), buf.String())
			require.Equal(t, export.Result{Bytes: int64(buf.Len()), Agents: 2, ScheduledTasks: 1, Workflows: 2}, res)
			require.NoError(t, m.mock.ExpectationsWereMet())
		})
	}
}

// errDriver stands for a driver error full of what a client must not see.
var errDriver = errors.New(`pq: relation "User" does not exist (SQLSTATE 42P01) at db.internal:5432`)

// TestFaults injects an error at every step of an export, on every
// dialect, and checks that each ends in an error that names the stage
// and wraps the cause, that the transaction is ended, and that the
// handler answers a clean 500 naming the stage, with nothing of the
// document or of the driver's error in it.
func TestFaults(t *testing.T) {
	type step int
	const (
		stepBegin step = iota
		stepUser
		stepAgents
		stepTasks
		stepWorkflows
		stepCommit
	)
	faults := []struct {
		name  string
		at    step
		setup func(m *mocked, q *sqlmock.ExpectedQuery) // adjusts the faulty step's query
		stage export.Stage
		op    string
		cause error // what the error must wrap; errDriver when nil
	}{
		{name: "begin", at: stepBegin, stage: export.StageOpen, op: sqlstore.OpBegin},
		{name: "user query", at: stepUser, stage: export.StageUser, op: sqlstore.OpUser,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }},
		{name: "user scan", at: stepUser, stage: export.StageUser, op: sqlstore.OpUser, cause: errAny,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) {
				q.WillReturnRows(sqlmock.NewRows([]string{"email", "name", "plan", "role", "referralCode", "referralCredits"}).
					AddRow("e", "n", "p", "r", "c", "not a number"))
			}},
		{name: "agents query", at: stepAgents, stage: export.StageAgents, op: sqlstore.OpAgents,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }},
		{name: "agents scan", at: stepAgents, stage: export.StageAgents, op: sqlstore.OpAgents, cause: errAny,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) {
				q.WillReturnRows(sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"}).
					AddRow("a", "n", "m", "s", "not a time", "2026-03-01"))
			}},
		{name: "agents NULL timestamp", at: stepAgents, stage: export.StageAgents, op: sqlstore.OpAgents, cause: errAny,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) {
				q.WillReturnRows(sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"}).
					AddRow("a", "n", "m", "s", nil, nil))
			}},
		{name: "agents row error after one row", at: stepAgents, stage: export.StageAgents, op: sqlstore.OpAgents,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnRows(m.agentRows().RowError(1, errDriver)) }},
		{name: "agents close error", at: stepAgents, stage: export.StageAgents, op: sqlstore.OpAgents,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnRows(m.agentRows().CloseError(errDriver)) }},
		{name: "scheduled tasks query", at: stepTasks, stage: export.StageScheduledTasks, op: sqlstore.OpScheduledTasks,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }},
		{name: "scheduled tasks scan", at: stepTasks, stage: export.StageScheduledTasks, op: sqlstore.OpScheduledTasks, cause: errAny,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) {
				q.WillReturnRows(sqlmock.NewRows([]string{"id", "name", "cronSchedule", "enabled", "createdAt"}).
					AddRow("t", "n", "c", "maybe", "2026-03-01"))
			}},
		{name: "scheduled tasks row error", at: stepTasks, stage: export.StageScheduledTasks, op: sqlstore.OpScheduledTasks,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnRows(m.taskRows().RowError(0, errDriver)) }},
		{name: "workflows query", at: stepWorkflows, stage: export.StageWorkflows, op: sqlstore.OpWorkflows,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }},
		{name: "workflows row error after one row", at: stepWorkflows, stage: export.StageWorkflows, op: sqlstore.OpWorkflows,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnRows(m.workflowRows().RowError(1, errDriver)) }},
		{name: "workflows close error", at: stepWorkflows, stage: export.StageWorkflows, op: sqlstore.OpWorkflows,
			setup: func(m *mocked, q *sqlmock.ExpectedQuery) { q.WillReturnRows(m.workflowRows().CloseError(errDriver)) }},
		{name: "commit", at: stepCommit, stage: export.StageClose, op: sqlstore.OpCommit},
	}
	for i, c := range sqlText {
		for _, f := range faults {
			t.Run(c.dialect.String()+"/"+c.layout+"/"+f.name, func(t *testing.T) {
				// Each fault twice: through the Exporter, then the handler.
				for _, viaHandler := range []bool{false, true} {
					m := newMocked(t, i)
					queue := func(s step, q *sqlmock.ExpectedQuery, rows *sqlmock.Rows) bool {
						if f.at == s {
							f.setup(m, q)
							return false
						}
						q.WillReturnRows(rows)
						return true
					}
					func() {
						if f.at == stepBegin {
							m.mock.ExpectBegin().WillReturnError(errDriver)
							return
						}
						m.mock.ExpectBegin()
						if !queue(stepUser, m.expectUser(), m.userRows()) {
							m.mock.ExpectRollback().WillReturnError(errors.New("rollback fails too"))
							return
						}
						for _, s := range []struct {
							step  step
							query string
							rows  *sqlmock.Rows
						}{{stepAgents, c.agents, m.agentRows()}, {stepTasks, c.tasks, m.taskRows()}, {stepWorkflows, c.workflows, m.workflowRows()}} {
							if !queue(s.step, m.mock.ExpectQuery(s.query).WithArgs(m.args()...), s.rows) {
								m.mock.ExpectRollback()
								return
							}
						}
						m.mock.ExpectCommit().WillReturnError(errDriver)
					}()

					cause := f.cause
					if cause == nil {
						cause = errDriver
					}
					if viaHandler {
						h := export.NewHandler(export.NewExporter(m.store),
							func(*http.Request) (string, error) { return mockUser, nil },
							export.WithClock(func() time.Time { return mockAt }),
							export.WithLogger(nil))
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/export", nil))
						require.Equal(t, http.StatusInternalServerError, rec.Code)
						require.JSONEq(t, `{"error":"Export failed","message":"could not `+string(f.stage)+`"}`, rec.Body.String())
						require.NotContains(t, rec.Body.String(), "SQLSTATE")
					} else {
						var buf bytes.Buffer
						_, err := export.NewExporter(m.store).Export(context.Background(), &buf, export.Request{UserID: mockUser, ExportedAt: mockAt})
						require.Error(t, err)
						var ee *export.Error
						require.ErrorAs(t, err, &ee)
						require.Equal(t, f.stage, ee.Stage, "stage of %v", err)
						var se *sqlstore.Error
						require.ErrorAs(t, err, &se)
						require.Equal(t, f.op, se.Op, "op of %v", err)
						if cause != errAny {
							require.ErrorIs(t, err, cause)
						}
						if f.at != stepCommit {
							_, derr := export.Decode(&buf)
							require.Error(t, derr, "a failed export left a complete document in the writer")
						}
					}
					require.NoError(t, m.mock.ExpectationsWereMet(), "the transaction must be ended")
				}
			})
		}
	}
}

// errAny marks faults whose cause is database/sql's own conversion error.
var errAny = errors.New("any")

// TestUserNotFound: no row for the user is export.ErrUserNotFound, the
// transaction is rolled back, and the handler answers 401.
func TestUserNotFound(t *testing.T) {
	for i, c := range sqlText {
		t.Run(c.dialect.String()+"/"+c.layout, func(t *testing.T) {
			m := newMocked(t, i)
			m.mock.ExpectBegin()
			m.expectUser().WillReturnRows(sqlmock.NewRows([]string{"email", "name", "plan", "role", "referralCode", "referralCredits"}))
			m.mock.ExpectRollback()
			called := false
			err := m.store.View(context.Background(), mockUser, func(export.Tx) error { called = true; return nil })
			require.ErrorIs(t, err, export.ErrUserNotFound)
			require.False(t, called, "fn called for a missing user")
			require.NoError(t, m.mock.ExpectationsWereMet())

			// An empty ID never reaches the database.
			require.ErrorIs(t, m.store.View(context.Background(), "", func(export.Tx) error { return nil }), export.ErrUserNotFound)
			require.NoError(t, m.mock.ExpectationsWereMet())
		})
	}
}

// TestCanceledContext: a context that ends while a section is read stops
// the export with an error naming that section; the transaction ends.
func TestCanceledContext(t *testing.T) {
	for i, c := range sqlText {
		t.Run(c.dialect.String()+"/"+c.layout, func(t *testing.T) {
			m := newMocked(t, i)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m.mock.ExpectBegin()
			m.expectUser().WillReturnRows(m.userRows())
			m.mock.ExpectQuery(c.agents).WithArgs(m.args()...).WillReturnRows(m.agentRows()).WillDelayFor(time.Minute)
			m.mock.ExpectRollback()
			time.AfterFunc(20*time.Millisecond, cancel)
			start := time.Now()
			_, err := export.NewExporter(m.store).Export(ctx, &bytes.Buffer{}, export.Request{UserID: mockUser, ExportedAt: mockAt})
			require.Less(t, time.Since(start), 30*time.Second, "the export did not stop when its context ended")
			var ee *export.Error
			require.ErrorAs(t, err, &ee)
			require.Equal(t, export.StageAgents, ee.Stage, "%v", err)
			// The transaction is rolled back once the read stops.
			require.Eventually(t, func() bool { return m.mock.ExpectationsWereMet() == nil }, 5*time.Second, 10*time.Millisecond)
		})
	}
}

// TestTxUsedAfterView: a Tx kept past its View fails instead of reading.
func TestTxUsedAfterView(t *testing.T) {
	m := newMocked(t, 0)
	m.mock.ExpectBegin()
	m.expectUser().WillReturnRows(m.userRows())
	m.mock.ExpectCommit()
	var kept export.Tx
	require.NoError(t, m.store.View(context.Background(), mockUser, func(tx export.Tx) error { kept = tx; return nil }))
	_, err := kept.User(context.Background())
	require.Error(t, err)
	for _, err := range kept.Agents(context.Background()) {
		require.ErrorContains(t, err, "after its View returned")
	}
	require.NoError(t, m.mock.ExpectationsWereMet())
}

// TestTransactionOptions checks the options each dialect opens its
// transaction with, as the driver receives them.
func TestTransactionOptions(t *testing.T) {
	want := map[sqlstore.Dialect]driver.TxOptions{
		sqlstore.Postgres: {Isolation: driver.IsolationLevel(sql.LevelRepeatableRead), ReadOnly: true},
		sqlstore.MySQL:    {Isolation: driver.IsolationLevel(sql.LevelRepeatableRead), ReadOnly: true},
		// Deferred: modernc.org/sqlite answers ReadOnly with a plain BEGIN.
		sqlstore.SQLite: {ReadOnly: true},
	}
	for d, w := range want {
		conn := &optionsConn{}
		db := sql.OpenDB(conn)
		s, err := sqlstore.New(db, d)
		require.NoError(t, err)
		err = s.View(context.Background(), mockUser, func(export.Tx) error { return nil })
		require.ErrorIs(t, err, errStop)
		require.Equal(t, w, conn.got, d.String())
		db.Close()
	}
}

var errStop = errors.New("stop here")

// optionsConn is a driver that records the options of BeginTx and fails.
type optionsConn struct{ got driver.TxOptions }

func (c *optionsConn) Connect(context.Context) (driver.Conn, error) { return c, nil }
func (c *optionsConn) Driver() driver.Driver                        { return nil }
func (c *optionsConn) Prepare(string) (driver.Stmt, error)          { return nil, errStop }
func (c *optionsConn) Close() error                                 { return nil }
func (c *optionsConn) Begin() (driver.Tx, error)                    { return nil, errStop }
func (c *optionsConn) BeginTx(_ context.Context, o driver.TxOptions) (driver.Tx, error) {
	c.got = o
	return nil, errStop
}

func TestNewRejects(t *testing.T) {
	db, _, err := sqlmock.New()
	require.NoError(t, err)
	defer db.Close()
	_, err = sqlstore.New(nil, sqlstore.Postgres)
	require.ErrorContains(t, err, "nil *sql.DB")
	_, err = sqlstore.New(db, sqlstore.Dialect(0))
	require.ErrorContains(t, err, "unknown dialect")
	bad := sqlstore.PrismaLayout()
	bad.Agent.CreatedAt = `createdAt" FROM "User" --`
	_, err = sqlstore.New(db, sqlstore.Postgres, sqlstore.WithLayout(bad))
	require.ErrorContains(t, err, "Agent.CreatedAt")
	require.True(t, strings.Contains(err.Error(), "not a plain identifier"), err.Error())
}

// TestCheckDetectsIgnoredTxOptions: a PostgreSQL driver that drops the
// transaction's options (so exports would read at READ COMMITTED, each
// section at its own moment) fails Check, naming the problem.
func TestCheckDetectsIgnoredTxOptions(t *testing.T) {
	const settings = "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"
	for _, c := range []struct {
		isolation, readOnly string
		ok                  bool
	}{
		{"repeatable read", "on", true},
		{"read committed", "off", false},
		{"repeatable read", "off", false},
		{"serializable", "on", false},
	} {
		m := newMocked(t, 0)
		m.mock.ExpectBegin()
		m.mock.ExpectQuery(settings).WillReturnRows(sqlmock.NewRows([]string{"i", "r"}).AddRow(c.isolation, c.readOnly))
		if c.ok {
			for _, q := range []string{sqlText[0].user, sqlText[0].agents, sqlText[0].tasks, sqlText[0].workflows} {
				m.mock.ExpectQuery(q).WithArgs("").WillReturnRows(sqlmock.NewRows([]string{"x"}))
			}
			m.mock.ExpectQuery("SET LOCAL enable_seqscan = off").WillReturnRows(sqlmock.NewRows(nil))
			m.mock.ExpectQuery("SET LOCAL enable_bitmapscan = off").WillReturnRows(sqlmock.NewRows(nil))
			for _, q := range []string{sqlText[0].agents, sqlText[0].tasks, sqlText[0].workflows} {
				m.mock.ExpectQuery("EXPLAIN " + q).WithArgs("").WillReturnRows(sqlmock.NewRows([]string{"QUERY PLAN"}).
					AddRow(`Index Scan using "Agent_userId_createdAt_id_idx" on "Agent"`))
			}
		}
		m.mock.ExpectRollback()
		_, err := m.store.Check(context.Background())
		if c.ok {
			require.NoError(t, err)
		} else {
			var se *sqlstore.Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, sqlstore.OpBegin, se.Op)
			require.ErrorContains(t, err, "ignores database/sql's transaction options")
		}
		require.NoError(t, m.mock.ExpectationsWereMet())
	}
}
