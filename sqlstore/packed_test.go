package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// packedDB creates an SQLite file with the Prisma layout, the text
// columns declared as textType, and, when utf16 is set, UTF-16 text.
func packedDB(t *testing.T, textType string, utf16 bool) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "packed.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // the encoding pragma and the tables on one connection
	stmts := []string{
		"CREATE TABLE `User` (`id` TEXT PRIMARY KEY, `email` TEXT, `name` TEXT, `plan` TEXT, `role` TEXT, `referralCode` TEXT, `referralCredits` INTEGER)",
		fmt.Sprintf("CREATE TABLE `Agent` (`id` %[1]s, `userId` TEXT, `name` %[1]s, `model` %[1]s, `status` %[1]s, `createdAt` DATETIME, `updatedAt` DATETIME)", textType),
		fmt.Sprintf("CREATE TABLE `ScheduledTask` (`id` %[1]s, `userId` TEXT, `name` %[1]s, `cronSchedule` %[1]s, `enabled` BOOLEAN, `createdAt` DATETIME)", textType),
		fmt.Sprintf("CREATE TABLE `Workflow` (`id` %[1]s, `userId` TEXT, `name` %[1]s, `enabled` BOOLEAN, `createdAt` DATETIME)", textType),
		"CREATE INDEX `Agent_o` ON `Agent` (`userId`, `createdAt`, `id`)",
		"CREATE INDEX `ScheduledTask_o` ON `ScheduledTask` (`userId`, `createdAt`, `id`)",
		"CREATE INDEX `Workflow_o` ON `Workflow` (`userId`, `createdAt`, `id`)",
	}
	if utf16 {
		stmts = append([]string{"PRAGMA encoding = 'UTF-16le'"}, stmts...)
	}
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
	return db
}

// fill writes n records per section for u1 and a few for u2, with values
// of every kind a text, timestamp or flag column may hold, and the given
// odd rows: index -> column -> SQL expression replacing the value.
func fill(t *testing.T, db *sql.DB, n int, odd map[int]map[string]string) {
	t.Helper()
	tx, err := db.Begin()
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.Exec("INSERT INTO `User` VALUES ('u1', 'u1@example.com', 'U', NULL, 'user', NULL, 0), ('u2', 'u2@example.com', NULL, NULL, 'user', NULL, 0)")
	require.NoError(t, err)
	names := []string{"'plain'", "''", "'Résumé 日報'", `'say "hi" \ bye'`, "'tab' || char(9) || 'nl' || char(10)", "x'4142ff'", "'<&>'", "'" + strings.Repeat("long ", 60) + "'"}
	times := []string{"'2026-03-01T09:00:00.123Z'", "1772355600123", "'2026-03-01 11:00:00.123456+02:00'", "'2026-03-01 09:00'"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		// One stored form per column, as applications store them (SQLite
		// orders numbers before text).
		at := fmt.Sprintf("'%s'", base.Add(time.Duration(i)*time.Minute).Format("2006-01-02T15:04:05.000Z"))
		atMillis := fmt.Sprint(base.Add(time.Duration(i) * time.Minute).UnixMilli())
		v := func(col, def string) string {
			if e, ok := odd[i][col]; ok {
				return e
			}
			return def
		}
		for _, user := range []string{"u1", "u2"} {
			if user == "u2" && i%50 != 0 {
				continue
			}
			id := fmt.Sprintf("'%s-%06d'", user, i)
			stmts := []string{
				fmt.Sprintf("INSERT INTO `Agent` VALUES (%s, '%s', %s, %s, 'running', %s, %s)", id, user,
					v("agent.name", names[i%len(names)]), v("agent.model", "'gpt-4o'"), v("agent.createdAt", at), v("agent.updatedAt", times[i%len(times)])),
				fmt.Sprintf("INSERT INTO `ScheduledTask` VALUES (%s, '%s', %s, '0 9 * * *', %s, %s)", id, user,
					v("task.name", names[(i+3)%len(names)]), v("task.enabled", fmt.Sprint(i%2)), v("task.createdAt", atMillis)),
				fmt.Sprintf("INSERT INTO `Workflow` VALUES (%s, '%s', %s, %s, %s)", id, user,
					v("workflow.name", names[(i+5)%len(names)]), v("workflow.enabled", fmt.Sprint((i/3)%2)), v("workflow.createdAt", at)),
			}
			for _, s := range stmts {
				_, err := tx.Exec(s)
				require.NoError(t, err, s)
			}
		}
	}
	require.NoError(t, tx.Commit())
}

// exportBoth exports u1 packed where possible and strictly per column,
// and returns both documents (or errors) and the sections that packed.
func exportBoth(t *testing.T, db *sql.DB) (packed, plain string, packedErr, plainErr error, sections []string) {
	t.Helper()
	run := func(pack bool) (string, error) {
		s, err := sqlstore.New(db, sqlstore.SQLite)
		require.NoError(t, err)
		sqlstore.SetPacking(s, pack)
		var mu sync.Mutex
		sqlstore.OnPack(s, func(op string) {
			mu.Lock()
			defer mu.Unlock()
			require.True(t, pack, "a section packed with packing off")
			sections = append(sections, op)
		})
		var buf bytes.Buffer
		_, err = export.NewExporter(s).Export(context.Background(), &buf, export.Request{UserID: "u1", ExportedAt: time.Unix(0, 0)})
		return buf.String(), err
	}
	packed, packedErr = run(true)
	plain, plainErr = run(false)
	return packed, plain, packedErr, plainErr, sections
}

var allSections = []string{sqlstore.OpAgents, sqlstore.OpScheduledTasks, sqlstore.OpWorkflows}

// TestPackedRowsReadAsPerColumn: a large section read packed gives the
// very bytes the per-column reading gives, for every kind of value the
// columns hold, including the rows that must be read per column again (a
// NUL inside a value, a NULL, a flag stored as text), and only where
// packing is exact: TEXT columns of tables in a UTF-8 database.
func TestPackedRowsReadAsPerColumn(t *testing.T) {
	n := sqlstore.PackAfter + 700
	tail := sqlstore.PackAfter + 300 // odd rows come after the switch
	odd := map[int]map[string]string{
		tail:      {"agent.name": "'nul' || char(0) || 'inside'", "task.enabled": "'1'", "workflow.name": "NULL"},
		tail + 1:  {"agent.model": "NULL"},
		tail + 50: {"task.name": "char(0)"},
	}
	cases := []struct {
		name     string
		textType string
		utf16    bool
		odd      map[int]map[string]string
		view     bool
		packs    []string
	}{
		{name: "TEXT columns", textType: "TEXT", packs: allSections},
		{name: "TEXT columns, odd rows after the switch", textType: "TEXT", odd: odd, packs: allSections},
		{name: "VARCHAR columns", textType: "VARCHAR(255)", odd: odd, packs: allSections},
		{name: "untyped columns holding numbers", textType: "", odd: map[int]map[string]string{
			tail: {"agent.name": "0.30000000000000004", "task.name": "1e20", "workflow.name": "-0.0"},
		}},
		{name: "NUMERIC columns", textType: "NUMERIC", odd: map[int]map[string]string{tail: {"agent.name": "1.5e300"}}},

		{name: "a view in place of a table", textType: "TEXT", odd: odd, view: true, packs: []string{sqlstore.OpScheduledTasks, sqlstore.OpWorkflows}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := packedDB(t, c.textType, c.utf16)
			fill(t, db, n, c.odd)
			if c.view {
				for _, s := range []string{
					"ALTER TABLE `Agent` RENAME TO `AgentData`",
					"CREATE VIEW `Agent` AS SELECT * FROM `AgentData`",
				} {
					_, err := db.Exec(s)
					require.NoError(t, err)
				}
			}
			packed, plain, perr, err, sections := exportBoth(t, db)
			require.NoError(t, err)
			require.NoError(t, perr)
			require.Equal(t, plain, packed, "the packed export differs from the per-column one")
			require.ElementsMatch(t, c.packs, sections, "sections read packed")
			doc, err := export.Decode(strings.NewReader(packed))
			require.NoError(t, err)
			require.Len(t, doc.Agents, n)
			require.Len(t, doc.Workflows, n)
			for _, w := range doc.Workflows {
				require.True(t, strings.HasPrefix(w.ID, "u1-"), "another user's row: %s", w.ID)
			}
		})
	}
}

// TestPackingNeedsUTF8: a UTF-16 database is read per column. (There the
// per-column reading itself fails on timestamps stored as text, which
// CAST(... AS BLOB) gives in UTF-16: a limitation of the store, noted in
// the package doc.)
func TestPackingNeedsUTF8(t *testing.T) {
	db := packedDB(t, "TEXT", true)
	fill(t, db, sqlstore.PackAfter+10, nil)
	_, _, perr, err, sections := exportBoth(t, db)
	require.Empty(t, sections)
	require.Error(t, err)
	require.Equal(t, err.Error(), perr.Error())
}

// TestPackedRowsFailAsPerColumn: a value the per-column reading rejects
// (a NULL or malformed timestamp, a flag of 2) fails the export with the
// same error, stage and records written when it comes after the switch.
func TestPackedRowsFailAsPerColumn(t *testing.T) {
	n := sqlstore.PackAfter + 200
	at := sqlstore.PackAfter + 100
	for _, odd := range []map[string]string{
		{"agent.createdAt": "NULL"},
		{"agent.updatedAt": "'yesterday'"},
		{"task.enabled": "2"},
		{"task.enabled": "1.5"},
		{"task.createdAt": "NULL"},
		{"workflow.createdAt": "'2026-02-30T00:00:00Z'"},
	} {
		t.Run(fmt.Sprint(odd), func(t *testing.T) {
			db := packedDB(t, "TEXT", false)
			fill(t, db, n, map[int]map[string]string{at: odd})
			_, _, perr, err, _ := exportBoth(t, db)
			require.Error(t, err)
			require.Error(t, perr)
			require.Equal(t, err.Error(), perr.Error())
		})
	}
}

// TestSmallSectionsNeverPack: up to PackAfter rows nothing is checked or
// switched.
func TestSmallSectionsNeverPack(t *testing.T) {
	db := packedDB(t, "TEXT", false)
	fill(t, db, sqlstore.PackAfter, nil)
	packed, plain, perr, err, sections := exportBoth(t, db)
	require.NoError(t, err)
	require.NoError(t, perr)
	require.Equal(t, plain, packed)
	require.Empty(t, sections)
}

// The packing checks' SQL on SQLite (the packed queries are in sqlText).
const (
	sqlVersion   = "SELECT sqlite_version(), (SELECT encoding FROM pragma_encoding)"
	sqlTableList = "SELECT type FROM pragma_table_list WHERE name = ? COLLATE NOCASE"
	sqlTableInfo = "SELECT name, type FROM pragma_table_info(?)"
)

// TestPackingFaults injects an error at every step of switching a large
// section to packed reading (sqlmock, SQLite). A failing check (version,
// table list, column types) makes the section go on per column, and the
// export succeeds: packing must not add a way to fail. A failing packed
// query fails the export at the section's stage with the driver's error.
// Either way the transaction is ended, and a complete export has every
// row once and in order.
func TestPackingFaults(t *testing.T) {
	spec := slicesIndex(t, sqlstore.SQLite, "prisma")
	n := sqlstore.PackAfter + 3
	at := func(i int) time.Time { return mockAt.Add(-time.Duration(n-i) * time.Minute) }
	plainRows := func() *sqlmock.Rows {
		r := sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"})
		for i := range n {
			ts := []byte(at(i).Format("2006-01-02 15:04:05.000"))
			r.AddRow(fmt.Sprintf("a%05d", i), "name", "m", "running", ts, ts)
		}
		return r
	}
	packedRows := func() *sqlmock.Rows { // from the OFFSET on
		r := sqlmock.NewRows([]string{"packed"})
		for i := sqlstore.PackAfter; i < n; i++ {
			ts := at(i).Format("2006-01-02 15:04:05.000")
			r.AddRow(strings.Join([]string{fmt.Sprintf("a%05d", i), "name", "m", "running", ts, ts}, "\x00"))
		}
		return r
	}
	tableInfo := func() *sqlmock.Rows {
		r := sqlmock.NewRows([]string{"name", "type"})
		for _, c := range []string{"id", "userId", "name", "model", "status"} {
			r.AddRow(c, "TEXT")
		}
		return r.AddRow("createdAt", "DATETIME").AddRow("updatedAt", "DATETIME")
	}
	type step int
	const (
		stepVersion step = iota
		stepTableList
		stepTableInfo
		stepPacked
		none
	)
	faults := []struct {
		name      string
		at        step
		ruin      func(q *sqlmock.ExpectedQuery)
		perColumn bool // the export goes on per column and succeeds
	}{
		{"version query", stepVersion, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"old SQLite", stepVersion, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"v", "e"}).AddRow("3.43.2", "UTF-8"))
		}, true},
		{"table list query", stepTableList, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"table list row error", stepTableList, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"type"}).AddRow("table").RowError(0, errDriver))
		}, true},
		{"a view", stepTableList, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"type"}).AddRow("view"))
		}, true},
		{"table info query", stepTableInfo, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"an untyped name column", stepTableInfo, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"name", "type"}).AddRow("id", "TEXT").AddRow("name", "").
				AddRow("model", "TEXT").AddRow("status", "TEXT"))
		}, true},
		{"packed query", stepPacked, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, false},
		{"packed row error on the first row", stepPacked, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(packedRows().RowError(0, errDriver))
		}, false},
		{"packed row error after a row", stepPacked, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(packedRows().RowError(1, errDriver))
		}, false},
		{"packed close error", stepPacked, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(packedRows().CloseError(errDriver))
		}, false},
		{"no fault", none, nil, false},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			m := newMocked(t, spec)
			m.mock.ExpectBegin()
			m.expectUser().WillReturnRows(m.userRows())
			m.mock.ExpectQuery(sqlText[spec].agents).WithArgs(m.args()...).WillReturnRows(plainRows())
			queries := []struct {
				s      step
				expect func() *sqlmock.ExpectedQuery
				rows   *sqlmock.Rows
			}{
				{stepVersion, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlVersion).WithoutArgs() },
					sqlmock.NewRows([]string{"v", "e"}).AddRow("3.50.4", "UTF-8")},
				{stepTableList, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlTableList).WithArgs("Agent") },
					sqlmock.NewRows([]string{"type"}).AddRow("table")},
				{stepTableInfo, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlTableInfo).WithArgs("Agent") }, tableInfo()},
				{stepPacked, func() *sqlmock.ExpectedQuery {
					return m.mock.ExpectQuery(sqlText[spec].packed[0]).WithArgs(mockUser, sqlstore.PackAfter)
				}, packedRows()},
			}
			for _, q := range queries {
				if q.s == f.at {
					f.ruin(q.expect())
					if f.perColumn {
						// The section is read per column from the start
						// again, past the rows already handed on.
						m.mock.ExpectQuery(sqlText[spec].agents).WithArgs(m.args()...).WillReturnRows(plainRows())
					} else {
						m.mock.ExpectRollback()
					}
					break
				}
				q.expect().WillReturnRows(q.rows)
			}
			if f.at == none || f.perColumn {
				m.mock.ExpectQuery(sqlText[spec].tasks).WithArgs(m.args()...).WillReturnRows(m.taskRows())
				m.mock.ExpectQuery(sqlText[spec].workflows).WithArgs(m.args()...).WillReturnRows(m.workflowRows())
				m.mock.ExpectCommit()
			}
			var buf bytes.Buffer
			_, err := export.NewExporter(m.store).Export(context.Background(), &buf, export.Request{UserID: mockUser, ExportedAt: mockAt})
			require.NoError(t, m.mock.ExpectationsWereMet(), "the transaction must be ended")
			if f.at == none || f.perColumn {
				require.NoError(t, err)
				doc, err := export.Decode(&buf)
				require.NoError(t, err)
				require.Len(t, doc.Agents, n)
				for i, a := range doc.Agents {
					require.Equal(t, fmt.Sprintf("a%05d", i), a.ID)
				}
				return
			}
			var ee *export.Error
			require.ErrorAs(t, err, &ee)
			require.Equal(t, export.StageAgents, ee.Stage)
			var se *sqlstore.Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, sqlstore.OpAgents, se.Op)
			require.ErrorIs(t, err, errDriver)
		})
	}
}

func slicesIndex(t *testing.T, d sqlstore.Dialect, layout string) int {
	for i, c := range sqlText {
		if c.dialect == d && c.layout == layout {
			return i
		}
	}
	t.Fatalf("no SQL spec for %v %s", d, layout)
	return -1
}
