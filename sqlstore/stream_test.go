package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
	"github.com/agentbot/export/sqlstore/pgxrows"
)

// TestSortsDiscouragedOnlyWhereAnIndexServes (PostgreSQL): on the
// application's own tables (only an index on each owner column) sorts
// are left alone, after one look at a plan; once the export's indexes
// exist, a new store discourages sorts for the built-in sections. JIT is
// off for the built-in sections either way, and an added section is
// planned with the host's own settings given back: here a session that
// turned JIT off itself, which a reset to the server's default would
// turn on again.
func TestSortsDiscouragedOnlyWhereAnIndexServes(t *testing.T) {
	tdb := openDB(t, sqlstore.Postgres)
	s, w := appTables(t, tdb)
	ctx := ctxFor(t)
	fillMany(t, tdb, w, "jane", 50)
	l := s.Layout()

	cc := &countingConnector{d: tdb.db.Driver(), dsn: tdb.dsn}
	db := sql.OpenDB(cc)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // one session, whose own setting the export must keep
	mustExec(t, db, "SET jit = off")
	mustExec(t, db, "SET plan_cache_mode = force_generic_plan")
	settingOf := `SELECT current_setting('enable_sort') AS "enableSort", current_setting('jit') AS "jit", ` +
		`current_setting('plan_cache_mode') AS "planCacheMode" FROM ` + quoteTable(tdb, l.User.Table) + ` WHERE id = $1`
	newStore := func() *sqlstore.Store {
		t.Helper()
		st, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.WithLayout(l))
		require.NoError(t, err)
		return st
	}
	const host = "on off force_generic_plan" // enable_sort, jit, plan_cache_mode

	// The application's tables: a plan that sorts, and nothing changed.
	st := newStore()
	statements, setting := runOn(t, cc, st, settingOf)
	require.Equal(t, host, setting)
	require.Equal(t, []string{sqlstore.DiscourageSorts, "EXPLAIN", sqlstore.RestoreSort, sqlstore.RestorePlanner}, planner(statements),
		"the first export looks at a plan, finds a sort and gives the setting back")
	statements, setting = runOn(t, cc, st, settingOf)
	require.Equal(t, []string{sqlstore.PlannerSettings, sqlstore.RestorePlanner}, planner(statements), "the same store trusts what it saw")
	require.Equal(t, host, setting)

	// The export's indexes: sorts discouraged, and given back for the
	// added section.
	warnings, err := s.Check(ctx)
	require.NoError(t, err)
	for _, w := range warnings {
		mustExec(t, tdb.db, w.Fix)
	}
	statements, setting = runOn(t, cc, newStore(), settingOf)
	require.Equal(t, []string{sqlstore.DiscourageSorts, "EXPLAIN", "EXPLAIN", "EXPLAIN", sqlstore.RestorePlanner}, planner(statements))
	require.Equal(t, host, setting, "the added section is planned with the host's settings")
	var jit, plans string
	require.NoError(t, db.QueryRow("SELECT current_setting('jit'), current_setting('plan_cache_mode')").Scan(&jit, &plans))
	require.Equal(t, "off", jit, "the session keeps its own setting after the export")
	require.Equal(t, "force_generic_plan", plans, "the session keeps its own setting after the export")
}

// runOn exports jane with an added section reading the planner's
// enable_sort, jit and plan_cache_mode, and returns the statements sent
// and the three settings, "enable_sort jit plan_cache_mode".
func runOn(t *testing.T, cc *countingConnector, st *sqlstore.Store, settingOf string) ([]string, string) {
	t.Helper()
	exp := export.NewExporter(st)
	require.NoError(t, exp.AddSection(sqlstore.Section("setting", settingOf)))
	cc.take()
	var b bytes.Buffer
	_, err := exp.Export(ctxFor(t), &b, export.Request{UserID: "jane", ExportedAt: time.Now()})
	require.NoError(t, err)
	statements := cc.take()
	setting := func(key string) string {
		i := strings.Index(b.String(), `"`+key+`": "`)
		require.Positive(t, i, b.String())
		rest := b.String()[i+len(key)+5:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	return statements, setting("enableSort") + " " + setting("jit") + " " + setting("planCacheMode")
}

// planner keeps the statements about planning, EXPLAIN without its query.
func planner(statements []string) []string {
	var out []string
	for _, s := range statements {
		switch {
		case s == sqlstore.PlannerSettings, s == sqlstore.DiscourageSorts, s == sqlstore.RestoreSort, s == sqlstore.RestorePlanner:
			out = append(out, s)
		case strings.HasPrefix(s, "EXPLAIN "):
			out = append(out, "EXPLAIN")
		}
	}
	return out
}

// TestStreamingFaults (sqlmock, PostgreSQL): a failure of each planning
// step fails the export at the first section's stage, with the
// transaction ended; a plan that sorts leaves the sort setting as it was.
func TestStreamingFaults(t *testing.T) {
	spec := slicesIndex(t, sqlstore.Postgres, "prisma")
	settings := func() *sqlmock.Rows {
		return sqlmock.NewRows([]string{"jit", "sort", "plans", "set_config", "set_config", "set_config"}).AddRow("on", "on", "auto", "off", "force_custom_plan", "off")
	}
	plan := func(line string) *sqlmock.Rows { return sqlmock.NewRows([]string{"QUERY PLAN"}).AddRow(line) }
	indexScan := `Index Scan using "Agent_userId_createdAt_id_idx" on "Agent"`
	for _, c := range []struct {
		name   string
		expect func(m *mocked)
		fails  bool
	}{
		{"setting fails", func(m *mocked) { m.mock.ExpectQuery(sqlstore.DiscourageSorts).WillReturnError(errDriver) }, true},
		{"EXPLAIN fails", func(m *mocked) {
			m.mock.ExpectQuery(sqlstore.DiscourageSorts).WillReturnRows(settings())
			m.mock.ExpectQuery("EXPLAIN " + sqlText[spec].agents).WithArgs(mockUser).WillReturnError(errDriver)
		}, true},
		{"restoring fails", func(m *mocked) {
			m.mock.ExpectQuery(sqlstore.DiscourageSorts).WillReturnRows(settings())
			m.mock.ExpectQuery("EXPLAIN " + sqlText[spec].agents).WithArgs(mockUser).WillReturnRows(plan("Sort"))
			m.mock.ExpectQuery(sqlstore.RestoreSort).WithArgs("on").WillReturnError(errDriver)
		}, true},
		{"a plan that sorts", func(m *mocked) {
			m.mock.ExpectQuery(sqlstore.DiscourageSorts).WillReturnRows(settings())
			m.mock.ExpectQuery("EXPLAIN " + sqlText[spec].agents).WithArgs(mockUser).WillReturnRows(plan(indexScan))
			m.mock.ExpectQuery("EXPLAIN " + sqlText[spec].tasks).WithArgs(mockUser).WillReturnRows(plan("Incremental Sort"))
			m.mock.ExpectQuery(sqlstore.RestoreSort).WithArgs("on").WillReturnRows(sqlmock.NewRows(nil))
		}, false},
		{"an index for every section", func(m *mocked) {
			m.mock.ExpectQuery(sqlstore.DiscourageSorts).WillReturnRows(settings())
			for _, q := range []string{sqlText[spec].agents, sqlText[spec].tasks, sqlText[spec].workflows} {
				m.mock.ExpectQuery("EXPLAIN " + q).WithArgs(mockUser).WillReturnRows(plan(indexScan))
			}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMocked(t, spec)
			sqlstore.SetStreaming(m.store, true)
			m.mock.ExpectBegin()
			m.expectUser().WillReturnRows(m.userRows())
			c.expect(m)
			if c.fails {
				m.mock.ExpectRollback()
			} else {
				m.mock.ExpectQuery(sqlText[spec].agents).WithArgs(m.args()...).WillReturnRows(m.agentRows())
				m.mock.ExpectQuery(sqlText[spec].tasks).WithArgs(m.args()...).WillReturnRows(m.taskRows())
				m.mock.ExpectQuery(sqlText[spec].workflows).WithArgs(m.args()...).WillReturnRows(m.workflowRows())
				m.mock.ExpectCommit()
			}
			_, err := export.NewExporter(m.store).Export(context.Background(), &bytes.Buffer{}, export.Request{UserID: mockUser, ExportedAt: mockAt})
			require.NoError(t, m.mock.ExpectationsWereMet())
			if !c.fails {
				require.NoError(t, err)
				return
			}
			var se *sqlstore.Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, sqlstore.OpAgents, se.Op)
			require.ErrorIs(t, err, errDriver)
		})
	}
}

// TestSectionsPlannedForEachUser (PostgreSQL): the built-in sections'
// prepared statements are planned for the user at every export, never
// with a generic plan, however many exports a connection serves, through
// database/sql's driver interface and through pgxrows. (After five
// executions PostgreSQL may switch a prepared statement to one plan for
// any user, which for a large account read the owner index row by row
// instead of scanning the table: stream.go.)
func TestSectionsPlannedForEachUser(t *testing.T) {
	tdb := openDB(t, sqlstore.Postgres)
	s, w := appTables(t, tdb)
	fillMany(t, tdb, w, "jane", 30)
	for _, c := range []struct {
		name string
		opts []sqlstore.Option
	}{{"database/sql", nil}, {"pgxrows", []sqlstore.Option{pgxrows.Option()}}} {
		t.Run(c.name, func(t *testing.T) {
			db, err := sql.Open("pgx", tdb.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			db.SetMaxOpenConns(1) // one session, whose prepared statements are read below
			st, err := sqlstore.New(db, sqlstore.Postgres, append([]sqlstore.Option{sqlstore.WithLayout(s.Layout())}, c.opts...)...)
			require.NoError(t, err)
			exp := export.NewExporter(st)
			const exports = 8
			for range exports {
				_, err := exp.Export(ctxFor(t), io.Discard, export.Request{UserID: "jane", ExportedAt: time.Now()})
				require.NoError(t, err)
			}
			rows, err := db.QueryContext(ctxFor(t), `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`)
			require.NoError(t, err)
			defer rows.Close()
			n := 0
			for rows.Next() {
				var stmt string
				var generic, custom int64
				require.NoError(t, rows.Scan(&stmt, &generic, &custom))
				if !strings.Contains(stmt, " ORDER BY ") || strings.HasPrefix(stmt, "EXPLAIN ") {
					continue // the user's read, the planner's statements, Check's plans
				}
				require.Zero(t, generic, "a generic plan for %s", stmt)
				require.GreaterOrEqual(t, custom, int64(exports), "%s", stmt)
				n++
			}
			require.NoError(t, rows.Err())
			require.Equal(t, 3, n, "the sections' prepared statements")
		})
	}
}
