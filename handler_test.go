package export_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
)

var exportTime = time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)

// quietLogger keeps the handler's per-request log lines out of test output.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func clockAt(at time.Time) export.Option { return export.WithClock(func() time.Time { return at }) }

// requireSameText compares documents with a line diff instead of a dump.
func requireSameText(t *testing.T, want, got string) {
	t.Helper()
	if want != got {
		t.Fatalf("documents differ (-want +got):\n%s", cmp.Diff(want, got))
	}
}

func fixedUser(id string) func(*http.Request) (string, error) {
	return func(*http.Request) (string, error) { return id, nil }
}

// newTestHandler serves the contract's example user from a memstore.
func newTestHandler(t testing.TB, store export.Store, resolve func(*http.Request) (string, error), opts ...export.Option) *export.Handler {
	t.Helper()
	opts = append([]export.Option{export.WithClock(func() time.Time { return exportTime }), export.WithLogger(quietLogger)}, opts...)
	return export.NewHandler(export.NewExporter(store), resolve, opts...)
}

func exampleStore(t testing.TB) *memstore.Store {
	return storeOf(t, goldenCases(t)["contract-example"])
}

func do(h http.Handler, method string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/api/export", nil))
	return rec
}

// requireErrorResponse checks the parts every error response shares.
func requireErrorResponse(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	require.Equal(t, status, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Empty(t, rec.Header().Get("Content-Disposition"))
	require.Equal(t, body, rec.Body.String())
	require.Equal(t, strconv.Itoa(len(body)), rec.Header().Get("Content-Length"))
}

func TestHandlerSuccess(t *testing.T) {
	h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"))
	want := readGolden(t, "contract-example")

	rec := do(h, http.MethodGet)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, want, rec.Body.String())
	wantHeaders := http.Header{
		"Content-Type":           {"application/json"},
		"Content-Disposition":    {`attachment; filename="agentbot-export-user_abc-2026-04-02.json"`},
		"Cache-Control":          {"no-store"},
		"X-Content-Type-Options": {"nosniff"},
		"Content-Length":         {strconv.Itoa(len(want))},
		"Repr-Digest":            {sha256Field(want)},
		"Vary":                   {"Accept-Encoding"},
	}
	require.Equal(t, wantHeaders, rec.Header())

	head := do(h, http.MethodHead)
	require.Equal(t, http.StatusOK, head.Code)
	require.Empty(t, head.Body.String())
	require.Equal(t, wantHeaders, head.Header(), "HEAD must answer with GET's headers")
}

func TestHandlerIgnoresUserIDInRequest(t *testing.T) {
	s := exampleStore(t)
	s.PutUser(export.User{ID: "victim", Email: "victim@example.com"})
	h := newTestHandler(t, s, fixedUser("user_abc123"))
	req := httptest.NewRequest(http.MethodGet, "/api/export?userId=victim&user=victim&id=victim", strings.NewReader(`{"userId":"victim"}`))
	req.Header.Set("X-User-Id", "victim")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), "victim")
	require.Equal(t, readGolden(t, "contract-example"), rec.Body.String())
}

func TestHandlerMethodNotAllowed(t *testing.T) {
	var resolved atomic.Int32
	h := newTestHandler(t, exampleStore(t), func(*http.Request) (string, error) { resolved.Add(1); return "user_abc123", nil })
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "PROPFIND"} {
		t.Run(m, func(t *testing.T) {
			rec := do(h, m)
			requireErrorResponse(t, rec, http.StatusMethodNotAllowed, `{"error":"Method Not Allowed"}`)
			require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
		})
	}
	require.Zero(t, resolved.Load(), "the resolver must not run for a method that is refused")
}

func TestHandlerUnauthorized(t *testing.T) {
	cases := []struct {
		name    string
		resolve func(*http.Request) (string, error)
	}{
		{"no session", func(*http.Request) (string, error) { return "", export.ErrNoSession }},
		{"wrapped no session", func(*http.Request) (string, error) {
			return "", fmt.Errorf("cookie expired: %w", export.ErrNoSession)
		}},
		{"no session with an ID", func(*http.Request) (string, error) { return "user_abc123", export.ErrNoSession }},
		{"empty ID", fixedUser("")},
		{"user not in store", fixedUser("ghost")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHandler(t, exampleStore(t), c.resolve)
			requireErrorResponse(t, do(h, http.MethodGet), http.StatusUnauthorized, `{"error":"Unauthorized"}`)
			head := do(h, http.MethodHead)
			require.Equal(t, http.StatusUnauthorized, head.Code)
			require.Empty(t, head.Body.String())
		})
	}
	t.Run("user deleted after sign-in", func(t *testing.T) {
		s := exampleStore(t)
		h := newTestHandler(t, s, fixedUser("user_abc123"))
		require.Equal(t, http.StatusOK, do(h, http.MethodGet).Code)
		s.DeleteUser("user_abc123")
		requireErrorResponse(t, do(h, http.MethodGet), http.StatusUnauthorized, `{"error":"Unauthorized"}`)
	})
}

// errSecret stands for a driver error full of things a client must not see.
var errSecret = errors.New(`pq: relation "ApiKeyHash" does not exist at db.internal:5432 /var/lib/secret password=hunter2`)

// faultStore wraps a store and fails (or panics) at one stage, after a
// number of records when the stage is a section.
type faultStore struct {
	export.Store
	stage export.Stage
	after int
	panic bool
}

func (f *faultStore) fail() error {
	if f.panic {
		panic(errSecret)
	}
	return errSecret
}

func (f *faultStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	if f.stage == export.StageOpen {
		return f.fail()
	}
	err := f.Store.View(ctx, id, func(tx export.Tx) error { return fn(faultTx{tx, f}) })
	if err == nil && f.stage == export.StageClose {
		return f.fail() // as an SQL store whose commit fails
	}
	return err
}

type faultTx struct {
	export.Tx
	f *faultStore
}

func (t faultTx) User(ctx context.Context) (export.User, error) {
	if t.f.stage == export.StageUser {
		return export.User{}, t.f.fail()
	}
	return t.Tx.User(ctx)
}

func (t faultTx) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return inject(t.f, export.StageAgents, t.Tx.Agents(ctx))
}
func (t faultTx) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	return inject(t.f, export.StageScheduledTasks, t.Tx.ScheduledTasks(ctx))
}
func (t faultTx) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	return inject(t.f, export.StageWorkflows, t.Tx.Workflows(ctx))
}

func inject[T any](f *faultStore, stage export.Stage, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	if f.stage != stage {
		return seq
	}
	return func(yield func(T, error) bool) {
		n := 0
		for v, err := range seq {
			if n == f.after {
				break
			}
			n++
			if !yield(v, err) {
				return
			}
		}
		var zero T
		yield(zero, f.fail())
	}
}

func TestHandlerStoreFailures(t *testing.T) {
	cases := []struct {
		stage export.Stage
		after int
		msg   string
	}{
		{export.StageOpen, 0, "could not open data view"},
		{export.StageUser, 0, "could not read user"},
		{export.StageAgents, 0, "could not read agents"},
		{export.StageAgents, 1, "could not read agents"},
		{export.StageScheduledTasks, 0, "could not read scheduled tasks"},
		{export.StageWorkflows, 0, "could not read workflows"},
		{export.StageWorkflows, 150, "could not read workflows"},
		{export.StageClose, 0, "could not close data view"},
	}
	for _, streaming := range []bool{false, true} {
		for _, c := range cases {
			if streaming && (c.after > 1 || c.stage == export.StageClose) {
				continue // a late failure aborts instead: TestStreamingAbortsOnLateFailure
			}
			t.Run(fmt.Sprintf("%s after %d streaming=%v", c.stage, c.after, streaming), func(t *testing.T) {
				doc := goldenCases(t)["many-records"]
				if streaming {
					// Streaming answers 500 only while nothing has been
					// sent, so it gets a document smaller than one flush.
					doc = goldenCases(t)["contract-example"]
				}
				var hooked []error
				var events []export.Event
				h := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: c.stage, after: c.after},
					fixedUser(doc.User.ID),
					export.WithStreaming(streaming),
					export.WithErrorHook(func(_ *http.Request, err error) { hooked = append(hooked, err) }),
					export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
				rec := do(h, http.MethodGet)
				// Nothing of the export, nor of the cause, reaches the client.
				requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"`+c.msg+`"}`)
				require.Len(t, hooked, 1)
				require.ErrorIs(t, hooked[0], errSecret, "the error hook gets the full error")
				var ee *export.Error
				require.ErrorAs(t, hooked[0], &ee)
				require.Equal(t, c.stage, ee.Stage)
				require.Len(t, events, 1)
				require.Equal(t, export.OutcomeFailed, events[0].Outcome)
				require.Equal(t, http.StatusInternalServerError, events[0].Status)
				require.ErrorIs(t, events[0].Err, errSecret)
			})
		}
	}
}

func TestHandlerDetailedErrors(t *testing.T) {
	h := newTestHandler(t, &faultStore{Store: exampleStore(t), stage: export.StageAgents}, fixedUser("user_abc123"), export.WithDetailedErrors(true))
	rec := do(h, http.MethodGet)
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Contains(t, rec.Body.String(), `could not read agents: pq: relation \"ApiKeyHash\"`)
}

func TestHandlerResolverFailure(t *testing.T) {
	var hooked error
	h := newTestHandler(t, exampleStore(t), func(*http.Request) (string, error) { return "", errSecret },
		export.WithErrorHook(func(_ *http.Request, err error) { hooked = err }))
	requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not resolve session"}`)
	require.ErrorIs(t, hooked, errSecret)
}

func TestHandlerPanics(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		h := newTestHandler(t, &faultStore{Store: exampleStore(t), stage: export.StageWorkflows, panic: true}, fixedUser("user_abc123"))
		requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not complete export"}`)
		// The handler keeps serving.
		h2 := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"))
		require.Equal(t, http.StatusOK, do(h2, http.MethodGet).Code)
	})
	t.Run("resolver", func(t *testing.T) {
		h := newTestHandler(t, exampleStore(t), func(*http.Request) (string, error) { panic("boom") })
		requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not complete export"}`)
	})
}

func TestHandlerSpoolFailure(t *testing.T) {
	missing := t.TempDir() + "/does/not/exist"
	h := newTestHandler(t, storeOf(t, goldenCases(t)["many-records"]), fixedUser("cmany000000000000000000000"), export.WithSpool(1024, missing))
	requireErrorResponse(t, do(h, http.MethodGet), http.StatusInternalServerError, `{"error":"Export failed","message":"could not spool document"}`)
}

// TestHandlerSpoolsToFile serves a document larger than the memory
// threshold and checks that it arrives whole and no file is left.
func TestHandlerSpoolsToFile(t *testing.T) {
	dir := t.TempDir()
	doc := goldenCases(t)["many-records"]
	h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithSpool(4096, dir), clockAt(doc.ExportedAt))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, coding := range []string{"identity", "gzip"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept-Encoding", coding) // set by hand: the Transport does not decode
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, int64(len(body)), resp.ContentLength, coding)
		requireSameText(t, readGolden(t, "many-records"), decodeBody(t, resp.Header.Get("Content-Encoding"), body))
	}
	left, _ := os.ReadDir(dir)
	require.Empty(t, left, "temporary files left behind")
}

func TestHandlerHostileUserIDs(t *testing.T) {
	cases := []struct{ id, want string }{
		{"user_abc123", "user_abc"},
		{"abc", "abc"},
		{`a"b;c=d`, "a_b_c_d"},
		{"x\r\nSet-Cookie: s=1", "x__Set-C"},
		{`\"\\`, "____"},
		{"ünï", "_n_"},
		{"🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉", "________"},
		{"\xff\xfe-_ok", "__-_ok"},
		{"a b\tc/../..", "a_b_c___"},
		{"%22%0d%0a", "_22_0d_0"},
	}
	for _, c := range cases {
		t.Run(strconv.Quote(c.id), func(t *testing.T) {
			s := memstore.New()
			s.PutUser(export.User{ID: c.id})
			h := newTestHandler(t, s, fixedUser(c.id))
			// A real server, so the header passes net/http's own checks.
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			require.NoError(t, err)
			require.Equal(t, "attachment", disp)
			require.Equal(t, map[string]string{"filename": "agentbot-export-" + c.want + "-2026-04-02.json"}, params)
		})
	}
}

func TestFilename(t *testing.T) {
	at := time.Date(2026, 4, 2, 23, 30, 0, 0, time.FixedZone("", -2*3600)) // already the 3rd in UTC
	require.Equal(t, "agentbot-export-abc-2026-04-03.json", export.Filename("agentbot-export", "abc", at))
	require.Equal(t, "my_app_-abcdefgh-2026-04-03.json", export.Filename("my app!", "abcdefghijk", at))
}

func TestHandlerFilenamePrefix(t *testing.T) {
	h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithFilenamePrefix(`acme"; x=`))
	require.Equal(t, `attachment; filename="acme___x_-user_abc-2026-04-02.json"`, do(h, http.MethodGet).Header().Get("Content-Disposition"))
}

// blockingStore holds every View open until released, to test limits.
type blockingStore struct {
	export.Store
	entered chan string
	release chan struct{}
}

func newBlockingStore(t *testing.T, users ...string) *blockingStore {
	s := memstore.New()
	for _, u := range users {
		s.PutUser(export.User{ID: u})
	}
	return &blockingStore{Store: s, entered: make(chan string, 16), release: make(chan struct{})}
}

func (b *blockingStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	b.entered <- id
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Store.View(ctx, id, fn)
}

func TestHandlerPerUserLimit(t *testing.T) {
	store := newBlockingStore(t, "alice", "bob")
	var user atomic.Value
	user.Store("alice")
	h := newTestHandler(t, store, func(*http.Request) (string, error) { return user.Load().(string), nil })

	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- do(h, http.MethodGet) }()
	require.Equal(t, "alice", <-store.entered)

	rec := do(h, http.MethodGet)
	requireErrorResponse(t, rec, http.StatusTooManyRequests, `{"error":"Too Many Requests"}`)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))

	// Another user is not held up by alice's export.
	user.Store("bob")
	second := make(chan *httptest.ResponseRecorder)
	go func() { second <- do(h, http.MethodGet) }()
	require.Equal(t, "bob", <-store.entered)

	close(store.release)
	require.Equal(t, http.StatusOK, (<-first).Code)
	require.Equal(t, http.StatusOK, (<-second).Code)
	user.Store("alice")
	require.Equal(t, http.StatusOK, do(h, http.MethodGet).Code, "the slot is released after the export")
}

func TestHandlerGlobalLimit(t *testing.T) {
	store := newBlockingStore(t, "a", "b", "c")
	limiter := export.NewLimiter(export.Limits{Concurrent: 1, MaxWait: 100 * time.Millisecond, RetryAfter: 1500 * time.Millisecond})
	resolveFrom := func(r *http.Request) (string, error) { return r.Header.Get("X-Test-Session"), nil }
	h := newTestHandler(t, store, resolveFrom, export.WithLimiter(limiter))
	get := func(user string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
		req.Header.Set("X-Test-Session", user)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- get("a") }()
	<-store.entered

	// b waits its turn for MaxWait, then is refused.
	start := time.Now()
	rec := get("b")
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	requireErrorResponse(t, rec, http.StatusTooManyRequests, `{"error":"Too Many Requests"}`)
	require.Equal(t, "2", rec.Header().Get("Retry-After"), "Retry-After is rounded up to whole seconds")

	// c waits and gets the slot when a finishes within MaxWait.
	third := make(chan *httptest.ResponseRecorder)
	go func() { third <- get("c") }()
	time.Sleep(20 * time.Millisecond)
	store.release <- struct{}{} // a proceeds
	require.Equal(t, http.StatusOK, (<-first).Code)
	require.Equal(t, "c", <-store.entered)
	close(store.release)
	require.Equal(t, http.StatusOK, (<-third).Code)
}

// recordingHandler is an slog.Handler that keeps the records it gets.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func TestHandlerAuditEvents(t *testing.T) {
	logs := &recordingHandler{}
	var events []export.Event
	h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"),
		export.WithLogger(slog.New(logs)),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
	body := do(h, http.MethodGet).Body.Len()
	do(h, http.MethodPost)
	do(h, http.MethodHead)

	require.Len(t, events, 3)
	assert.Equal(t, export.OutcomeExported, events[2].Outcome, "HEAD")
	assert.Equal(t, int64(body), events[2].Bytes, "HEAD")
	ok := events[0]
	assert.Equal(t, "user_abc123", ok.UserID)
	assert.Equal(t, export.OutcomeExported, ok.Outcome)
	assert.Equal(t, http.StatusOK, ok.Status)
	assert.Equal(t, int64(body), ok.Bytes)
	assert.Equal(t, [3]int{1, 1, 1}, [3]int{ok.Agents, ok.ScheduledTasks, ok.Workflows})
	assert.Positive(t, ok.Duration)
	assert.NoError(t, ok.Err)
	assert.Equal(t, export.OutcomeMethodNotAllowed, events[1].Outcome)
	assert.Empty(t, events[1].UserID)

	require.Len(t, logs.records, 3, "one log line per attempt")
	attrs := map[string]string{}
	logs.records[0].Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	assert.Equal(t, "user_abc123", attrs["user_id"])
	assert.Equal(t, "exported", attrs["outcome"])
	assert.Equal(t, strconv.Itoa(body), attrs["bytes"])
}

// TestStreamingSuccess checks the opt-in streaming mode end to end.
func TestStreamingSuccess(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithStreaming(true), clockAt(doc.ExportedAt))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	requireSameText(t, readGolden(t, "many-records"), string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Equal(t, int64(-1), resp.ContentLength, "a streamed body has no Content-Length")
	require.Empty(t, resp.Header.Get("Repr-Digest"), "a streamed body has no digest: the headers leave before the body is known")
}

// sha256Field is the Repr-Digest field value (RFC 9530) of body.
func sha256Field(body string) string {
	sum := sha256.Sum256([]byte(body))
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// TestReprDigest: a spooled 200 carries the SHA-256 of the bytes sent,
// from memory and from a spool file, for GET and HEAD alike; an error
// carries none.
func TestReprDigest(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	want := readGolden(t, "many-records")
	for name, opts := range map[string][]export.Option{
		"in memory":      nil,
		"in a temp file": {export.WithSpool(64, t.TempDir())},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), append(opts, clockAt(doc.ExportedAt))...)
			get := do(h, http.MethodGet)
			require.Equal(t, http.StatusOK, get.Code)
			requireSameText(t, want, get.Body.String())
			require.Equal(t, sha256Field(get.Body.String()), get.Header().Get("Repr-Digest"))
			require.Equal(t, sha256Field(want), get.Header().Get("Repr-Digest"))
			head := do(h, http.MethodHead)
			require.Equal(t, get.Header().Get("Repr-Digest"), head.Header().Get("Repr-Digest"), "HEAD, with the same clock, digests the same document")
		})
	}
	failing := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows}, fixedUser(doc.User.ID))
	rec := do(failing, http.MethodGet)
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Empty(t, rec.Header().Get("Repr-Digest"))
}

// TestStreamingAbortsOnLateFailure fails the store after the first bytes
// have gone out and checks that the client sees a broken transfer, not a
// complete-looking 200.
func TestStreamingAbortsOnLateFailure(t *testing.T) {
	doc := goldenCases(t)["many-records"] // ~150 KB: several flushes before the workflows
	var events []export.Event
	var mu sync.Mutex
	h := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 200}, fixedUser(doc.User.ID),
		export.WithStreaming(true),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.Error(t, err, "the client must see the transfer fail")
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NotContains(t, string(body), "ApiKeyHash")
	require.False(t, strings.HasSuffix(string(body), "\n}"), "the body must not look complete")

	// The server goes on serving: a retry at once is not refused by the
	// per-user limit (the failed export gave its slot back before the
	// connection was cut), and fails the same way. Each audit event says
	// what happened; the first handler may record its event after the
	// retry's, since the client saw the cut before that handler returned.
	resp2, err := http.Get(srv.URL)
	require.NoError(t, err)
	io.Copy(io.Discard, resp2.Body)
	resp2.Body.Close()
	require.Equal(t, http.StatusOK, resp2.StatusCode, "the retry was refused")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range events {
		require.Equal(t, export.OutcomeAborted, ev.Outcome)
		require.ErrorIs(t, ev.Err, errSecret)
	}
}

func TestHandlerClientGone(t *testing.T) {
	store := newBlockingStore(t, "alice")
	var events []export.Event
	h := newTestHandler(t, store, fixedUser("alice"), export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/api/export", nil).WithContext(ctx)
	go func() { <-store.entered; cancel() }()
	h.ServeHTTP(httptest.NewRecorder(), req)
	require.Len(t, events, 1)
	require.Equal(t, export.OutcomeCanceled, events[0].Outcome)
	require.ErrorIs(t, events[0].Err, context.Canceled)
}

func TestNewHandlerNeedsExporterAndResolver(t *testing.T) {
	require.Panics(t, func() { export.NewHandler(nil, fixedUser("x")) })
	require.Panics(t, func() { export.NewHandler(export.NewExporter(memstore.New()), nil) })
}

// lyingExporter writes a small document and reports a wrong size.
type lyingExporter struct{}

func (lyingExporter) Export(_ context.Context, w io.Writer, _ export.Request) (export.Result, error) {
	n, err := io.WriteString(w, "{}")
	return export.Result{Bytes: int64(n) + 1000}, err
}

func TestHandlerContentLengthIsMeasured(t *testing.T) {
	h := export.NewHandler(lyingExporter{}, fixedUser("u"), export.WithLogger(quietLogger))
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		rec := do(h, m)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "2", rec.Header().Get("Content-Length"), m)
	}
}

// TestHandlerClientGoneMidExport cancels the request while a large export
// is being spooled to a file, from a store that ignores its context: the
// export still stops, and no temporary file is left.
func TestHandlerClientGoneMidExport(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &cancelingStore{genStore: genStore{n: 1_000_000}, cancelAt: 50_000, cancel: cancel}
	var events []export.Event
	h := export.NewHandler(export.NewExporter(g), fixedUser("big"), export.WithLogger(quietLogger), export.WithSpool(64<<10, dir),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { events = append(events, ev) }))
	req := httptest.NewRequest(http.MethodGet, "/api/export", nil).WithContext(ctx)
	h.ServeHTTP(httptest.NewRecorder(), req)
	require.Len(t, events, 1)
	require.Equal(t, export.OutcomeCanceled, events[0].Outcome)
	require.Less(t, g.yielded, 60_000, "the export went on reading after the client left")
	left, _ := os.ReadDir(dir)
	require.Empty(t, left, "temporary files left behind")
}

// cancelingStore is a genStore that cancels the request after cancelAt
// records and counts how many it was asked for.
type cancelingStore struct {
	genStore
	cancelAt int
	cancel   func()
	yielded  int
}

func (c *cancelingStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	return fn(c)
}

func (c *cancelingStore) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return func(yield func(export.Agent, error) bool) {
		for a, err := range c.genStore.Agents(ctx) {
			if c.yielded++; c.yielded == c.cancelAt {
				c.cancel()
			}
			if !yield(a, err) {
				return
			}
		}
	}
}
