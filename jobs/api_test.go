package jobs_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
)

// gatedExporter holds every export until its gate is closed, so that a
// test can look at a job while it is queued or running.
type gatedExporter struct {
	export.Exporter
	gate chan struct{}
}

func (g *gatedExporter) Export(ctx context.Context, w io.Writer, req export.Request) (export.Result, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return export.Result{}, ctx.Err()
	}
	return g.Exporter.Export(ctx, w, req)
}

func do(t testing.TB, h http.Handler, method, path, user string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type jobBody struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"createdAt"`
	FinishedAt *string `json:"finishedAt"`
	ExpiresAt  *string `json:"expiresAt"`
	Bytes      *int64  `json:"bytes"`
	SHA256     *string `json:"sha256"`
	Download   *string `json:"download"`
}

func decodeJob(t testing.TB, rec *httptest.ResponseRecorder) jobBody {
	t.Helper()
	var b jobBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b), rec.Body.String())
	return b
}

// requireError checks the contract's error answer.
func requireError(t testing.TB, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	assert.Empty(t, rec.Header().Get("Content-Disposition"))
	if body != "" {
		assert.JSONEq(t, body, rec.Body.String())
	}
}

// syncDocument is what the synchronous endpoint serves userID at clock's
// instant.
func syncDocument(t testing.TB, ex export.Exporter, clock func() time.Time, userID string) (*httptest.ResponseRecorder, []byte) {
	t.Helper()
	h := export.NewHandler(ex, headerUser, export.WithClock(clock), export.WithLogger(quietLogger()))
	rec := do(t, h, http.MethodGet, "/api/export", userID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return rec, rec.Body.Bytes()
}

func TestRoutes(t *testing.T) {
	e := sqliteEngine(t)
	clock := newClock()
	ex := export.NewExporter(demoStore())
	gated := &gatedExporter{Exporter: ex, gate: make(chan struct{})}
	var rec0 eventLog
	notified := make(chan jobs.Job, 10)
	r := newRunner(t, e, gated, jobs.WithClock(clock.Now),
		jobs.WithAuditHook(rec0.add),
		jobs.WithNotifier(func(_ context.Context, j jobs.Job) { notified <- j }))
	h := jobs.NewHandler(r, headerUser)
	const jane, sam = "user_jane", "user_sam"

	t.Run("no session is 401 on every route", func(t *testing.T) {
		for _, rt := range [][2]string{{"POST", "/api/exports"}, {"GET", "/api/exports"}, {"GET", "/api/exports/x"},
			{"GET", "/api/exports/x/download"}, {"DELETE", "/api/exports/x"}, {"HEAD", "/api/exports"}} {
			rec := do(t, h, rt[0], rt[1], "")
			want := `{"error":"Unauthorized"}`
			if rt[0] == "HEAD" {
				want = ""
			}
			requireError(t, rec, http.StatusUnauthorized, want)
		}
	})

	rec := do(t, h, "POST", "/api/exports", jane)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	first := decodeJob(t, rec)
	assert.Equal(t, "queued", first.Status)
	assert.Len(t, first.ID, 32, "160 random bits in base32")
	assert.Equal(t, "/api/exports/"+first.ID, rec.Header().Get("Location"))
	assert.Equal(t, "2026-04-02T12:00:00.123Z", first.CreatedAt)
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))

	t.Run("a second POST while active returns the same job with 200", func(t *testing.T) {
		rec := do(t, h, "POST", "/api/exports", jane)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, first.ID, decodeJob(t, rec).ID)
		assert.Equal(t, "/api/exports/"+first.ID, rec.Header().Get("Location"))
	})

	t.Run("not ready: the download is 409", func(t *testing.T) {
		requireError(t, do(t, h, "GET", "/api/exports/"+first.ID+"/download", jane), http.StatusConflict, `{"error":"Conflict","message":"the export is not ready"}`)
	})

	t.Run("another user's job and unknown IDs are the same 404", func(t *testing.T) {
		unknown := strings.Repeat("a", 32)
		var bodies []string
		for _, rt := range [][3]string{
			{"GET", "/api/exports/" + first.ID, sam}, {"GET", "/api/exports/" + first.ID + "/download", sam}, {"DELETE", "/api/exports/" + first.ID, sam},
			{"GET", "/api/exports/" + unknown, jane}, {"GET", "/api/exports/" + unknown + "/download", jane}, {"DELETE", "/api/exports/" + unknown, jane},
			{"GET", "/api/exports/" + first.ID + "x", jane}, {"GET", "/api/exports/" + strings.ToUpper(first.ID), jane}, {"GET", "/api/exports/short", jane}, {"GET", "/api/exports/" + first.ID + "/other", jane},
		} {
			rec := do(t, h, rt[0], rt[1], rt[2])
			requireError(t, rec, http.StatusNotFound, `{"error":"Not Found"}`)
			bodies = append(bodies, rec.Body.String())
		}
		for _, b := range bodies {
			assert.Equal(t, bodies[0], b)
		}
		// Sam's list does not show Jane's job.
		rec := do(t, h, "GET", "/api/exports", sam)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `[]`, rec.Body.String())
	})

	t.Run("other methods are 405 with Allow", func(t *testing.T) {
		rec := do(t, h, "PUT", "/api/exports", jane)
		requireError(t, rec, http.StatusMethodNotAllowed, `{"error":"Method Not Allowed"}`)
		assert.Equal(t, "GET, HEAD, POST", rec.Header().Get("Allow"))
		rec = do(t, h, "POST", "/api/exports/"+first.ID, jane)
		requireError(t, rec, http.StatusMethodNotAllowed, "")
		assert.Equal(t, "DELETE, GET, HEAD", rec.Header().Get("Allow"))
		rec = do(t, h, "DELETE", "/api/exports/"+first.ID+"/download", jane)
		requireError(t, rec, http.StatusMethodNotAllowed, "")
		assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	})

	close(gated.gate)
	ready := waitFor(t, r, jane, first.ID, jobs.StatusReady)
	select {
	case j := <-notified:
		assert.Equal(t, first.ID, j.ID)
		assert.Equal(t, jobs.StatusReady, j.Status)
	case <-time.After(10 * time.Second):
		t.Fatal("the notifier was not called")
	}

	rec = do(t, h, "GET", "/api/exports/"+first.ID, jane)
	require.Equal(t, http.StatusOK, rec.Code)
	got := decodeJob(t, rec)
	assert.Equal(t, "ready", got.Status)
	require.NotNil(t, got.Download)
	assert.Equal(t, "/api/exports/"+first.ID+"/download", *got.Download)
	require.NotNil(t, got.ExpiresAt)
	assert.Equal(t, "2026-04-09T12:00:00.123Z", *got.ExpiresAt, "7 days after it finished")
	assert.Equal(t, "2026-04-02T12:00:00.123Z", *got.FinishedAt)

	syncRec, want := syncDocument(t, ex, clock.Now, jane)
	t.Run("the download is the synchronous endpoint's document, byte for byte", func(t *testing.T) {
		rec := do(t, h, "GET", *got.Download, jane)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, want, rec.Body.Bytes())
		sum := sha256.Sum256(want)
		assert.Equal(t, hex.EncodeToString(sum[:]), *got.SHA256)
		assert.Equal(t, int64(len(want)), *got.Bytes)
		assert.Equal(t, ready.Bytes, int64(len(want)))
		for _, k := range []string{"Content-Type", "Content-Disposition", "Cache-Control", "X-Content-Type-Options"} {
			assert.Equal(t, syncRec.Header().Get(k), rec.Header().Get(k), k)
		}
		assert.Equal(t, `"`+hex.EncodeToString(sum[:])+`"`, rec.Header().Get("ETag"))
		assert.Equal(t, "bytes", rec.Header().Get("Accept-Ranges"))
		assert.Equal(t, strconv.Itoa(len(want)), rec.Header().Get("Content-Length"))
		// HEAD: the headers alone.
		rec = do(t, h, "HEAD", *got.Download, jane)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Empty(t, rec.Body.Bytes())
		assert.Equal(t, strconv.Itoa(len(want)), rec.Header().Get("Content-Length"))
	})

	t.Run("Range and If-Range", func(t *testing.T) {
		etag := `"` + *got.SHA256 + `"`
		rec := do(t, h, "GET", *got.Download, jane, "Range", "bytes=10-19")
		require.Equal(t, http.StatusPartialContent, rec.Code)
		assert.Equal(t, want[10:20], rec.Body.Bytes())
		assert.Equal(t, "bytes 10-19/"+strconv.Itoa(len(want)), rec.Header().Get("Content-Range"))
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))

		rec = do(t, h, "GET", *got.Download, jane, "Range", "bytes=-5", "If-Range", etag)
		require.Equal(t, http.StatusPartialContent, rec.Code)
		assert.Equal(t, want[len(want)-5:], rec.Body.Bytes())

		// A stale validator: the whole document, 200.
		rec = do(t, h, "GET", *got.Download, jane, "Range", "bytes=10-19", "If-Range", `"0000"`)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, want, rec.Body.Bytes())

		rec = do(t, h, "GET", *got.Download, jane, "Range", "bytes="+strconv.Itoa(len(want)+10)+"-")
		requireError(t, rec, http.StatusRequestedRangeNotSatisfiable, `{"error":"Requested Range Not Satisfiable"}`)
		assert.Equal(t, "bytes */"+strconv.Itoa(len(want)), rec.Header().Get("Content-Range"))

		rec = do(t, h, "GET", *got.Download, jane, "If-None-Match", etag)
		assert.Equal(t, http.StatusNotModified, rec.Code)
	})

	t.Run("clients that accept gzip get the stored gzip copy", func(t *testing.T) {
		rec := do(t, h, "GET", *got.Download, jane, "Accept-Encoding", "gzip, br")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
		assert.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
		gzETag := rec.Header().Get("ETag")
		assert.NotEqual(t, `"`+*got.SHA256+`"`, gzETag, "each representation has its own validator")
		gz := rec.Body.Bytes()
		assert.Equal(t, strconv.Itoa(len(gz)), rec.Header().Get("Content-Length"))
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		require.NoError(t, err)
		doc, err := io.ReadAll(zr)
		require.NoError(t, err)
		assert.Equal(t, want, doc)
		sum := sha256.Sum256(gz)
		assert.Equal(t, `"`+hex.EncodeToString(sum[:])+`"`, gzETag)

		// Ranges apply to the gzip bytes; If-Range with the identity
		// validator does not match them: the whole copy, 200.
		rec = do(t, h, "GET", *got.Download, jane, "Accept-Encoding", "gzip", "Range", "bytes=5-", "If-Range", gzETag)
		require.Equal(t, http.StatusPartialContent, rec.Code)
		assert.Equal(t, gz[5:], rec.Body.Bytes())
		assert.Equal(t, strconv.Itoa(len(gz)-5), rec.Header().Get("Content-Length"))
		rec = do(t, h, "GET", *got.Download, jane, "Accept-Encoding", "gzip", "Range", "bytes=5-", "If-Range", `"`+*got.SHA256+`"`)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, gz, rec.Body.Bytes())
		// A 416 is the contract's JSON, never marked gzip.
		rec = do(t, h, "GET", *got.Download, jane, "Accept-Encoding", "gzip", "Range", "bytes=999999-")
		requireError(t, rec, http.StatusRequestedRangeNotSatisfiable, "")
		assert.Empty(t, rec.Header().Get("Content-Encoding"))
		// identity refused in favour of nothing else: identity anyway.
		rec = do(t, h, "GET", *got.Download, jane, "Accept-Encoding", "br")
		assert.Empty(t, rec.Header().Get("Content-Encoding"))
		assert.Equal(t, want, rec.Body.Bytes())
	})

	t.Run("the list is newest first", func(t *testing.T) {
		clock.Add(time.Minute)
		rec := do(t, h, "POST", "/api/exports", jane)
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		second := decodeJob(t, rec)
		waitFor(t, r, jane, second.ID, jobs.StatusReady)
		rec = do(t, h, "GET", "/api/exports", jane)
		require.Equal(t, http.StatusOK, rec.Code)
		var list []jobBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
		require.Len(t, list, 2)
		assert.Equal(t, second.ID, list[0].ID)
		assert.Equal(t, first.ID, list[1].ID)
	})

	t.Run("DELETE removes the job and its file", func(t *testing.T) {
		path := filepath.Join(storageDir(r), first.ID+".json")
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		rec := do(t, h, "DELETE", "/api/exports/"+first.ID, jane)
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		_, err = os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist)
		requireError(t, do(t, h, "GET", "/api/exports/"+first.ID, jane), http.StatusNotFound, `{"error":"Not Found"}`)
		requireError(t, do(t, h, "DELETE", "/api/exports/"+first.ID, jane), http.StatusNotFound, `{"error":"Not Found"}`)
	})

	var outcomes []string
	for _, ev := range rec0.all() {
		if ev.JobID == first.ID {
			outcomes = append(outcomes, string(ev.Outcome))
			assert.Equal(t, jane, ev.UserID)
		}
	}
	assert.Equal(t, []string{"job_queued", "job_running", "job_ready"}, outcomes[:3])
	assert.Contains(t, outcomes, "job_downloaded")
	assert.Equal(t, "job_deleted", outcomes[len(outcomes)-1])
}

// eventLog records audit events.
type eventLog struct {
	mu     sync.Mutex
	events []export.Event
}

func (l *eventLog) add(_ context.Context, ev export.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *eventLog) all() []export.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]export.Event(nil), l.events...)
}

func TestCooldown(t *testing.T) {
	e := sqliteEngine(t)
	clock := newClock()
	r := newRunner(t, e, export.NewExporter(demoStore()), jobs.WithClock(clock.Now), jobs.WithCooldown(time.Hour))
	h := jobs.NewHandler(r, headerUser)
	rec := do(t, h, "POST", "/api/exports", "user_jane")
	require.Equal(t, http.StatusAccepted, rec.Code)
	waitFor(t, r, "user_jane", decodeJob(t, rec).ID, jobs.StatusReady)
	clock.Add(20 * time.Minute)
	rec = do(t, h, "POST", "/api/exports", "user_jane")
	requireError(t, rec, http.StatusTooManyRequests, `{"error":"Too Many Requests"}`)
	assert.Equal(t, "2400", rec.Header().Get("Retry-After"))
	// Another user is not held back.
	assert.Equal(t, http.StatusAccepted, do(t, h, "POST", "/api/exports", "user_sam").Code)
	clock.Add(41 * time.Minute)
	assert.Equal(t, http.StatusAccepted, do(t, h, "POST", "/api/exports", "user_jane").Code)
}

func TestExpiryAndCleanup(t *testing.T) {
	e := sqliteEngine(t)
	clock := newClock()
	var expired []string
	r := newRunner(t, e, export.NewExporter(demoStore()), jobs.WithClock(clock.Now),
		jobs.WithAuditHook(func(_ context.Context, ev export.Event) {
			if ev.Outcome == jobs.OutcomeExpired {
				expired = append(expired, ev.JobID)
			}
		}),
		// The test runs the cleanup itself, when it has moved the clock;
		// TestPeriodicCleanup checks the periodic job.
		jobs.WithRiverConfig(func(c *river.Config) { fastRiver(c); c.PeriodicJobs = nil }))
	h := jobs.NewHandler(r, headerUser)
	rec := do(t, h, "POST", "/api/exports", "user_jane")
	require.Equal(t, http.StatusAccepted, rec.Code)
	id := decodeJob(t, rec).ID
	waitFor(t, r, "user_jane", id, jobs.StatusReady)
	dir := storageDir(r)
	// A file no job owns (its job was deleted as the file was renamed in).
	orphan := strings.Repeat("b", 32) + ".json"
	require.NoError(t, os.WriteFile(filepath.Join(dir, orphan), []byte("{}"), 0o600))

	n, err := r.Cleanup(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the orphan only")
	assert.Equal(t, docFiles(id), listFiles(t, dir))

	clock.Add(7*24*time.Hour - time.Second)
	n, err = r.Cleanup(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	assert.Equal(t, http.StatusOK, do(t, h, "GET", "/api/exports/"+id+"/download", "user_jane").Code)

	clock.Add(time.Second)
	// Expired as soon as its time has come, before the cleanup has run.
	requireError(t, do(t, h, "GET", "/api/exports/"+id+"/download", "user_jane"), http.StatusGone, `{"error":"Gone"}`)
	n, err = r.Cleanup(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, listFiles(t, dir))
	assert.Equal(t, []string{id}, expired)
	rec = do(t, h, "GET", "/api/exports/"+id, "user_jane")
	require.Equal(t, http.StatusOK, rec.Code)
	got := decodeJob(t, rec)
	assert.Equal(t, "expired", got.Status)
	assert.Nil(t, got.Download)
	requireError(t, do(t, h, "GET", "/api/exports/"+id+"/download", "user_jane"), http.StatusGone, `{"error":"Gone"}`)

	// A retention period after it expired, the job itself is forgotten.
	clock.Add(7 * 24 * time.Hour)
	_, err = r.Cleanup(context.Background())
	require.NoError(t, err)
	requireError(t, do(t, h, "GET", "/api/exports/"+id, "user_jane"), http.StatusNotFound, `{"error":"Not Found"}`)
}

// TestResumeAfterCutConnection downloads over a real connection that the
// client cuts half-way, then resumes with Range and If-Range as curl -C -
// and browsers do, and gets the document whole.
func TestResumeAfterCutConnection(t *testing.T) {
	e := sqliteEngine(t)
	store := demoStore()
	// A larger account, so that the cut is in the middle of the body.
	for i := range 2000 {
		store.PutWorkflow("user_jane", export.Workflow{ID: "wf_" + strconv.Itoa(i), Name: strings.Repeat("w", 40), CreatedAt: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	clock := newClock()
	ex := export.NewExporter(store)
	r := newRunner(t, e, ex, jobs.WithClock(clock.Now))
	srv := httptest.NewServer(jobs.NewHandler(r, headerUser))
	defer srv.Close()
	client := srv.Client()
	get := func(method, path string, hdr ...string) *http.Response {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("X-Test-User", "user_jane")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		return resp
	}
	resp := get("POST", "/api/exports")
	var j jobBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&j))
	resp.Body.Close()
	waitFor(t, r, "user_jane", j.ID, jobs.StatusReady)
	_, want := syncDocument(t, ex, clock.Now, "user_jane")
	require.Greater(t, len(want), 100_000)

	// As curl -C - asks: no Accept-Encoding, the document as stored. (Go's
	// client would ask for gzip and decode it unseen; the offsets of a
	// resumed download are those of the representation first sent.)
	resp = get("GET", "/api/exports/"+j.ID+"/download", "Accept-Encoding", "identity")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Content-Encoding"))
	etag := resp.Header.Get("ETag")
	part := make([]byte, len(want)/3)
	_, err := io.ReadFull(resp.Body, part)
	require.NoError(t, err)
	resp.Body.Close() // the cut: the rest is never read
	client.CloseIdleConnections()

	resp = get("GET", "/api/exports/"+j.ID+"/download", "Range", "bytes="+strconv.Itoa(len(part))+"-", "If-Range", etag)
	defer resp.Body.Close()
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, append(part, rest...)), "the resumed download is the document")
}

// TestDeleteWhileRunning deletes a job whose export is under way: the
// answer is 204 at once, and whatever the worker then writes is removed,
// so no file stays.
func TestDeleteWhileRunning(t *testing.T) {
	e := sqliteEngine(t)
	gated := &gatedExporter{Exporter: export.NewExporter(demoStore()), gate: make(chan struct{})}
	r := newRunner(t, e, gated)
	h := jobs.NewHandler(r, headerUser)
	rec := do(t, h, "POST", "/api/exports", "user_jane")
	require.Equal(t, http.StatusAccepted, rec.Code)
	id := decodeJob(t, rec).ID
	waitFor(t, r, "user_jane", id, jobs.StatusRunning)
	require.Equal(t, http.StatusNoContent, do(t, h, "DELETE", "/api/exports/"+id, "user_jane").Code)
	close(gated.gate)
	// The user may start another at once.
	rec = do(t, h, "POST", "/api/exports", "user_jane")
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	next := decodeJob(t, rec).ID
	waitFor(t, r, "user_jane", next, jobs.StatusReady)
	deadline := time.Now().Add(10 * time.Second)
	for {
		files := listFiles(t, storageDir(r))
		if slices.Equal(files, docFiles(next)) {
			break
		}
		require.True(t, time.Now().Before(deadline), "files: %q", files)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeriodicCleanup: the runner's periodic River job runs the cleanup
// by itself: an orphan file goes, and a file past its time expires.
func TestPeriodicCleanup(t *testing.T) {
	e := sqliteEngine(t)
	clock := newClock()
	r := newRunner(t, e, export.NewExporter(demoStore()), jobs.WithClock(clock.Now), jobs.WithCleanupInterval(100*time.Millisecond))
	j, _, err := r.Enqueue(context.Background(), "user_jane")
	require.NoError(t, err)
	waitFor(t, r, "user_jane", j.ID, jobs.StatusReady)
	dir := storageDir(r)
	require.NoError(t, os.WriteFile(filepath.Join(dir, strings.Repeat("c", 32)+".json"), []byte("{}"), 0o600))
	clock.Add(8 * 24 * time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for len(listFiles(t, dir)) > 0 {
		require.True(t, time.Now().Before(deadline), "files left: %q", listFiles(t, dir))
		time.Sleep(20 * time.Millisecond)
	}
	js, err := r.Jobs(context.Background(), "user_jane")
	require.NoError(t, err)
	assert.Equal(t, jobs.StatusExpired, js[0].Status)
}
