package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
	"github.com/agentbot/export/sqlstore"
)

// TestJobCompletesOnEachEngine runs a job end to end on SQLite and on
// PostgreSQL, the data read by sqlstore from the same database, and
// checks the download against the synchronous endpoint.
func TestJobCompletesOnEachEngine(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			e := eng.open(t)
			store := seedSQL(t, e, "user_a", "user_b")
			clock := newClock()
			ex := export.NewExporter(store)
			failed := make(chan jobs.Job, 1)
			r := newRunner(t, e, ex, jobs.WithClock(clock.Now), jobs.WithNotifier(func(_ context.Context, j jobs.Job) {
				if j.Status == jobs.StatusFailed {
					failed <- j
				}
			}))
			h := jobs.NewHandler(r, headerUser)
			rec := do(t, h, "POST", "/api/exports", "user_a")
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			id := decodeJob(t, rec).ID
			j := waitFor(t, r, "user_a", id, jobs.StatusReady)
			assert.Equal(t, 1, j.Attempts)
			_, want := syncDocument(t, ex, clock.Now, "user_a")
			rec = do(t, h, "GET", "/api/exports/"+id+"/download", "user_a")
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, want, rec.Body.Bytes())
			assert.Equal(t, docFiles(id), listFiles(t, storageDir(r)))

			// A user who does not exist fails at once, not after retries.
			j, created, err := r.Enqueue(context.Background(), "nobody")
			require.NoError(t, err)
			require.True(t, created)
			select {
			case f := <-failed:
				assert.Equal(t, j.ID, f.ID)
				assert.Equal(t, jobs.StatusFailed, f.Status)
				assert.ErrorIs(t, f.Err, export.ErrUserNotFound)
			case <-time.After(30 * time.Second):
				t.Fatal("the notifier was not told of the failure")
			}
			got := waitFor(t, r, "nobody", j.ID, jobs.StatusFailed)
			assert.Equal(t, 1, got.Attempts, "not retried")
		})
	}
}

// concurrencyCheck is an Exporter that notes when two exports of one
// user overlap, on any instance.
type concurrencyCheck struct {
	export.Exporter
	mu       sync.Mutex
	running  map[string]int
	overlaps int
	byName   map[string]int
	gate     chan struct{} // under mu: exports wait for it to close
}

type instanceExporter struct {
	c    *concurrencyCheck
	name string
}

func (x instanceExporter) Export(ctx context.Context, w io.Writer, req export.Request) (export.Result, error) {
	c := x.c
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return export.Result{}, ctx.Err()
	}
	c.mu.Lock()
	c.running[req.UserID]++
	if c.running[req.UserID] > 1 {
		c.overlaps++
	}
	c.byName[x.name]++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running[req.UserID]--
		c.mu.Unlock()
	}()
	time.Sleep(10 * time.Millisecond) // long enough to overlap, if anything let them
	return c.Exporter.Export(ctx, w, req)
}

// TestTwoInstancesOnePostgres runs two runners (two pools, two River
// clients, one on riverdatabasesql, one on riverpgxv5) on one PostgreSQL
// schema; users ask both at once, three times
// over. Each user gets one job per round whichever instance was asked,
// both instances work the shared queue, and no user's export ever runs
// twice at once.
func TestTwoInstancesOnePostgres(t *testing.T) {
	e := postgresEngine(t)
	users := make([]string, 12)
	for i := range users {
		users[i] = fmt.Sprintf("user_%02d", i)
	}
	store := seedSQL(t, e, users...)
	check := &concurrencyCheck{Exporter: export.NewExporter(store), running: map[string]int{}, byName: map[string]int{}}
	// The second instance on pgx's pool and River's pgx driver: both
	// drivers share one queue.
	e2 := openPgx(t, e.dsn)
	storage, err := jobs.NewLocalDir(filepath.Join(t.TempDir(), "shared"))
	require.NoError(t, err)
	r1 := newRunner(t, e, instanceExporter{check, "one"}, jobs.WithStorage(storage))
	r2 := newRunner(t, e2, instanceExporter{check, "two"}, jobs.WithStorage(storage))
	h1, h2 := jobs.NewHandler(r1, headerUser), jobs.NewHandler(r2, headerUser)
	for round := range 3 {
		// The exports wait until both POSTs of every user are answered:
		// a job that finished in between would rightly let the second
		// POST start another.
		gate := make(chan struct{})
		check.mu.Lock()
		check.gate = gate
		check.mu.Unlock()
		var wg sync.WaitGroup
		ids := make([][2]string, len(users))
		for i, u := range users {
			for k, h := range []http.Handler{h1, h2} {
				wg.Go(func() {
					rec := do(t, h, "POST", "/api/exports", u)
					if rec.Code != http.StatusAccepted && rec.Code != http.StatusOK {
						t.Errorf("round %d, %s: POST %d %s", round, u, rec.Code, rec.Body.String())
						return
					}
					ids[i][k] = decodeJob(t, rec).ID
				})
			}
		}
		wg.Wait()
		close(gate)
		for i, u := range users {
			require.Equal(t, ids[i][0], ids[i][1], "%s got two jobs in round %d", u, round)
			waitFor(t, r1, u, ids[i][0], jobs.StatusReady)
		}
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	assert.Zero(t, check.overlaps, "a user's exports overlapped")
	assert.Equal(t, 3*len(users), check.byName["one"]+check.byName["two"], "one export per job")
	assert.NotZero(t, check.byName["one"], "instance one worked no job")
	assert.NotZero(t, check.byName["two"], "instance two worked no job")
}

// stallingExporter writes the first half of the real document, signals
// through the marker file, and waits for ever: the process is killed
// there.
type stallingExporter struct {
	export.Exporter
	marker string
}

func (s stallingExporter) Export(ctx context.Context, w io.Writer, req export.Request) (export.Result, error) {
	var buf bytes.Buffer
	if _, err := s.Exporter.Export(ctx, &buf, req); err != nil {
		return export.Result{}, err
	}
	w.Write(buf.Bytes()[:buf.Len()/2])
	os.WriteFile(s.marker, []byte("started"), 0o600)
	<-ctx.Done()
	return export.Result{}, ctx.Err()
}

// syncBuffer is the child's output, written by os/exec's copying
// goroutine while the test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const childEnv = "JOBS_TEST_KILLED_CHILD"

// TestWorkerKilledMidJob starts a worker in a child process (this test
// binary again), lets it write half a file, kills it with SIGKILL, and
// starts a runner on the same database and directory: River's rescuer
// gives the job back, the retry completes it, and the directory holds the
// finished file only (the dead attempt's partial file is gone).
func TestWorkerKilledMidJob(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		killedChild(t)
		return
	}
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			e := eng.open(t)
			store := seedSQL(t, e, "user_k")
			clock := newClock()
			dir := filepath.Join(t.TempDir(), "files")
			storage, err := jobs.NewLocalDir(dir)
			require.NoError(t, err)
			opts := []jobs.Option{jobs.WithStorage(storage), jobs.WithClock(clock.Now), jobs.WithRiverConfig(fastRiver), jobs.WithLogger(quietLogger()),
				jobs.WithJobTimeout(time.Second, time.Second)}
			ex := export.NewExporter(store)
			r, err := e.runner(ex, opts...)
			require.NoError(t, err)
			ctx := context.Background()
			require.NoError(t, r.Migrate(ctx))
			j, _, err := r.Enqueue(ctx, "user_k")
			require.NoError(t, err)

			marker := filepath.Join(t.TempDir(), "started")
			cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerKilledMidJob$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+eng.name, "JOBS_TEST_DSN="+e.dsn, "JOBS_TEST_DIR="+dir, "JOBS_TEST_MARKER="+marker)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			deadline := time.Now().Add(60 * time.Second)
			for {
				if _, err := os.Stat(marker); err == nil {
					break
				}
				require.True(t, time.Now().Before(deadline), "the child never started the export:\n%s", out.String())
				time.Sleep(20 * time.Millisecond)
			}
			files := listFiles(t, dir)
			require.Len(t, files, 1)
			assert.Contains(t, files[0], ".partial", "the half-written file has a temporary name")
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			cmd.Wait()
			killed = true
			js, err := r.Jobs(ctx, "user_k")
			require.NoError(t, err)
			require.Equal(t, jobs.StatusRunning, js[0].Status, "the dead worker's job is still running")

			// The restart. River hands the job over once the dead
			// client's leadership has lapsed and the job has run longer
			// than the timeout plus the rescue delay.
			require.NoError(t, r.Start(ctx))
			t.Cleanup(func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r.Stop(sctx)
			})
			done := waitFor(t, r, "user_k", j.ID, jobs.StatusReady)
			assert.Equal(t, 2, done.Attempts)
			assert.Equal(t, docFiles(j.ID), listFiles(t, dir), "no orphan file")
			_, want := syncDocument(t, ex, clock.Now, "user_k")
			got, err := os.ReadFile(filepath.Join(dir, j.ID+".json"))
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

// killedChild is the child process's side: a runner whose export stalls
// half-way, until the parent kills the process.
func killedChild(t *testing.T) {
	var e *engine
	switch os.Getenv(childEnv) {
	case "SQLite":
		e = openSQLite(t, os.Getenv("JOBS_TEST_DSN"))
	case "PostgreSQL-pgx":
		e = openPgx(t, os.Getenv("JOBS_TEST_DSN"))
	default:
		e = openPostgres(t, os.Getenv("JOBS_TEST_DSN"))
	}
	store, err := sqlstore.New(e.db, e.dialect)
	require.NoError(t, err)
	storage, err := jobs.NewLocalDir(os.Getenv("JOBS_TEST_DIR"))
	require.NoError(t, err)
	r, err := e.runner(stallingExporter{export.NewExporter(store), os.Getenv("JOBS_TEST_MARKER")},
		jobs.WithStorage(storage), jobs.WithRiverConfig(fastRiver), jobs.WithJobTimeout(time.Hour, 0))
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	time.Sleep(2 * time.Minute) // killed long before
	t.Fatal("the child was not killed")
}
