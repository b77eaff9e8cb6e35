package export_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
)

// The secrets a request and a document carry in the tests below. None of
// them may reach an audit event, a log line or another user's response.
const (
	secretCookie = "SESSION-COOKIE-7f3a"
	secretBearer = "BEARER-TOKEN-91c2"
	secretName   = "PAYLOAD-NAME-5d0e" // the user's name: in the document only
)

// secretRequest is a request as a browser or API client sends it, with a
// session cookie, a bearer token and a user ID of someone else's in
// every place a careless handler might read one from.
func secretRequest(ctx context.Context, method, url string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, url+"?userId=victim&user_id=victim", strings.NewReader(`{"userId":"victim"}`))
	req.Header.Set("Cookie", "session="+secretCookie)
	req.Header.Set("Authorization", "Bearer "+secretBearer)
	req.Header.Set("X-User-Id", "victim")
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestAuditEventPerOutcome: every request ends in exactly one audit event
// and one log line, whatever its outcome, and neither carries the
// payload, the cookie or the token.
func TestAuditEventPerOutcome(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	doc.User.Name = export.Some(secretName)
	store := storeOf(t, doc)
	store.PutUser(export.User{ID: "victim", Email: "victim@example.com", Name: export.Some("VICTIM-NAME")})
	blocking := newBlockingStore(t, doc.User.ID)

	var mu sync.Mutex
	var events []export.Event
	var logs bytes.Buffer
	opts := func(more ...export.Option) []export.Option {
		return append([]export.Option{
			export.WithLogger(slog.New(slog.NewJSONHandler(&syncWriter{mu: &mu, w: &logs}, nil))),
			export.WithAuditHook(func(_ *http.Request, ev export.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }),
		}, more...)
	}
	// The resolver reads the cookie as a session library would.
	resolve := func(r *http.Request) (string, error) {
		if c, err := r.Cookie("session"); err != nil || c.Value != secretCookie {
			return "", export.ErrNoSession
		}
		return doc.User.ID, nil
	}
	limiter := export.NewLimiter(export.Limits{})
	mux := http.NewServeMux()
	mux.Handle("/exported", export.NewHandler(export.NewExporter(store), resolve, opts()...))
	mux.Handle("/unauthorized", export.NewHandler(export.NewExporter(store), fixedUser(""), opts()...))
	mux.Handle("/failed", export.NewHandler(export.NewExporter(&faultStore{Store: store, stage: export.StageAgents, after: 3}), resolve, opts()...))
	mux.Handle("/aborted", export.NewHandler(export.NewExporter(&faultStore{Store: store, stage: export.StageWorkflows, after: 200}), resolve, opts(export.WithStreaming(true))...))
	mux.Handle("/blocking", export.NewHandler(export.NewExporter(blocking), resolve, opts(export.WithLimiter(limiter))...))
	srv, client := startServer(t, mux, false)

	send := func(ctx context.Context, method, path string) {
		resp, err := client.Do(secretRequest(ctx, method, srv.URL+path))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	send(context.Background(), http.MethodGet, "/exported")
	send(context.Background(), http.MethodPost, "/exported")
	send(context.Background(), http.MethodGet, "/unauthorized")
	send(context.Background(), http.MethodGet, "/failed")
	send(context.Background(), http.MethodGet, "/aborted")
	// The first blocks in the store; the second is limited; then the
	// first one's client hangs up.
	ctx, hangUp := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { send(ctx, http.MethodGet, "/blocking"); close(done) }()
	<-blocking.entered
	send(context.Background(), http.MethodGet, "/blocking")
	hangUp()
	<-done
	client.CloseIdleConnections()
	srv.Close() // waits for every handler, so every event is in

	// A streamed export that fails cuts its connection before its handler
	// returns, so srv.Close does not wait for that one: wait for its event
	// and its log line (which may come in either order).
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 7 && strings.Count(logs.String(), `"msg":"export"`) >= 7
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	slices.SortStableFunc(events, func(a, b export.Event) int { return cmp.Compare(order[a.Outcome], order[b.Outcome]) })
	want := []export.Outcome{
		export.OutcomeExported, export.OutcomeMethodNotAllowed, export.OutcomeUnauthorized,
		export.OutcomeFailed, export.OutcomeAborted, export.OutcomeLimited, export.OutcomeCanceled,
	}
	var got []export.Outcome
	for _, ev := range events {
		got = append(got, ev.Outcome)
	}
	require.Equal(t, want, got, "one event per request")
	require.Equal(t, len(want), strings.Count(logs.String(), `"msg":"export"`), "one log line per request:\n%s", logs.String())

	ok := events[0]
	require.Equal(t, doc.User.ID, ok.UserID)
	require.Equal(t, http.StatusOK, ok.Status)
	require.Equal(t, [3]int{len(doc.Agents), len(doc.ScheduledTasks), len(doc.Workflows)}, [3]int{ok.Agents, ok.ScheduledTasks, ok.Workflows})
	require.Positive(t, ok.Bytes)
	require.Equal(t, http.StatusInternalServerError, events[3].Status)
	require.Equal(t, 3, events[3].Agents, "records written before the failure")
	require.ErrorIs(t, events[3].Err, errSecret, "the hook gets the full error")
	require.Equal(t, http.StatusTooManyRequests, events[5].Status)

	everything := logs.String() + fmt.Sprintf("%+v", events)
	for _, secret := range []string{secretCookie, secretBearer, secretName, "VICTIM-NAME", "victim@example.com"} {
		require.NotContains(t, everything, secret, "an audit event or log line carries a secret")
	}
	for _, ev := range events {
		require.NotEqual(t, "victim", ev.UserID)
		require.Regexp(t, `^[a-z]+(_[a-z]+)*$`, string(ev.Outcome), "an outcome is an identifier, for logs and metrics labels")
	}
}

// TestHeadEventBytes: a HEAD's event has the size a GET would have sent.
func TestHeadEventBytes(t *testing.T) {
	var events []export.Event
	h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
	get := do(h, http.MethodGet)
	head := do(h, http.MethodHead)
	require.Empty(t, head.Body.String())
	require.Len(t, events, 2)
	require.Equal(t, int64(get.Body.Len()), events[0].Bytes)
	require.Equal(t, events[0].Bytes, events[1].Bytes, "HEAD: the size GET sent")
}

// order is the order in which TestAuditEventPerOutcome sends requests.
var order = map[export.Outcome]int{
	export.OutcomeExported: 0, export.OutcomeMethodNotAllowed: 1, export.OutcomeUnauthorized: 2,
	export.OutcomeFailed: 3, export.OutcomeAborted: 4, export.OutcomeLimited: 5, export.OutcomeCanceled: 6,
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestEveryResponseIsNoStore: every answer of the handler, success or
// not, spooled or streamed, GET or HEAD, says no-store and nosniff, so no
// shared cache keeps a user's file and no browser guesses its type; and
// only a 200 names a file.
func TestEveryResponseIsNoStore(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	busy := export.NewLimiter(export.Limits{})
	release, err := busy.Acquire(context.Background(), doc.User.ID)
	require.NoError(t, err)
	defer release()
	handlers := map[string]http.Handler{
		"exported":         newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID)),
		"exported to file": newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithSpool(4096, t.TempDir())),
		"streamed":         newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithStreaming(true)),
		"unauthorized":     newTestHandler(t, storeOf(t, doc), fixedUser("")),
		"gone user":        newTestHandler(t, storeOf(t, doc), fixedUser("ghost")),
		"limited":          newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithLimiter(busy)),
		"failed":           newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows}, fixedUser(doc.User.ID)),
		"panicked":         newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageUser, panic: true}, fixedUser(doc.User.ID)),
		"resolver failed":  newTestHandler(t, storeOf(t, doc), func(*http.Request) (string, error) { return "", errSecret }),
	}
	for name, h := range handlers {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete} {
			t.Run(name+"/"+method, func(t *testing.T) {
				rec := do(h, method)
				require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
				require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
				require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				if rec.Code == http.StatusOK {
					require.Contains(t, rec.Header().Get("Content-Disposition"), "attachment; filename=")
				} else {
					require.Empty(t, rec.Header().Get("Content-Disposition"), "status %d", rec.Code)
					require.NotContains(t, rec.Body.String(), "hunter2")
				}
			})
		}
	}
}

// TestMountedAsDocumented: mounted as the docs say, only the exact path
// serves an export; look-alike paths that a cache might store as static
// files (/api/export/x.css, /api/export.css, encoded slashes, a path
// parameter) get a 404 or a redirect, never a document.
func TestMountedAsDocumented(t *testing.T) {
	s := exampleStore(t)
	for _, pattern := range []string{"/api/export", "GET /api/export"} {
		t.Run(pattern, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(pattern, newTestHandler(t, s, fixedUser("user_abc123")))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			for _, path := range []string{
				"/api/export/x.css", "/api/export.css", "/api/export/", "/api/export%2Fx.css",
				"/api/export;x.css", "/api/export/..%2Fx.css", "/api/exportx.css", "/API/EXPORT", "/api/export/.css",
			} {
				resp, err := client.Get(srv.URL + path)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NotEqual(t, http.StatusOK, resp.StatusCode, "%s served: %s", path, body)
				require.NotContains(t, string(body), "user_abc123", path)
				require.Empty(t, resp.Header.Get("Content-Disposition"), path)
			}
			resp, err := client.Get(srv.URL + "/api/export?x.css")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "the query string does not change the path")
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "and the answer is still no-store")
		})
	}
}
