package sqlstore_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// TestConsistentWhileRowsMove has a writer move records from one section
// to another (delete from one table, insert into the next, in one
// transaction) as fast as it can, while exports run. Every export must
// see each record exactly once: a store that read its sections at
// different moments would see a record twice (in both tables) or not at
// all.
func TestConsistentWhileRowsMove(t *testing.T) {
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			s, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
			ctx := ctxFor(t)
			const userID, records = "mover", 30
			require.NoError(t, w.PutUser(ctx, export.User{ID: userID, Email: "m@example.com", Role: "user"}))
			at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			for i := range records {
				require.NoError(t, w.PutAgent(ctx, userID, export.Agent{ID: fmt.Sprintf("r%02d", i), Name: "n", CreatedAt: at, UpdatedAt: at}))
			}
			l := w.Layout
			q := func(name string) string { return quoteTable(tdb, name) }
			mark := func(n int) string {
				if d == sqlstore.Postgres {
					return fmt.Sprintf("$%d", n)
				}
				return "?"
			}
			// section k of record i: 0 agents, 1 scheduled tasks, 2 workflows.
			where := make([]int, records)
			move := func(i int) error {
				from, to := where[i], (where[i]+1)%3
				tx, err := tdb.db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				id := fmt.Sprintf("r%02d", i)
				tables := []string{l.Agent.Table, l.ScheduledTask.Table, l.Workflow.Table}
				if _, err := tx.ExecContext(ctx, "DELETE FROM "+q(tables[from])+" WHERE "+quoteIdent(tdb, "id")+" = "+mark(1), id); err != nil {
					return err
				}
				ts := w.Time(at)
				var stmt string
				var args []any
				switch to {
				case 0:
					stmt, args = "INSERT INTO "+q(l.Agent.Table)+" (id, "+quoteIdent(tdb, "userId")+", name, status, "+quoteIdent(tdb, "createdAt")+", "+quoteIdent(tdb, "updatedAt")+") VALUES ("+mark(1)+", "+mark(2)+", 'n', 's', "+mark(3)+", "+mark(4)+")", []any{id, userID, ts, ts}
				case 1:
					stmt, args = "INSERT INTO "+q(l.ScheduledTask.Table)+" (id, "+quoteIdent(tdb, "userId")+", name, "+quoteIdent(tdb, "cronSchedule")+", "+quoteIdent(tdb, "createdAt")+") VALUES ("+mark(1)+", "+mark(2)+", 'n', 'c', "+mark(3)+")", []any{id, userID, ts}
				case 2:
					stmt, args = "INSERT INTO "+q(l.Workflow.Table)+" (id, "+quoteIdent(tdb, "userId")+", name, "+quoteIdent(tdb, "createdAt")+") VALUES ("+mark(1)+", "+mark(2)+", 'n', "+mark(3)+")", []any{id, userID, ts}
				}
				if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
					return err
				}
				if err := tx.Commit(); err != nil {
					return err
				}
				where[i] = to
				return nil
			}

			stop := make(chan struct{})
			var moves atomic.Int64
			var wg sync.WaitGroup
			var writeErr error
			wg.Go(func() {
				for i := 0; ; i = (i + 7) % records {
					select {
					case <-stop:
						return
					default:
					}
					if err := move(i); err != nil {
						writeErr = err
						return
					}
					moves.Add(1)
				}
			})
			views := 0
			deadline := time.Now().Add(2 * time.Second)
			for ; views < 200 && time.Now().Before(deadline) || views < 5; views++ {
				var seen []string
				err := s.View(ctx, userID, func(tx export.Tx) error {
					for a, err := range tx.Agents(ctx) {
						if err != nil {
							return err
						}
						seen = append(seen, a.ID)
					}
					time.Sleep(time.Millisecond) // let the writer move rows between sections
					for x, err := range tx.ScheduledTasks(ctx) {
						if err != nil {
							return err
						}
						seen = append(seen, x.ID)
					}
					time.Sleep(time.Millisecond)
					for x, err := range tx.Workflows(ctx) {
						if err != nil {
							return err
						}
						seen = append(seen, x.ID)
					}
					return nil
				})
				require.NoError(t, err)
				slices.Sort(seen)
				if len(seen) != records || len(slices.Compact(slices.Clone(seen))) != records {
					t.Fatalf("view %d saw %d records (%d distinct), want each of %d exactly once: the sections are not one point in time", views, len(seen), len(slices.Compact(slices.Clone(seen))), records)
				}
			}
			close(stop)
			wg.Wait()
			require.NoError(t, writeErr)
			if moves.Load() < int64(views) {
				t.Logf("only %d moves during %d views", moves.Load(), views)
			}
			if moves.Load() == 0 {
				t.Fatal("the writer moved nothing: the test proves nothing")
			}
			t.Logf("%d views, %d moves", views, moves.Load())
		})
	}
}

// TestCheck: Check passes on the right tables and, on a layout naming a
// missing table or column, fails naming the step, as an export would.
func TestCheck(t *testing.T) {
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			s, _ := tdb.setup(t, sqlstore.SnakeCaseLayout(), sqlfixture.ISOText)
			ctx := ctxFor(t)
			warnings, err := s.Check(ctx)
			require.NoError(t, err)
			require.Empty(t, warnings, "Schema's tables have the index every section's read needs")

			l := s.Layout()
			l.Workflow.CreatedAt = "creation_time"
			broken, err := sqlstore.New(tdb.db, d, sqlstore.WithLayout(l))
			require.NoError(t, err)
			_, err = broken.Check(ctx)
			var se *sqlstore.Error
			require.ErrorAs(t, err, &se, "%v", err)
			require.Equal(t, sqlstore.OpWorkflows, se.Op)

			l = s.Layout()
			l.User.Table = tdb.schema + "accounts"
			broken, err = sqlstore.New(tdb.db, d, sqlstore.WithLayout(l))
			require.NoError(t, err)
			_, err = broken.Check(ctx)
			require.ErrorAs(t, err, &se)
			require.Equal(t, sqlstore.OpUser, se.Op)

			// The same mistake in an export: the stage, not the driver's text.
			_, err = export.NewExporter(broken).Export(ctx, &strings.Builder{}, export.Request{UserID: "u", ExportedAt: time.Now()})
			var ee *export.Error
			require.ErrorAs(t, err, &ee)
			require.Equal(t, export.StageUser, ee.Stage)
		})
	}
}

// TestPostgresTimestampKinds reads timestamp(3) holding UTC and
// timestamptz, with a session time zone far from UTC, and an ICU
// collation on the ID columns: the instants and the byte order of IDs
// are unchanged.
func TestPostgresTimestampKinds(t *testing.T) {
	tdb := openDB(t, sqlstore.Postgres)
	ctx := ctxFor(t)
	var icu bool
	require.NoError(t, tdb.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'en-US-x-icu')`).Scan(&icu))
	collate := ""
	if icu {
		collate = ` COLLATE "en-US-x-icu"`
	} else {
		t.Log("this PostgreSQL has no ICU collations; the ID columns keep the database's default")
	}
	schema := strings.TrimSuffix(tdb.schema, ".")
	for _, stmt := range []string{
		`CREATE TABLE ` + schema + `.u (id TEXT` + collate + ` PRIMARY KEY, email TEXT, name TEXT, plan TEXT, role TEXT, code TEXT, credits INTEGER)`,
		`CREATE TABLE ` + schema + `.a (id TEXT` + collate + ` PRIMARY KEY, uid TEXT, name TEXT, model TEXT, status TEXT, created TIMESTAMPTZ(6), updated TIMESTAMP(3))`,
		`CREATE TABLE ` + schema + `.t (id TEXT` + collate + ` PRIMARY KEY, uid TEXT, name TEXT, cron TEXT, enabled BOOLEAN, created TIMESTAMPTZ)`,
		`CREATE TABLE ` + schema + `.w (id TEXT` + collate + ` PRIMARY KEY, uid TEXT, name TEXT, enabled BOOLEAN, created TIMESTAMP(3))`,
	} {
		mustExec(t, tdb.db, stmt)
	}
	l := sqlstore.Layout{
		User:          sqlstore.UserTable{Table: schema + ".u", ID: "id", Email: "email", Name: "name", Plan: "plan", Role: "role", ReferralCode: "code", ReferralCredits: "credits"},
		Agent:         sqlstore.AgentTable{Table: schema + ".a", ID: "id", UserID: "uid", Name: "name", Model: "model", Status: "status", CreatedAt: "created", UpdatedAt: "updated"},
		ScheduledTask: sqlstore.ScheduledTaskTable{Table: schema + ".t", ID: "id", UserID: "uid", Name: "name", CronSchedule: "cron", Enabled: "enabled", CreatedAt: "created"},
		Workflow:      sqlstore.WorkflowTable{Table: schema + ".w", ID: "id", UserID: "uid", Name: "name", Enabled: "enabled", CreatedAt: "created"},
	}
	// Values written in a session far from UTC: timestamptz takes the
	// offset into account, timestamp(3) keeps the UTC wall clock as given.
	conn, err := tdb.db.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `SET TIME ZONE 'Asia/Kolkata'`)
	require.NoError(t, err)
	exec := func(stmt string) {
		_, err := conn.ExecContext(ctx, strings.ReplaceAll(stmt, "S.", schema+"."))
		require.NoError(t, err, stmt)
	}
	exec(`INSERT INTO S.u VALUES ('u1', 'e', NULL, NULL, 'user', NULL, 0)`)
	// timestamptz "2026-03-01 14:30:00.1239+05:30" is 09:00:00.1239Z; ties
	// on time are broken by byte order (B before a; ICU puts a first).
	exec(`INSERT INTO S.a VALUES ('a', 'u1', 'n', NULL, 's', '2026-03-01 14:30:00.1239+05:30', '2026-03-01 09:00:00.123'),
		('B', 'u1', 'n', NULL, 's', '2026-03-01 09:00:00.1239Z', '2026-03-01 09:00:00.999'),
		('0', 'u1', 'n', NULL, 's', '2026-03-01 14:30:00.1238', '2026-03-01 09:00:00')`)
	exec(`INSERT INTO S.t VALUES ('t1', 'u1', 'n', 'c', true, '2026-03-01 14:30:00')`)
	exec(`INSERT INTO S.w VALUES ('w1', 'u1', 'n', false, '2026-03-01 09:00:00.456')`)
	conn.Close()

	s, err := sqlstore.New(tdb.db, sqlstore.Postgres, sqlstore.WithLayout(l))
	require.NoError(t, err)
	_, err = s.Check(ctx)
	require.NoError(t, err)
	doc, err := export.ReadDocument(ctx, s, "u1", time.Now())
	require.NoError(t, err)
	var ids []string
	for _, a := range doc.Agents {
		ids = append(ids, a.ID+" "+export.FormatTime(a.CreatedAt)+" "+export.FormatTime(a.UpdatedAt))
	}
	require.Equal(t, []string{
		"0 2026-03-01T09:00:00.123Z 2026-03-01T09:00:00.000Z", // 14:30:00.1238 in Kolkata: .1238 < .1239
		"B 2026-03-01T09:00:00.123Z 2026-03-01T09:00:00.999Z",
		"a 2026-03-01T09:00:00.123Z 2026-03-01T09:00:00.123Z",
	}, ids)
	require.Equal(t, "2026-03-01T09:00:00.000Z", export.FormatTime(doc.ScheduledTasks[0].CreatedAt))
	require.Equal(t, "2026-03-01T09:00:00.456Z", export.FormatTime(doc.Workflows[0].CreatedAt))
}

// TestMySQLParseTime: with parseTime=true in the DSN the driver hands
// over time.Time rather than text; the export is the same.
func TestMySQLParseTime(t *testing.T) {
	dsn := os.Getenv(mysqlEnv)
	if dsn == "" {
		t.Skipf("MySQL/MariaDB tests skipped: set %s; .ci/run does", mysqlEnv)
	}
	tdb := openDB(t, sqlstore.MySQL)
	s, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
	ctx := ctxFor(t)
	at := time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)
	require.NoError(t, w.PutUser(ctx, export.User{ID: "u", Role: "user"}))
	require.NoError(t, w.PutAgent(ctx, "u", export.Agent{ID: "a", CreatedAt: at, UpdatedAt: at.Add(time.Hour)}))
	plain, err := export.ReadDocument(ctx, s, "u", at)
	require.NoError(t, err)

	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := sql.Open("mysql", dsn+sep+"parseTime=true&loc=UTC")
	require.NoError(t, err)
	defer db.Close()
	parsed, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithLayout(s.Layout()))
	require.NoError(t, err)
	viaTime, err := export.ReadDocument(ctx, parsed, "u", at)
	require.NoError(t, err)
	require.Equal(t, string(plain.Bytes()), string(viaTime.Bytes()))
	require.Equal(t, "2026-03-01T09:00:00.123Z", export.FormatTime(viaTime.Agents[0].CreatedAt))
}

// TestSQLiteTimestampForms reads an SQLite file whose columns each hold
// one of the forms applications write (ISO text with and without T, zone
// and fraction, Go's time.String, integer milliseconds, and the DATETIME
// default), through a DSN that asks the driver to move zone-less times
// into local time: every one reads as the same instant.
func TestSQLiteTimestampForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forms.db")
	tdb := openSQLite(t, path)
	s, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
	ctx := ctxFor(t)
	require.NoError(t, w.PutUser(ctx, export.User{ID: "u", Role: "user"}))
	forms := map[string]any{
		"a-iso-space":     "2026-03-01 09:00:00",
		"b-iso-t-ms":      "2026-03-01T09:00:00.000",
		"c-iso-zulu":      "2026-03-01T09:00:00.000Z",
		"d-iso-offset":    "2026-03-01T11:00:00+02:00",
		"e-iso-micro-off": "2026-03-01 04:00:00.000000-05:00",
		"f-go-string":     "2026-03-01 10:00:00 +0100 CET",
		"g-millis":        int64(1772355600000),
		"h-millis-text":   "1772355600000",
		"i-minutes":       "2026-03-01 09:00",
	}
	for id, v := range forms {
		mustExec(t, tdb.db, `INSERT INTO "Agent" (id, "userId", name, status, "createdAt", "updatedAt") VALUES (?, 'u', 'n', 's', '2026-03-01 09:00:00', ?)`, id, v)
	}
	// These DSN options have the driver parse times itself, reading
	// zone-less text in New York time and integers as time too, and
	// begin transactions IMMEDIATE: the store must not be swayed.
	db, err := sql.Open("sqlite", "file:"+path+"?_timezone=America/New_York&_inttotime=1&_texttotime=1&_txlock=immediate")
	require.NoError(t, err)
	defer db.Close()
	local, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	for _, store := range []*sqlstore.Store{s, local} {
		doc, err := export.ReadDocument(ctx, store, "u", time.Now())
		require.NoError(t, err)
		require.Len(t, doc.Agents, len(forms))
		for _, a := range doc.Agents {
			require.Equal(t, "2026-03-01T09:00:00.000Z", export.FormatTime(a.UpdatedAt), "agent %s (%v)", a.ID, forms[a.ID])
		}
		// Same createdAt everywhere: ordered by ID in byte order.
		require.True(t, slices.IsSortedFunc(doc.Agents, func(a, b export.Agent) int { return strings.Compare(a.ID, b.ID) }))
	}

	// A value in no supported form fails the export, naming the section.
	mustExec(t, tdb.db, `INSERT INTO "Agent" (id, "userId", name, status, "createdAt", "updatedAt") VALUES ('z', 'u', 'n', 's', '2026-03-01 09:00:00', 'next tuesday')`)
	_, err = export.ReadDocument(ctx, s, "u", time.Now())
	var se *sqlstore.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, sqlstore.OpAgents, se.Op)
	require.ErrorContains(t, err, "next tuesday")
	require.False(t, errors.Is(err, export.ErrUserNotFound))
}
