package export_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbot/export"
)

// swallowingRecoverer is the kind of recoverer middleware that turns
// every panic, http.ErrAbortHandler included, into a 500. chi's and the
// standard library's let ErrAbortHandler through; not all do.
func swallowingRecoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if recover() != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// startServer serves h over HTTP/1.1, or over HTTP/2 with TLS, and
// returns its URL and a client for it.
func startServer(t *testing.T, h http.Handler, http2 bool) (*httptest.Server, *http.Client) {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the expected "superfluous WriteHeader" and hijack lines
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, srv.Client()
}

// TestStreamingAbortThroughRecoverers: when a streamed export fails after
// its first bytes, the client sees a broken transfer even when the
// handler is mounted behind a recoverer middleware, and the server keeps
// serving. Over HTTP/1.1 that holds even for a recoverer that swallows
// every panic, because the handler closes the connection itself before
// panicking. HTTP/2 has no such way; there it needs a recoverer that lets
// http.ErrAbortHandler through, as chi's does (SECURITY.md says so).
func TestStreamingAbortThroughRecoverers(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	recoverers := []struct {
		name   string
		wrap   func(http.Handler) http.Handler
		http2  bool
		client string // what the client must see
	}{
		{"chi Recoverer/HTTP1.1", middleware.Recoverer, false, "unexpected EOF"},
		{"chi Recoverer/HTTP2", middleware.Recoverer, true, "stream error"},
		{"swallowing recoverer/HTTP1.1", swallowingRecoverer, false, "unexpected EOF"},
	}
	for _, rc := range recoverers {
		t.Run(rc.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []export.Event
			failing := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 200}, fixedUser(doc.User.ID),
				export.WithStreaming(true),
				export.WithAuditHook(func(_ *http.Request, ev export.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }))
			healthy := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithStreaming(true), clockAt(doc.ExportedAt))
			r := chi.NewRouter()
			r.Use(rc.wrap)
			r.Get("/api/export", failing.ServeHTTP)
			r.Get("/api/export-ok", healthy.ServeHTTP)
			srv, client := startServer(t, r, rc.http2)

			resp, err := client.Get(srv.URL + "/api/export")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Error(t, err, "the client must see the transfer fail; it got %d bytes and a clean end", len(body))
			require.ErrorContains(t, err, rc.client)
			require.NotContains(t, string(body), "ApiKeyHash")

			resp, err = client.Get(srv.URL + "/api/export-ok")
			require.NoError(t, err)
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err, "the server keeps serving")
			requireSameText(t, readGolden(t, "many-records"), string(body))

			// The handler cut the connection before it returned: its event
			// may come after the next request's answer.
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) > 0 }, 10*time.Second, 5*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, events, 1)
			require.Equal(t, export.OutcomeAborted, events[0].Outcome)
			require.ErrorIs(t, events[0].Err, errSecret)
		})
	}
}

// TestSpooledFailuresThroughRecoverer: behind chi's recoverer, a store
// that fails or panics still gets the contract's 500 from the handler
// itself (the recoverer never sees the panic), with nothing leaked.
func TestSpooledFailuresThroughRecoverer(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("panic=%v", panics), func(t *testing.T) {
			h := newTestHandler(t, &faultStore{Store: exampleStore(t), stage: export.StageAgents, panic: panics}, fixedUser("user_abc123"))
			srv, client := startServer(t, middleware.Recoverer(h), false)
			resp, err := client.Get(srv.URL)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := `{"error":"Export failed","message":"could not read agents"}`
			if panics {
				want = `{"error":"Export failed","message":"could not complete export"}`
			}
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			require.Equal(t, want, string(body))
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			require.Empty(t, resp.Header.Get("Content-Disposition"))
		})
	}
}

// TestSpoolDirectoryUnusable: a spool directory that cannot take a file
// gives the contract's 500, and the next export that fits in memory is
// served.
func TestSpoolDirectoryUnusable(t *testing.T) {
	base := t.TempDir()
	notADir := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))
	readOnly := filepath.Join(base, "read-only")
	require.NoError(t, os.Mkdir(readOnly, 0o500))
	cases := map[string]string{
		"missing":         filepath.Join(base, "does", "not", "exist"),
		"not a directory": notADir,
		"not writable":    readOnly,
	}
	big := goldenCases(t)["many-records"]
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			if name == "not writable" && os.Geteuid() == 0 {
				t.Skip("skipped as root: permission bits do not stop root from writing (the other cases cover the same failure)")
			}
			h := newTestHandler(t, storeOf(t, big), fixedUser(big.User.ID), export.WithSpool(4096, dir))
			requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not spool document"}`)
			small := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithSpool(4096, dir))
			require.Equal(t, http.StatusOK, do(small, http.MethodGet).Code, "a document under the threshold needs no file")
		})
	}
}

// TestHandlerLeavesNoGoroutine runs every kind of ending through a real
// server (success, 401, 405, 429, store failure, store panic, client gone,
// streamed abort) and checks that no goroutine outlives it.
func TestHandlerLeavesNoGoroutine(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	goroutines := goleak.IgnoreCurrent()
	blocking := newBlockingStore(t, "alice")
	limiter := export.NewLimiter(export.Limits{})
	mux := http.NewServeMux()
	mux.Handle("/ok", newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithSpool(4096, t.TempDir())))
	mux.Handle("/none", newTestHandler(t, exampleStore(t), fixedUser("")))
	mux.Handle("/fail", newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 100}, fixedUser(doc.User.ID)))
	mux.Handle("/panic", newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageAgents, panic: true}, fixedUser(doc.User.ID)))
	mux.Handle("/abort", newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 200}, fixedUser(doc.User.ID), export.WithStreaming(true)))
	mux.Handle("/block", newTestHandler(t, blocking, fixedUser("alice"), export.WithLimiter(limiter)))
	srv, client := startServer(t, mux, false)

	for path, status := range map[string]int{"/ok": 200, "/none": 401, "/fail": 500, "/panic": 500} {
		resp, err := client.Get(srv.URL + path)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, status, resp.StatusCode, path)
	}
	resp, err := client.Post(srv.URL+"/ok", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, err = client.Get(srv.URL + "/abort")
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Error(t, err)

	// One export blocks in the store; a second for the same user gets
	// 429; then the client of the first hangs up.
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	first := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/block", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	<-blocking.entered
	resp, err = client.Get(srv.URL + "/block")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	hangUp()
	require.Error(t, <-first)

	client.CloseIdleConnections()
	srv.Close()
	goleak.VerifyNone(t, goroutines)
}

// TestClientGoneWithRequestBody: a client that sends a body with its GET
// and then hangs up still stops its export. net/http notices a closed
// connection only once the request body has been read to its end, so the
// handler reads (and drops) small bodies first.
func TestClientGoneWithRequestBody(t *testing.T) {
	blocking := newBlockingStore(t, "alice")
	events := make(chan export.Event, 1)
	h := newTestHandler(t, blocking, fixedUser("alice"), export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
	srv, client := startServer(t, h, false)
	defer close(blocking.release) // unblocks the export if the test fails
	ctx, hangUp := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, strings.NewReader(`{"userId":"someone else"}`))
	go func() {
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-blocking.entered
	hangUp()
	select {
	case ev := <-events:
		require.Equal(t, export.OutcomeCanceled, ev.Outcome)
	case <-time.After(10 * time.Second):
		t.Fatal("the export went on after its client hung up")
	}
}
