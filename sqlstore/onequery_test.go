package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// countingConnector opens connections of a driver that record every
// statement sent to the database, as the driver receives it.
type countingConnector struct {
	d   driver.Driver
	dsn string

	mu    sync.Mutex
	stmts []string
}

func (c *countingConnector) Connect(context.Context) (driver.Conn, error) {
	ci, err := c.d.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: ci, c: c}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.d }

func (c *countingConnector) record(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stmts = append(c.stmts, query)
}

// take returns the statements recorded since the last take.
func (c *countingConnector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stmts
	c.stmts = nil
	return s
}

type countingConn struct {
	driver.Conn
	c *countingConnector
}

func (cc *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return cc.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// QueryContext records a query the driver runs directly; one it skips
// (go-sql-driver/mysql, for arguments) is recorded when it is prepared.
func (cc *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := cc.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		cc.c.record(query)
	}
	return rows, err
}

func (cc *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	cc.c.record(query)
	if p, ok := cc.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return cc.Conn.Prepare(query)
}

// TestOneQueryPerSection counts the statements that reach the driver: on
// every database, each section of an export is read by one execution of
// one query, whatever the data holds (NULLs in nullable and in
// supposedly non-null places, and on SQLite NULs inside values and a flag
// stored as text, which are read again by one keyed lookup per odd row
// and nothing else). On SQLite the packing checks run on the store's
// first export and again only after the schema changes; each export
// reads the schema version once.
func TestOneQueryPerSection(t *testing.T) {
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			s, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
			ctx := ctxFor(t)
			const n = 1500
			fillMany(t, tdb, w, "u1", n)
			fillMany(t, tdb, w, "u2", 10)
			l := s.Layout()
			table := func(name string) string { return quoteTable(tdb, name) }
			mustExec(t, tdb.db, "UPDATE "+table(l.Agent.Table)+" SET "+quoteIdent(tdb, "model")+" = NULL WHERE "+quoteIdent(tdb, "name")+" LIKE '%3'")
			odd := map[string]int{}
			if d == sqlstore.SQLite {
				// Only SQLite's packed rows have odd rows; PostgreSQL's text
				// cannot hold a NUL at all.
				mustExec(t, tdb.db, "UPDATE `Agent` SET `name` = 'nul' || char(0) || `name` WHERE `name` LIKE '%17'")
				mustExec(t, tdb.db, "UPDATE `Workflow` SET `enabled` = 'true' WHERE `name` LIKE '%99'")
				odd[sqlstore.OpAgents], odd[sqlstore.OpWorkflows] = 15, 15
			}

			cc := &countingConnector{d: tdb.db.Driver(), dsn: tdb.dsn}
			db := sql.OpenDB(cc)
			t.Cleanup(func() { db.Close() })
			counted, err := sqlstore.New(db, d, sqlstore.WithLayout(l))
			if err != nil {
				t.Fatal(err)
			}
			lookups := map[string]int{}
			sqlstore.OnLookup(counted, func(op string) { lookups[op]++ })
			run := func(checked bool) {
				t.Helper()
				clear(lookups)
				cc.take()
				res, err := export.NewExporter(counted).Export(ctx, io.Discard, export.Request{UserID: "u1", ExportedAt: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				if res.Agents != n || res.ScheduledTasks != n || res.Workflows != n {
					t.Fatalf("exported %d, %d, %d records, want %d of each", res.Agents, res.ScheduledTasks, res.Workflows, n)
				}
				sections, user, plan, checks, rowLookups, other := 0, 0, 0, 0, 0, []string{}
				planner, explains := 0, 0
				seen := map[string]int{}
				for _, q := range cc.take() {
					switch {
					case strings.HasPrefix(q, "EXPLAIN "):
						explains++
					case strings.Contains(q, " ORDER BY "):
						sections++
						seen[q]++
					case strings.Contains(q, "WHERE rowid = ?"):
						rowLookups++
					case strings.HasPrefix(q, "SELECT `email`") || strings.HasPrefix(q, `SELECT "email"`):
						user++
					case q == sqlstore.PlanQuery:
						plan++
					case strings.Contains(q, "pragma_table_"):
						checks++
					case q == sqlstore.PlannerSettings || q == sqlstore.DiscourageSorts:
						planner++
					default:
						other = append(other, q)
					}
				}
				for q, k := range seen {
					if k != 1 {
						t.Errorf("ran %d times: %s", k, q)
					}
				}
				if sections != 3 || len(seen) != 3 || user != 1 || len(other) > 0 {
					t.Errorf("statements: %d section queries (%d distinct), %d user reads, others %q; want 3, 3, 1, none", sections, len(seen), user, other)
				}
				wantPlan, wantChecks := 0, 0
				if d == sqlstore.SQLite {
					wantPlan = 1
					if checked {
						wantChecks = 6 // two per table, for the schema version read
					}
				}
				if plan != wantPlan || checks != wantChecks {
					t.Errorf("%d plan queries and %d checks, want %d and %d", plan, checks, wantPlan, wantChecks)
				}
				// PostgreSQL: sorts discouraged, the index serving every
				// section (Schema's tables); the plans read on the first.
				wantPlanner, wantExplains := 0, 0
				if d == sqlstore.Postgres {
					wantPlanner = 1 // JIT off and sorts discouraged, in one statement
					if checked {
						wantExplains = 3
					}
				}
				if planner != wantPlanner || explains != wantExplains {
					t.Errorf("%d planner settings and %d EXPLAIN, want %d and %d", planner, explains, wantPlanner, wantExplains)
				}
				total := 0
				for op, k := range odd {
					total += k
					if lookups[op] != k {
						t.Errorf("%s: %d rows looked up, want %d", op, lookups[op], k)
					}
				}
				if rowLookups != total {
					t.Errorf("%d lookups, want %d", rowLookups, total)
				}
			}
			run(true)
			run(false) // the same schema: the checks are reused
			if d == sqlstore.SQLite {
				mustExec(t, tdb.db, "CREATE INDEX `Agent_name` ON `Agent` (`name`)") // a new schema version
				run(true)
			}
		})
	}
}

// fillMany writes a user with n records per section in one transaction,
// the names numbered so that tests can pick rows by their last digits.
func fillMany(t testing.TB, tdb *testDB, w *sqlfixture.Writer, userID string, n int) {
	t.Helper()
	ctx := ctxFor(t)
	tx, err := tdb.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	in := *w
	in.Exec = tx
	if err := in.PutUser(ctx, export.User{ID: userID, Email: userID + "@example.com", Plan: export.Some("free"), Role: "user"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		c := at.Add(time.Duration(i/3) * time.Second) // three records share each instant
		id := fmt.Sprintf("%s-%06d", userID, i)
		name := fmt.Sprintf("record %d", i)
		if err := in.PutAgent(ctx, userID, export.Agent{ID: "a" + id, Name: name, Model: "gpt-4o", Status: "running", CreatedAt: c, UpdatedAt: c}); err != nil {
			t.Fatal(err)
		}
		if err := in.PutScheduledTask(ctx, userID, export.ScheduledTask{ID: "t" + id, Name: name, CronSchedule: "0 9 * * *", Enabled: i%2 == 0, CreatedAt: c}); err != nil {
			t.Fatal(err)
		}
		if err := in.PutWorkflow(ctx, userID, export.Workflow{ID: "w" + id, Name: name, Enabled: i%3 == 0, CreatedAt: c}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
