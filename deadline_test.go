package export_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbot/export"
)

// anyUser serves genStore's made-up account for every user ID.
type anyUser struct{ g *genStore }

func (a anyUser) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	return fn(a.g)
}

// countingLimiter is the default limiter, also counting the slots held.
type countingLimiter struct {
	export.Limiter
	held atomic.Int32
}

func (c *countingLimiter) Acquire(ctx context.Context, userID string) (func(), error) {
	release, err := c.Limiter.Acquire(ctx, userID)
	if err != nil {
		return nil, err
	}
	c.held.Add(1)
	var once sync.Once
	return func() { once.Do(func() { c.held.Add(-1); release() }) }, nil
}

// smallSendBuffers serves on a listener whose connections have a small
// kernel send buffer, so that a client that reads nothing blocks the
// server's writes after a few dozen KB instead of several MB.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return c, err
}

func startSmallBufferServer(t *testing.T, h http.Handler, configure func(*http.Server)) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// stallingClient sends GET / for user and never reads the answer. Its
// receive buffer is small, so the server's writes block at once.
func stallingClient(t *testing.T, addr, user string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\nX-Test-User: %s\r\n\r\n", user)
	require.NoError(t, err)
	return c
}

func userFromHeader(r *http.Request) (string, error) { return r.Header.Get("X-Test-User"), nil }

func openFDs(t *testing.T) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("needs Linux /proc to count open files: %v", err)
	}
	return len(fds)
}

// TestStalledClientsReleaseSlots: clients that send a request and never
// read the answer, as many as there are export slots, are cut after
// Timeouts.ClientIdle: their slots come back (another user is served
// while their sockets stay open), their spool files are closed, each
// audit event says "stalled", and no goroutine or descriptor is left.
// Without the client deadline the stalled exports held the slots for as
// long as their sockets stayed open, and the other user got 429.
func TestStalledClientsReleaseSlots(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		t.Run(map[bool]string{false: "spooled", true: "streaming"}[streaming], func(t *testing.T) {
			const idle = 300 * time.Millisecond
			dir := t.TempDir()
			limiter := &countingLimiter{Limiter: export.NewLimiter(export.Limits{Concurrent: 2, MaxWait: 5 * time.Second})}
			events := make(chan export.Event, 8)
			// About 4 MB: far more than the socket buffers hold.
			h := export.NewHandler(export.NewExporter(anyUser{&genStore{n: 10_000}}), userFromHeader,
				export.WithLimiter(limiter), export.WithSpool(0, dir), export.WithStreaming(streaming),
				export.WithTimeouts(export.Timeouts{ClientIdle: idle}),
				export.WithLogger(quietLogger),
				export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
			fds := openFDs(t)
			goroutines := goleak.IgnoreCurrent()
			srv := startSmallBufferServer(t, h, nil)

			stalled := []net.Conn{stallingClient(t, srv.Listener.Addr().String(), "s1"), stallingClient(t, srv.Listener.Addr().String(), "s2")}
			// Before srv.Close, which waits for every handler: a failing
			// test must not wait for ever on exports that never end.
			t.Cleanup(func() {
				for _, c := range stalled {
					c.Close()
				}
			})
			require.Eventually(t, func() bool { return limiter.held.Load() == 2 }, 5*time.Second, time.Millisecond, "the stalled exports hold both slots")

			start := time.Now()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("X-Test-User", "good")
			client := srv.Client()
			client.Timeout = 10 * time.Second
			resp, err := client.Do(req)
			require.NoError(t, err)
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "another user waits for a slot and is served")
			require.Greater(t, n, int64(3<<20))
			waited := time.Since(start)
			t.Logf("the other user was served after %v (client deadline %v)", waited.Round(time.Millisecond), idle)
			require.Less(t, waited, 2*time.Second, "the slots came back within the deadline")

			byUser := map[string]export.Event{}
			for range 3 {
				select {
				case ev := <-events:
					byUser[ev.UserID] = ev
				case <-time.After(5 * time.Second):
					t.Fatal("missing audit events")
				}
			}
			for _, u := range []string{"s1", "s2"} {
				require.Equal(t, export.OutcomeStalled, byUser[u].Outcome, "%s: %v", u, byUser[u].Err)
				require.Equal(t, http.StatusOK, byUser[u].Status)
			}
			require.Equal(t, export.OutcomeExported, byUser["good"].Outcome)
			require.Zero(t, limiter.held.Load(), "slots still held")
			require.Zero(t, openFilesIn(t, dir), "a spool file is still open")

			// The stalled clients' sockets are still open; the server has
			// closed its side.
			for _, c := range stalled {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := io.Copy(io.Discard, c)
				require.NoError(t, err, "the server did not close the stalled connection")
				c.Close()
			}
			srv.Client().CloseIdleConnections()
			srv.Close()
			goleak.VerifyNone(t, goroutines)
			require.Eventually(t, func() bool { return openFDs(t) <= fds }, 5*time.Second, 10*time.Millisecond, "descriptors left open")
		})
	}
}

// TestSlowClientsAreNotCut: a client that reads slowly but steadily gets
// its whole document, however long that takes, even behind an
// http.Server whose WriteTimeout and ReadTimeout are far shorter: the
// export's own deadlines replace them. (With the server's timeouts in
// force, without the export's own, the transfer was cut after 300 ms.)
// The same client over the kept connection is then served again: no
// deadline is left behind.
func TestSlowClientsAreNotCut(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		streaming, serverTOs  bool
		clientIdle, storeIdle time.Duration // the handler's deadlines
		pause                 time.Duration // the client's pause per 16 KiB
	}{
		{"spooled", false, false, 500 * time.Millisecond, 0, 10 * time.Millisecond},
		{"streaming", true, false, 500 * time.Millisecond, 0, 10 * time.Millisecond},
		{"spooled behind server timeouts", false, true, 500 * time.Millisecond, 0, 10 * time.Millisecond},
		{"streaming behind server timeouts", true, true, 500 * time.Millisecond, 0, 10 * time.Millisecond},
		// Writes wait longer than the store deadline for the client to
		// read: the time a write is in flight is not the store's.
		{"streaming to a client slower than the store deadline", true, false, 2 * time.Second, 100 * time.Millisecond, 150 * time.Millisecond},
	} {
		streaming := tc.streaming
		t.Run(tc.name, func(t *testing.T) {
			events := make(chan export.Event, 4)
			doc := &genStore{n: 4_000} // about 1.6 MB
			if tc.pause > 10*time.Millisecond {
				doc.n = 600
			}
			h := export.NewHandler(export.NewExporter(anyUser{doc}), userFromHeader,
				export.WithStreaming(streaming), export.WithSpool(64<<10, t.TempDir()),
				export.WithTimeouts(export.Timeouts{ClientIdle: tc.clientIdle, StoreIdle: tc.storeIdle}),
				export.WithLogger(quietLogger),
				export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
			srv := startSmallBufferServer(t, h, func(s *http.Server) {
				if tc.serverTOs {
					s.WriteTimeout = 300 * time.Millisecond
					s.ReadTimeout = 300 * time.Millisecond
				}
			})
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			// Small enough that the kernel cannot take the document in for
			// the client, large enough not to slow the transfer down to
			// a window per delayed ACK.
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
			br := bufio.NewReaderSize(c, 4<<10)
			start := time.Now()
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\nX-Test-User: slow\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var n int64
			buf := make([]byte, 4<<10)
			for sincePause := 0; ; {
				m, err := resp.Body.Read(buf)
				n += int64(m)
				if err == io.EOF {
					break
				}
				if err != nil {
					ev := <-events
					t.Fatalf("cut after %v and %d bytes: %v; the export: %s, %v", time.Since(start), n, err, ev.Outcome, ev.Err)
				}
				if sincePause += m; sincePause >= 16<<10 {
					sincePause = 0
					time.Sleep(tc.pause) // 16 KiB at a time: 1.6 MB/s at most with 10 ms pauses
				}
			}
			resp.Body.Close()
			took := time.Since(start)
			t.Logf("%d bytes in %v", n, took.Round(time.Millisecond))
			require.Greater(t, took, time.Second, "the transfer was not slow enough to prove anything")
			ev := <-events
			require.Equal(t, export.OutcomeExported, ev.Outcome, "%v", ev.Err)
			require.Equal(t, ev.Bytes, n)

			if tc.serverTOs {
				return // the server's idle timeout (its ReadTimeout) closes the connection
			}
			// The next request on the same connection, answered long after
			// the deadline of the export's last write: no deadline is left
			// on the connection (net/http clears it after each response).
			time.Sleep(700 * time.Millisecond)
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		})
	}
}

// frozenStore serves genStore's account but blocks, as a frozen database
// does, at one stage (after some records of a section), until its context
// ends; it honours the context as a database driver does.
type frozenStore struct {
	g     *genStore
	stage export.Stage
	after int
	delay time.Duration // if set: yield every record after this pause instead of freezing
}

func (f *frozenStore) freeze(ctx context.Context, stage export.Stage) error {
	if stage != f.stage {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *frozenStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	if err := f.freeze(ctx, export.StageOpen); err != nil {
		return err
	}
	return fn(f)
}

func (f *frozenStore) User(ctx context.Context) (export.User, error) {
	if err := f.freeze(ctx, export.StageUser); err != nil {
		return export.User{}, err
	}
	return f.g.User(ctx)
}

func frozenSeq[T any](ctx context.Context, f *frozenStore, stage export.Stage, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		i := 0
		for rec, err := range seq {
			if stage == f.stage && i >= f.after {
				if f.delay > 0 {
					select {
					case <-time.After(f.delay):
					case <-ctx.Done():
						var zero T
						yield(zero, ctx.Err())
						return
					}
				} else if err := f.freeze(ctx, stage); err != nil {
					var zero T
					yield(zero, err)
					return
				}
			}
			i++
			if !yield(rec, err) {
				return
			}
		}
	}
}

func (f *frozenStore) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return frozenSeq(ctx, f, export.StageAgents, f.g.Agents(ctx))
}

func (f *frozenStore) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	return frozenSeq(ctx, f, export.StageScheduledTasks, f.g.ScheduledTasks(ctx))
}

func (f *frozenStore) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	return frozenSeq(ctx, f, export.StageWorkflows, f.g.Workflows(ctx))
}

// TestFrozenStore: a store that yields nothing (a frozen database) at any
// step is canceled after Timeouts.StoreIdle with a 503, Retry-After and a
// message naming the step, and nothing of the driver; the audit event
// says "timeout". In streaming mode, once the first bytes are out, the
// connection is cut instead. Without the store deadline the export hung
// until the client gave up (the test's client waits 5 s).
func TestFrozenStore(t *testing.T) {
	const idle = 100 * time.Millisecond
	for _, tc := range []struct {
		stage export.Stage
		after int
		want  string
	}{
		{export.StageOpen, 0, "the database did not answer while opening data view"},
		{export.StageUser, 0, "the database did not answer while reading user"},
		{export.StageAgents, 10, "the database did not answer while reading agents"},
		{export.StageWorkflows, 500, "the database did not answer while reading workflows"},
	} {
		t.Run(string(tc.stage), func(t *testing.T) {
			events := make(chan export.Event, 2)
			store := &frozenStore{g: &genStore{n: 1000}, stage: tc.stage, after: tc.after}
			h := export.NewHandler(export.NewExporter(store), fixedUser("frozen"),
				export.WithTimeouts(export.Timeouts{StoreIdle: idle, RetryAfter: 7 * time.Second}),
				export.WithLogger(quietLogger),
				export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
			srv := httptest.NewServer(h)
			defer srv.Close()
			client := &http.Client{Timeout: 5 * time.Second}
			start := time.Now()
			resp, err := client.Get(srv.URL)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
			require.Equal(t, `{"error":"Export failed","message":"`+tc.want+`"}`, string(body))
			require.Equal(t, "7", resp.Header.Get("Retry-After"))
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Less(t, took, 2*time.Second)
			require.GreaterOrEqual(t, took, idle)
			ev := <-events
			require.Equal(t, export.OutcomeTimeout, ev.Outcome)
			require.Equal(t, http.StatusServiceUnavailable, ev.Status)
			require.ErrorIs(t, ev.Err, context.Canceled)
		})
	}

	// The 503 reaches the client even when it comes later than the
	// server's WriteTimeout, which the export's deadlines replace.
	// (Without that, the client saw the connection close with no answer.)
	t.Run("behind a shorter WriteTimeout", func(t *testing.T) {
		store := &frozenStore{g: &genStore{n: 10}, stage: export.StageAgents}
		h := export.NewHandler(export.NewExporter(store), fixedUser("frozen"),
			export.WithTimeouts(export.Timeouts{StoreIdle: 400 * time.Millisecond}), export.WithLogger(quietLogger))
		srv := httptest.NewUnstartedServer(h)
		srv.Config.WriteTimeout = 100 * time.Millisecond
		srv.Start()
		defer srv.Close()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(srv.URL)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
		require.Equal(t, "30", resp.Header.Get("Retry-After"))
	})

	t.Run("streaming", func(t *testing.T) {
		events := make(chan export.Event, 2)
		// Frozen in workflows, after more than a flush's worth of bytes.
		store := &frozenStore{g: &genStore{n: 1000}, stage: export.StageWorkflows, after: 500}
		h := export.NewHandler(export.NewExporter(store), fixedUser("frozen"), export.WithStreaming(true),
			export.WithTimeouts(export.Timeouts{StoreIdle: idle}),
			export.WithLogger(quietLogger),
			export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
		srv := httptest.NewServer(h)
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		defer srv.Close()
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(srv.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Error(t, err, "the streamed transfer must break")
		require.NotContains(t, err.Error(), "Timeout exceeded", "the client gave up before the server")
		ev := <-events
		require.Equal(t, export.OutcomeTimeout, ev.Outcome, "%v", ev.Err)
	})
}

// TestSlowStoreIsNotCut: a store that yields a record at a time, each
// within the store deadline, is served to the end however long it takes;
// Total, when set, still bounds it.
func TestSlowStoreIsNotCut(t *testing.T) {
	const idle = 150 * time.Millisecond
	store := &frozenStore{g: &genStore{n: 40}, stage: export.StageAgents, delay: 25 * time.Millisecond}
	h := export.NewHandler(export.NewExporter(store), fixedUser("slow"),
		export.WithTimeouts(export.Timeouts{StoreIdle: idle}), export.WithLogger(quietLogger))
	start := time.Now()
	rec := do(h, http.MethodGet)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Greater(t, time.Since(start), 6*idle, "the export was not slow enough to prove anything")

	h = export.NewHandler(export.NewExporter(store), fixedUser("slow"),
		export.WithTimeouts(export.Timeouts{StoreIdle: idle, Total: 300 * time.Millisecond}), export.WithLogger(quietLogger))
	start = time.Now()
	rec = do(h, http.MethodGet)
	requireErrorResponse(t, rec, http.StatusServiceUnavailable, `{"error":"Export failed","message":"the export ran out of time while reading agents"}`)
	require.Less(t, time.Since(start), 700*time.Millisecond)

	// A negative StoreIdle turns the store deadline off.
	store = &frozenStore{g: &genStore{n: 3}, stage: export.StageAgents, delay: 300 * time.Millisecond}
	h = export.NewHandler(export.NewExporter(store), fixedUser("slow"),
		export.WithTimeouts(export.Timeouts{StoreIdle: -1}), export.WithLogger(quietLogger))
	require.Equal(t, http.StatusOK, do(h, http.MethodGet).Code)
}

func TestTimeoutsWithDefaults(t *testing.T) {
	got := export.Timeouts{}.WithDefaults()
	require.Equal(t, export.Timeouts{ClientIdle: 30 * time.Second, StoreIdle: 60 * time.Second, RetryAfter: 30 * time.Second}, got)
	got = export.Timeouts{ClientIdle: -1, StoreIdle: -1, Total: -1, RetryAfter: -1}.WithDefaults()
	require.Equal(t, export.Timeouts{ClientIdle: -1, StoreIdle: -1, Total: -1, RetryAfter: -1}, got)
	require.True(t, strings.Contains(fmt.Sprint(got), "-1"))

	// A negative RetryAfter asks for no delay: the header's least, 1.
	store := &frozenStore{g: &genStore{n: 10}, stage: export.StageAgents}
	h := export.NewHandler(export.NewExporter(store), fixedUser("frozen"), export.WithLogger(quietLogger),
		export.WithTimeouts(export.Timeouts{StoreIdle: 20 * time.Millisecond, RetryAfter: -1}))
	rec := do(h, http.MethodGet)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
}
