package export_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbot/export"
)

// TestSpoolFileSystemFull fills the spool's file system part-way through
// a document: the export is a clean 500, the file is gone, and the next
// export is served. A real full disk needs a small mount (root only), so
// the test limits the size of the files its own process may write
// (RLIMIT_FSIZE), which fails writes past it with EFBIG just as a full
// disk fails them with ENOSPC. The limit would also stop the test binary
// from writing its own files, so the check runs in a child process.
func TestSpoolFileSystemFull(t *testing.T) {
	const limit = 64 << 10 // the many-records document is about 150 KB
	if os.Getenv("EXPORT_TEST_FSIZE_CHILD") == "1" {
		signal.Ignore(syscall.SIGXFSZ) // or the kernel kills the process at the limit
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}))
		dir := t.TempDir()
		big := goldenCases(t)["many-records"]
		h := newTestHandler(t, storeOf(t, big), fixedUser(big.User.ID), export.WithSpool(4096, dir))
		for _, coding := range []string{"identity", "gzip"} { // gzip: the document's file fills while its compressor follows it
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
			req.Header.Set("Accept-Encoding", coding)
			h.ServeHTTP(rec, req)
			requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"could not spool document"}`)
			require.Zero(t, openFilesIn(t, dir), "%s: the spool file is still open", coding)
			left, _ := os.ReadDir(dir)
			require.Empty(t, left, "%s: temporary files left behind", coding)
		}
		// The coded spool's own file fills (a coding that writes each
		// byte 2,000 times: the document's file stays small): that is
		// the spool's failure, not the compressor's, whether the
		// document was coded from memory or from its file.
		expand := export.WithEncoder("expand", func(w io.Writer) (io.WriteCloser, error) { return expander{w}, nil })
		for _, threshold := range []int{1 << 20, 512} {
			h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), expand, export.WithSpool(threshold, dir))
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
			req.Header.Set("Accept-Encoding", "expand")
			h.ServeHTTP(rec, req)
			requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"could not spool document"}`)
			require.Zero(t, openFilesIn(t, dir), "threshold %d: a spool file is still open", threshold)
		}
		small := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithSpool(4096, dir))
		require.Equal(t, http.StatusOK, do(small, http.MethodGet).Code, "the process keeps serving")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolFileSystemFull$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "EXPORT_TEST_FSIZE_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child test failed:\n%s", out)
	require.Contains(t, string(out), "--- PASS: TestSpoolFileSystemFull", "%s", out)
}

// openFilesIn counts this process's open files in dir. The spool unlinks
// its file as soon as it is created, so on Linux the file shows only
// here, as a descriptor, until the spool closes it.
func openFilesIn(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && len(target) > len(dir) && target[:len(dir)+1] == dir+"/" {
			n++
		}
	}
	return n
}

// TestSpoolAlwaysToDisk: WithSpool(1, dir) puts every document, even the
// smallest, in a file in dir; the default threshold keeps it in memory.
func TestSpoolAlwaysToDisk(t *testing.T) {
	for _, c := range []struct {
		threshold, open int
	}{{1, 1}, {0, 0}} {
		dir := t.TempDir()
		h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithSpool(c.threshold, dir))
		open := -1
		w := &onWrite{ResponseRecorder: httptest.NewRecorder(), fn: func() { open = openFilesIn(t, dir) }}
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/export", nil))
		require.Equal(t, http.StatusOK, w.Code)
		require.Equal(t, readGolden(t, "contract-example"), w.Body.String())
		require.Equal(t, c.open, open, "WithSpool(%d): files open in the spool directory while the body is sent", c.threshold)
		require.Zero(t, openFilesIn(t, dir), "the file is closed afterwards")
	}
}

// onWrite calls fn before its first Write.
type onWrite struct {
	*httptest.ResponseRecorder
	fn   func()
	done bool
}

func (w *onWrite) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		w.fn()
	}
	return w.ResponseRecorder.Write(p)
}

// expander is a coding that writes every byte 2,000 times.
type expander struct{ w io.Writer }

func (e expander) Write(p []byte) (int, error) {
	for _, c := range p {
		if _, err := e.w.Write(bytes.Repeat([]byte{c}, 2000)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (e expander) Close() error { return nil }

// slowCoder is a coding that passes bytes through, taking delay for each
// write: a compressor that falls far behind the export.
type slowCoder struct {
	w     io.Writer
	delay time.Duration
}

func (s slowCoder) Write(p []byte) (int, error) { time.Sleep(s.delay); return s.w.Write(p) }
func (s slowCoder) Close() error                { return nil }

// TestCodedSpoolHonoursDeadlines: once the document is complete, a
// spooled GET waits for its compressor to catch up, and that wait ends
// with the export's total deadline (a 503 naming the compression) and
// with the client (canceled): the compressor stops, no file and no
// goroutine is left. HEAD, which codes as the document is written, ends
// with them too.
//
// The margins are wide both ways, as CI runs this under -race on a busy
// machine: the document (1.1 MB, 18 of the follower's chunks) is read in
// about 100 ms there, a tenth of the deadline; its coding takes 200 ms a
// chunk, over 3 s, three times the deadline; and the compressor, told to
// stop, stops within a chunk.
func TestCodedSpoolHonoursDeadlines(t *testing.T) {
	const (
		deadline = time.Second
		perChunk = 200 * time.Millisecond
	)
	slow := export.WithEncoder("slow", func(w io.Writer) (io.WriteCloser, error) { return slowCoder{w, perChunk}, nil })
	for _, c := range []struct {
		name    string
		method  string
		timeout export.Timeouts
		cancel  bool
	}{
		{"total deadline", http.MethodGet, export.Timeouts{Total: deadline}, false},
		{"client gone", http.MethodGet, export.Timeouts{}, true},
		{"HEAD, total deadline", http.MethodHead, export.Timeouts{Total: deadline}, false}, // codes in line
		{"HEAD, client gone", http.MethodHead, export.Timeouts{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			dir := t.TempDir()
			var ev export.Event
			done := make(chan struct{})
			h := newTestHandler(t, bigStore(t, 2_000), fixedUser("big_user"), slow, export.WithSpool(4096, dir), export.WithTimeouts(c.timeout),
				export.WithAuditHook(func(_ *http.Request, e export.Event) { ev = e; close(done) }))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				time.AfterFunc(deadline, cancel)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequestWithContext(ctx, c.method, "/api/export", nil)
			req.Header.Set("Accept-Encoding", "slow")
			start := time.Now()
			h.ServeHTTP(rec, req)
			took := time.Since(start)
			<-done
			require.Less(t, took, deadline+5*perChunk, "the wait for the compressor outlived the deadline")
			if c.cancel {
				require.Equal(t, export.OutcomeCanceled, ev.Outcome)
			} else {
				require.Equal(t, export.OutcomeTimeout, ev.Outcome)
				require.Equal(t, http.StatusServiceUnavailable, rec.Code)
				if c.method == http.MethodGet { // HEAD has no body
					require.Contains(t, rec.Body.String(), "compressing document")
				}
			}
			require.Empty(t, rec.Header().Get("Content-Encoding"))
			require.Zero(t, openFilesIn(t, dir), "a spool file is still open")
			goleak.VerifyNone(t, before)
		})
	}
}

// TestCodedSpoolReleasesFiles: a compressed export past the threshold
// holds two files while its body is sent (the document's and its coded
// form's), and none once it is sent; no goroutine outlives it.
func TestCodedSpoolReleasesFiles(t *testing.T) {
	before := goleak.IgnoreCurrent()
	dir := t.TempDir()
	h := newTestHandler(t, bigStore(t, 20_000), fixedUser("big_user"), export.WithSpool(4096, dir))
	open := -1
	w := &onWrite{ResponseRecorder: httptest.NewRecorder(), fn: func() { open = openFilesIn(t, dir) }}
	req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
	require.Greater(t, w.Body.Len(), 256<<10, "the coded form must be past its spool's memory, in a file")
	require.Equal(t, 2, open, "files open in the spool directory while the body is sent")
	require.Zero(t, openFilesIn(t, dir), "files still open after the export")
	goleak.VerifyNone(t, before)
}
