package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
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
				fmt.Sprintf("INSERT INTO `Workflow` (`id`, `userId`, `name`, `enabled`, `createdAt`) VALUES (%s, '%s', %s, %s, %s)", id, user,
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
// and returns both documents (or errors), the sections that were read
// packed, and how many odd rows of each were looked up.
func exportBoth(t *testing.T, db *sql.DB) (packed, plain string, packedErr, plainErr error, sections []string, lookups map[string]int) {
	t.Helper()
	lookups = map[string]int{}
	run := func(pack bool) (string, error) {
		s, err := sqlstore.New(db, sqlstore.SQLite)
		require.NoError(t, err)
		sqlstore.SetPacking(s, pack)
		var mu sync.Mutex
		sqlstore.OnRead(s, func(op string, packed bool) {
			mu.Lock()
			defer mu.Unlock()
			require.True(t, pack || !packed, "a section packed with packing off")
			if packed {
				sections = append(sections, op)
			}
		})
		sqlstore.OnLookup(s, func(op string) {
			mu.Lock()
			defer mu.Unlock()
			lookups[op]++
		})
		var buf bytes.Buffer
		_, err = export.NewExporter(s).Export(context.Background(), &buf, export.Request{UserID: "u1", ExportedAt: time.Unix(0, 0)})
		return buf.String(), err
	}
	packed, packedErr = run(true)
	plain, plainErr = run(false)
	return packed, plain, packedErr, plainErr, sections, lookups
}

var allSections = []string{sqlstore.OpAgents, sqlstore.OpScheduledTasks, sqlstore.OpWorkflows}

// TestPackedRowsReadAsPerColumn: a section read packed gives the very
// bytes the per-column reading gives, for every kind of value the columns
// hold, including the odd rows that are looked up per column (a NUL
// inside a value, a flag stored as text) and the NULLs that are not odd
// (a NULL text reads "" either way), and packing is used only where it is
// exact: TEXT columns of tables in a UTF-8 database.
func TestPackedRowsReadAsPerColumn(t *testing.T) {
	n := 700
	odd := map[int]map[string]string{
		0:   {"agent.model": "NULL", "task.name": "char(0)"}, // the first row
		300: {"agent.name": "'nul' || char(0) || 'inside'", "task.enabled": "'1'", "workflow.name": "NULL"},
		301: {"agent.model": "NULL", "task.enabled": "'true'", "workflow.enabled": "'0'"},
		350: {"task.name": "char(0)"},
		699: {"agent.model": "char(0) || char(0)", "workflow.name": "'nul' || char(0)"}, // the last row
	}
	for i := 1; i < n; i += 4 { // a NULL model in a quarter of the agents, as in real data
		if odd[i] == nil {
			odd[i] = map[string]string{"agent.model": "NULL"}
		}
	}
	cases := []struct {
		name     string
		textType string
		odd      map[int]map[string]string
		view     bool
		packs    []string
		lookups  map[string]int
	}{
		{name: "TEXT columns", textType: "TEXT", packs: allSections, lookups: map[string]int{}},
		{name: "TEXT columns, odd rows", textType: "TEXT", odd: odd, packs: allSections, lookups: map[string]int{
			sqlstore.OpAgents: 2, sqlstore.OpScheduledTasks: 3, sqlstore.OpWorkflows: 1}},
		{name: "NOT NULL columns, read without ifnull", textType: "TEXT NOT NULL", odd: map[int]map[string]string{
			0:   {"task.name": "char(0)"},
			300: {"agent.name": "'nul' || char(0) || 'inside'", "task.enabled": "'true'"},
		}, packs: allSections, lookups: map[string]int{sqlstore.OpAgents: 1, sqlstore.OpScheduledTasks: 2}},
		{name: "VARCHAR columns", textType: "VARCHAR(255)", odd: odd, packs: allSections, lookups: map[string]int{
			sqlstore.OpAgents: 2, sqlstore.OpScheduledTasks: 3, sqlstore.OpWorkflows: 1}},
		{name: "untyped columns holding numbers", textType: "", odd: map[int]map[string]string{
			300: {"agent.name": "0.30000000000000004", "task.name": "1e20", "workflow.name": "-0.0"},
		}, lookups: map[string]int{}},
		{name: "NUMERIC columns", textType: "NUMERIC", odd: map[int]map[string]string{300: {"agent.name": "1.5e300"}}, lookups: map[string]int{}},
		{name: "a view in place of a table", textType: "TEXT", odd: odd, view: true, packs: []string{sqlstore.OpScheduledTasks, sqlstore.OpWorkflows},
			lookups: map[string]int{sqlstore.OpScheduledTasks: 3, sqlstore.OpWorkflows: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := packedDB(t, c.textType, false)
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
			packed, plain, perr, err, sections, lookups := exportBoth(t, db)
			require.NoError(t, err)
			require.NoError(t, perr)
			require.Equal(t, plain, packed, "the packed export differs from the per-column one")
			require.ElementsMatch(t, c.packs, sections, "sections read packed")
			require.Equal(t, c.lookups, lookups, "odd rows looked up per column")
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
	fill(t, db, 10, nil)
	_, _, perr, err, sections, _ := exportBoth(t, db)
	require.Empty(t, sections)
	require.Error(t, err)
	require.Equal(t, err.Error(), perr.Error())
}

// TestPackingNeedsARowid: a table without a rowid, or with a column of
// its own named rowid, is read per column (odd rows are found again by
// rowid).
func TestPackingNeedsARowid(t *testing.T) {
	for name, change := range map[string][]string{
		"WITHOUT ROWID": {"DROP INDEX `Workflow_o`", "DROP TABLE `Workflow`",
			"CREATE TABLE `Workflow` (`id` TEXT PRIMARY KEY, `userId` TEXT, `name` TEXT, `enabled` BOOLEAN, `createdAt` DATETIME) WITHOUT ROWID"},
		"a rowid column": {"DROP INDEX `Workflow_o`", "DROP TABLE `Workflow`",
			"CREATE TABLE `Workflow` (`id` TEXT, `userId` TEXT, `name` TEXT, `enabled` BOOLEAN, `createdAt` DATETIME, `rowid` TEXT DEFAULT 'not the rowid')"},
	} {
		t.Run(name, func(t *testing.T) {
			db := packedDB(t, "TEXT", false)
			for _, s := range change {
				_, err := db.Exec(s)
				require.NoError(t, err, s)
			}
			fill(t, db, 20, map[int]map[string]string{5: {"workflow.name": "'a' || char(0) || 'b'"}})
			packed, plain, perr, err, sections, _ := exportBoth(t, db)
			require.NoError(t, err)
			require.NoError(t, perr)
			require.Equal(t, plain, packed)
			require.ElementsMatch(t, []string{sqlstore.OpAgents, sqlstore.OpScheduledTasks}, sections)
		})
	}
}

// TestPackedRowsFailAsPerColumn: a value the per-column reading rejects
// (a NULL or malformed timestamp, a flag of 2) fails the export with the
// same error, stage and records written.
func TestPackedRowsFailAsPerColumn(t *testing.T) {
	n := 300
	at := 200
	for _, odd := range []map[string]string{
		{"agent.createdAt": "NULL"},
		{"agent.updatedAt": "'yesterday'"},
		{"task.enabled": "2"},
		{"task.enabled": "1.5"},
		{"task.enabled": "NULL"},
		{"task.createdAt": "NULL"},
		{"workflow.createdAt": "'2026-02-30T00:00:00Z'"},
	} {
		t.Run(fmt.Sprint(odd), func(t *testing.T) {
			db := packedDB(t, "TEXT", false)
			fill(t, db, n, map[int]map[string]string{at: odd})
			packed, plain, perr, err, _, _ := exportBoth(t, db)
			if _, isNullFlag := odd["task.enabled"]; isNullFlag && odd["task.enabled"] == "NULL" {
				// A NULL flag reads false, per column and looked up alike.
				require.NoError(t, err)
				require.NoError(t, perr)
				require.Equal(t, plain, packed)
				return
			}
			require.Error(t, err)
			require.Error(t, perr)
			require.Equal(t, err.Error(), perr.Error())
		})
	}
}

// TestPackingFollowsTheSchema: the checks are made again when the schema
// version changes, so a table that becomes a view mid-life is read per
// column from the next export on, and one that becomes a table again is
// packed again.
func TestPackingFollowsTheSchema(t *testing.T) {
	db := packedDB(t, "TEXT", false)
	fill(t, db, 30, nil)
	s, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	var packed []string
	sqlstore.OnRead(s, func(op string, p bool) {
		if p {
			packed = append(packed, op)
		}
	})
	exp := func() {
		t.Helper()
		packed = nil
		_, err := export.NewExporter(s).Export(context.Background(), io.Discard, export.Request{UserID: "u1", ExportedAt: time.Unix(0, 0)})
		require.NoError(t, err)
	}
	exp()
	require.Equal(t, allSections, packed)
	for _, stmt := range []string{"ALTER TABLE `Agent` RENAME TO `AgentData`", "CREATE VIEW `Agent` AS SELECT * FROM `AgentData`"} {
		_, err := db.Exec(stmt)
		require.NoError(t, err)
	}
	exp()
	require.Equal(t, []string{sqlstore.OpScheduledTasks, sqlstore.OpWorkflows}, packed)
	for _, stmt := range []string{"DROP VIEW `Agent`", "ALTER TABLE `AgentData` RENAME TO `Agent`"} {
		_, err := db.Exec(stmt)
		require.NoError(t, err)
	}
	exp()
	require.Equal(t, allSections, packed)
}

// The packing checks' SQL on SQLite (the packed queries are in sqlText).
const (
	sqlTableList = "SELECT type, wr FROM pragma_table_list WHERE name = ? COLLATE NOCASE"
	sqlTableInfo = `SELECT name, type, "notnull" FROM pragma_table_info(?)`
)

// TestPackingFaults injects an error at every step of reading the agents
// packed (sqlmock, SQLite): the plan query, the checks of the table, the
// packed query and the lookup of an odd row. A failing or refusing check
// makes the section be read per column, and the export succeeds: packing
// must not add a way to fail. A failing packed query or lookup fails the
// export at the section's stage with the driver's error. Either way each
// section is one query, the transaction is ended, and a complete export
// has every row once and in order. A second export on the same store
// reuses the checks of the schema version it reads.
func TestPackingFaults(t *testing.T) {
	spec := slicesIndex(t, sqlstore.SQLite, "prisma")
	const n, odd = 5, 2 // row odd holds a NUL, and is looked up per column
	at := func(i int) time.Time { return mockAt.Add(-time.Duration(n-i) * time.Minute) }
	plainRow := func(i int) []driver.Value {
		ts := []byte(at(i).Format("2006-01-02 15:04:05.000"))
		name := "name"
		if i == odd {
			name = "na\x00me"
		}
		return []driver.Value{fmt.Sprintf("a%05d", i), name, "m", "running", ts, ts}
	}
	plainRows := func() *sqlmock.Rows {
		r := sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"})
		for i := range n {
			r.AddRow(plainRow(i)...)
		}
		return r
	}
	packedRows := func() *sqlmock.Rows {
		r := sqlmock.NewRows([]string{"packed"})
		for i := range n {
			fields := []string{fmt.Sprint(100 + i)}
			for _, v := range plainRow(i) {
				fields = append(fields, fmt.Sprintf("%s", v))
			}
			r.AddRow(strings.Join(fields, "\x00"))
		}
		return r
	}
	lookupRows := func() *sqlmock.Rows {
		return sqlmock.NewRows([]string{"id", "name", "model", "status", "createdAt", "updatedAt"}).AddRow(plainRow(odd)...)
	}
	planRows := func() *sqlmock.Rows {
		return sqlmock.NewRows([]string{"v", "e", "s"}).AddRow("3.50.4", "UTF-8", int64(7))
	}
	tableInfo := func() *sqlmock.Rows {
		r := sqlmock.NewRows([]string{"name", "type", "notnull"})
		for _, c := range []string{"id", "userId", "name", "model", "status"} {
			r.AddRow(c, "TEXT", int64(0))
		}
		return r.AddRow("createdAt", "DATETIME", int64(0)).AddRow("updatedAt", "DATETIME", int64(0))
	}
	type step int
	const (
		stepPlan step = iota
		stepTableList
		stepTableInfo
		stepPacked
		stepLookup
		none
	)
	faults := []struct {
		name      string
		at        step
		ruin      func(q *sqlmock.ExpectedQuery)
		perColumn bool // the agents are read per column and the export succeeds
	}{
		{"plan query", stepPlan, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"plan row error", stepPlan, func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(planRows().RowError(0, errDriver)) }, true},
		{"old SQLite", stepPlan, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"v", "e", "s"}).AddRow("3.43.2", "UTF-8", int64(7)))
		}, true},
		{"UTF-16", stepPlan, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"v", "e", "s"}).AddRow("3.50.4", "UTF-16le", int64(7)))
		}, true},
		{"table list query", stepTableList, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"table list row error", stepTableList, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"type", "wr"}).AddRow("table", int64(0)).RowError(0, errDriver))
		}, true},
		{"a view", stepTableList, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"type", "wr"}).AddRow("view", int64(0)))
		}, true},
		{"without rowid", stepTableList, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"type", "wr"}).AddRow("table", int64(1)))
		}, true},
		{"table info query", stepTableInfo, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, true},
		{"an untyped name column", stepTableInfo, func(q *sqlmock.ExpectedQuery) {
			q.WillReturnRows(sqlmock.NewRows([]string{"name", "type", "notnull"}).AddRow("id", "TEXT", int64(0)).AddRow("name", "", int64(0)).
				AddRow("model", "TEXT", int64(0)).AddRow("status", "TEXT", int64(0)))
		}, true},
		{"a column named rowid", stepTableInfo, func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(tableInfo().AddRow("RowID", "TEXT", int64(0))) }, true},
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
		{"lookup query", stepLookup, func(q *sqlmock.ExpectedQuery) { q.WillReturnError(errDriver) }, false},
		{"lookup row error", stepLookup, func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(lookupRows().RowError(0, errDriver)) }, false},
		{"lookup close error", stepLookup, func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(lookupRows().CloseError(errDriver)) }, false},
		{"lookup finds no row", stepLookup, func(q *sqlmock.ExpectedQuery) { q.WillReturnRows(sqlmock.NewRows([]string{"id"})) }, false},
		{"no fault", none, nil, false},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			m := newMocked(t, spec)
			sqlstore.SetPacking(m.store, true)
			// The other sections' tables are views: read per column.
			view := func(table string) {
				m.mock.ExpectQuery(sqlTableList).WithArgs(table).WillReturnRows(sqlmock.NewRows([]string{"type", "wr"}).AddRow("view", int64(0)))
			}
			exportOnce := func(f step, ruin func(*sqlmock.ExpectedQuery), perColumn, checks bool) error {
				m.mock.ExpectBegin()
				m.expectUser().WillReturnRows(m.userRows())
				queries := []struct {
					s      step
					expect func() *sqlmock.ExpectedQuery
					rows   *sqlmock.Rows
				}{
					{stepPlan, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlstore.PlanQuery).WithoutArgs() }, planRows()},
					{stepTableList, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlTableList).WithArgs("Agent") },
						sqlmock.NewRows([]string{"type", "wr"}).AddRow("table", int64(0))},
					{stepTableInfo, func() *sqlmock.ExpectedQuery { return m.mock.ExpectQuery(sqlTableInfo).WithArgs("Agent") }, tableInfo()},
					{stepPacked, func() *sqlmock.ExpectedQuery {
						return m.mock.ExpectQuery(sqlText[spec].packed[0]).WithArgs(mockUser)
					}, packedRows()},
					{stepLookup, func() *sqlmock.ExpectedQuery {
						return m.mock.ExpectQuery(sqlText[spec].lookup[0]).WithArgs(int64(100+odd), mockUser)
					}, lookupRows()},
				}
				if !checks { // a second export: the plan's version is known
					queries = append(queries[:1], queries[3:]...)
				}
				for _, q := range queries {
					if q.s == f {
						ruin(q.expect())
						if perColumn {
							if f <= stepPlan || checks && f <= stepTableInfo {
								if f > stepPlan {
									view("ScheduledTask")
									view("Workflow")
								}
							}
							m.mock.ExpectQuery(sqlText[spec].agents).WithArgs(m.args()...).WillReturnRows(plainRows())
						} else {
							m.mock.ExpectRollback()
						}
						break
					}
					q.expect().WillReturnRows(q.rows)
					if q.s == stepTableInfo && checks {
						view("ScheduledTask")
						view("Workflow")
					}
				}
				if f == none || perColumn {
					m.mock.ExpectQuery(sqlText[spec].tasks).WithArgs(m.args()...).WillReturnRows(m.taskRows())
					m.mock.ExpectQuery(sqlText[spec].workflows).WithArgs(m.args()...).WillReturnRows(m.workflowRows())
					m.mock.ExpectCommit()
				}
				var buf bytes.Buffer
				_, err := export.NewExporter(m.store).Export(context.Background(), &buf, export.Request{UserID: mockUser, ExportedAt: mockAt})
				require.NoError(t, m.mock.ExpectationsWereMet(), "each section one query, and the transaction ended")
				if err == nil {
					doc, derr := export.Decode(&buf)
					require.NoError(t, derr)
					require.Len(t, doc.Agents, n)
					for i, a := range doc.Agents {
						require.Equal(t, fmt.Sprintf("a%05d", i), a.ID)
						require.Equal(t, plainRow(i)[1], a.Name)
					}
				}
				return err
			}
			err := exportOnce(f.at, f.ruin, f.perColumn, true)
			if f.at == none || f.perColumn {
				require.NoError(t, err)
			} else {
				var ee *export.Error
				require.ErrorAs(t, err, &ee)
				require.Equal(t, export.StageAgents, ee.Stage)
				var se *sqlstore.Error
				require.ErrorAs(t, err, &se)
				require.Equal(t, sqlstore.OpAgents, se.Op)
				if f.name != "lookup finds no row" {
					require.ErrorIs(t, err, errDriver)
				}
			}
			if f.at == none {
				// The same schema version: no checks, the agents packed.
				require.NoError(t, exportOnce(none, nil, false, false))
			}
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
