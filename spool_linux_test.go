package export_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

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
