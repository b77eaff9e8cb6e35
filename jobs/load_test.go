package jobs_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
)

// peakExporter records the most exports running at once.
type peakExporter struct {
	export.Exporter
	mu        sync.Mutex
	now, peak int
}

func (p *peakExporter) Export(ctx context.Context, w io.Writer, req export.Request) (export.Result, error) {
	p.mu.Lock()
	p.now++
	p.peak = max(p.peak, p.now)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.now--
		p.mu.Unlock()
	}()
	return p.Exporter.Export(ctx, w, req)
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("load test skipped: no /proc/self/fd to count open files")
	}
	return len(entries)
}

// TestLoad200Users has 200 users ask for an archive at the same moment
// over HTTP, wait for it and download it. Every request succeeds, every
// file is the user's document, no more exports run at once than the
// worker bound, and once the runner is stopped the goroutines and open
// files are back to where they were.
func TestLoad200Users(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	baseGoroutines, baseFDs := runtime.NumGoroutine(), openFDs(t)

	store := demoStore()
	const users = 200
	for i := range users {
		u := fmt.Sprintf("load_%03d", i)
		store.PutUser(export.User{ID: u, Email: u + "@example.com", Role: "user"})
		store.PutWorkflow(u, export.Workflow{ID: "wf_" + u, Name: "w", CreatedAt: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	clock := newClock()
	peak := &peakExporter{Exporter: export.NewExporter(store)}
	dir := filepath.Join(t.TempDir(), "files")
	storage, err := jobs.NewLocalDir(dir)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "load.db")
	db, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	const workers = 4
	r, err := jobs.New(db, riversqlite.New(db), peak, jobs.WithStorage(storage), jobs.WithWorkers(workers), jobs.WithClock(clock.Now),
		jobs.WithRiverConfig(fastRiver), jobs.WithLogger(quietLogger()))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, r.Migrate(ctx))
	require.NoError(t, r.Start(ctx))
	srv := httptest.NewServer(jobs.NewHandler(r, headerUser))

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	call := func(method, path, user string) (*http.Response, []byte, error) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("X-Test-User", user)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for i := range users {
		u := fmt.Sprintf("load_%03d", i)
		wg.Go(func() {
			<-start
			resp, b, err := call("POST", "/api/exports", u)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				errs <- fmt.Errorf("%s: POST: %v %v %s", u, err, resp, b)
				return
			}
			var j jobBody
			json.Unmarshal(b, &j)
			deadline := time.Now().Add(2 * time.Minute)
			for {
				resp, b, err = call("GET", "/api/exports/"+j.ID, u)
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: GET: %v %s", u, err, b)
					return
				}
				json.Unmarshal(b, &j)
				if j.Status == "ready" {
					break
				}
				if j.Status != "queued" && j.Status != "running" || time.Now().After(deadline) {
					errs <- fmt.Errorf("%s: job %s", u, j.Status)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			resp, b, err = call("GET", *j.Download, u)
			if err != nil || resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("%s: download: %v %s", u, err, b)
				return
			}
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != *j.SHA256 {
				errs <- fmt.Errorf("%s: the download does not match its sha256", u)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	files := listFiles(t, dir)
	partial := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".partial") {
			partial++
		}
	}
	assert.Equal(t, 2*users, len(files), "a document and its gzip copy per user")
	assert.Zero(t, partial, "partial files")
	peak.mu.Lock()
	assert.LessOrEqual(t, peak.peak, workers, "exports at once")
	peak.mu.Unlock()

	srv.Close()
	client.CloseIdleConnections()
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, r.Stop(stopCtx))
	require.NoError(t, db.Close())
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, fds := runtime.NumGoroutine(), openFDs(t)
		if g <= baseGoroutines+2 && fds <= baseFDs {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d (were %d), open files %d (were %d)\n%s", g, baseGoroutines, fds, baseFDs, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
