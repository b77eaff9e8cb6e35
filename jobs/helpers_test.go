package jobs_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/jobs"
	"github.com/agentbot/export/memstore"
	"github.com/agentbot/export/sqlstore"
)

// testClock is the runner's clock in tests: fixed until moved.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 4, 2, 12, 0, 0, 123456789, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// engine is a database the runner's tables and River's live in.
type engine struct {
	name   string
	db     *sql.DB
	driver riverdriver.Driver[*sql.Tx]
	// dsn reopens the same database (a child process, a second instance).
	dsn     string
	dialect sqlstore.Dialect
	// pool, when set, is pgx's own pool: the runner is NewPgx's, on
	// River's pgx driver (db is then a database/sql handle on the same
	// database, for the fixtures and the store).
	pool *pgxpool.Pool
}

// runner makes a runner on e (not migrated, not started).
func (e *engine) runner(ex export.Exporter, opts ...jobs.Option) (*jobs.Runner, error) {
	if e.pool != nil {
		return jobs.NewPgx(e.pool, ex, opts...)
	}
	return jobs.New(e.db, e.driver, ex, opts...)
}

// sqliteEngine is an SQLite file of the test's own, one connection for
// River (as riversqlite asks).
func sqliteEngine(t testing.TB) *engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	return openSQLite(t, path)
}

func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
}

func openSQLite(t testing.TB, path string) *engine {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &engine{name: "SQLite", db: db, driver: riversqlite.New(db), dsn: path, dialect: sqlstore.SQLite}
}

// postgresEngine is a schema of its own in the database
// EXPORT_TEST_POSTGRES_DSN names, dropped at the end.
func postgresEngine(t testing.TB) *engine {
	t.Helper()
	dsn := os.Getenv("EXPORT_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("skipped: set EXPORT_TEST_POSTGRES_DSN to run the job tests on PostgreSQL")
	}
	admin, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	schema := "jobs_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return openPostgres(t, u.String())
}

// pgxEngine is postgresEngine with the runner on pgx's pool and River's
// pgx driver.
func pgxEngine(t testing.TB) *engine {
	t.Helper()
	e := postgresEngine(t)
	return openPgx(t, e.dsn)
}

func openPgx(t testing.TB, dsn string) *engine {
	t.Helper()
	e := openPostgres(t, dsn)
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e.name, e.pool = "PostgreSQL-pgx", pool
	return e
}

func openPostgres(t testing.TB, dsn string) *engine {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(10)
	t.Cleanup(func() { db.Close() })
	return &engine{name: "PostgreSQL", db: db, driver: riverdatabasesql.New(db), dsn: dsn, dialect: sqlstore.Postgres}
}

// engines are the databases every engine test runs on: SQLite always,
// PostgreSQL when its DSN is set (skipping, saying so, when not).
func engines() []struct {
	name string
	open func(testing.TB) *engine
} {
	return []struct {
		name string
		open func(testing.TB) *engine
	}{{"SQLite", sqliteEngine}, {"PostgreSQL", postgresEngine}, {"PostgreSQL-pgx", pgxEngine}}
}

// fastRiver makes River poll often and start without its production
// jitter, so that tests do not wait seconds for each job.
func fastRiver(c *river.Config) {
	c.FetchPollInterval = 20 * time.Millisecond
	c.FetchCooldown = 10 * time.Millisecond
	c.TestOnly = true
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newRunner makes, migrates and starts a runner on e, stopped at the end.
func newRunner(t testing.TB, e *engine, ex export.Exporter, opts ...jobs.Option) *jobs.Runner {
	t.Helper()
	st, err := jobs.NewLocalDir(filepath.Join(t.TempDir(), "files"))
	require.NoError(t, err)
	all := append([]jobs.Option{jobs.WithStorage(st), jobs.WithRiverConfig(fastRiver), jobs.WithLogger(quietLogger())}, opts...)
	r, err := e.runner(ex, all...)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, r.Migrate(ctx))
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Stop(ctx)
	})
	return r
}

// demoStore holds two users with a few records each.
func demoStore() *memstore.Store {
	s := memstore.New()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range []string{"user_jane", "user_sam"} {
		s.PutUser(export.User{ID: u, Email: u + "@example.com", Name: export.Some("Name of " + u), Plan: export.Some("solo"), Role: "user"})
		for i := range 3 {
			s.PutAgent(u, export.Agent{ID: fmt.Sprintf("agent_%s_%d", u, i), Name: "a", Model: "gpt-4o", Status: "running", CreatedAt: at.Add(time.Duration(i) * time.Hour), UpdatedAt: at})
		}
		s.PutWorkflow(u, export.Workflow{ID: "wf_" + u, Name: "onboarding", Enabled: true, CreatedAt: at})
	}
	return s
}

// seedSQL creates the application's tables in e and writes users into
// them; it returns the store over them.
func seedSQL(t testing.TB, e *engine, users ...string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, sqlstore.CreateTables(ctx, e.db, e.dialect, sqlstore.PrismaLayout()))
	w := &sqlfixture.Writer{DB: e.db, Dialect: e.dialect, Layout: sqlstore.PrismaLayout(), Times: sqlfixture.ISOText}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range users {
		require.NoError(t, w.PutUser(ctx, export.User{ID: u, Email: u + "@example.com", Role: "user"}))
		for i := range 5 {
			require.NoError(t, w.PutAgent(ctx, u, export.Agent{ID: fmt.Sprintf("a_%s_%d", u, i), Name: "n", Model: "m", Status: "running", CreatedAt: at, UpdatedAt: at}))
		}
	}
	s, err := sqlstore.New(e.db, e.dialect)
	require.NoError(t, err)
	return s
}

// headerUser is the tests' session resolver: the X-Test-User header.
func headerUser(r *http.Request) (string, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return u, nil
	}
	return "", export.ErrNoSession
}

// waitFor polls until the user's job id has the status, or fails.
func waitFor(t testing.TB, r *jobs.Runner, userID, id string, want jobs.Status) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last jobs.Job
	for time.Now().Before(deadline) {
		js, err := r.Jobs(context.Background(), userID)
		require.NoError(t, err)
		for _, j := range js {
			if j.ID == id {
				last = j
				if j.Status == want {
					return j
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s of %s: status %q, want %q", id, userID, last.Status, want)
	return last
}

// listFiles returns the names in dir, partial files included.
func listFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// docFiles are the files a ready job id keeps: the document and its gzip
// copy.
func docFiles(id string) []string { return []string{id + ".json", id + ".json.gz"} }

func storageDir(r *jobs.Runner) string { return r.Storage().(*jobs.LocalDir).Dir() }
