package sqlstore_test

import (
	"context"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// freezeBefore runs freeze once, when the scheduled tasks section starts:
// the agents are read, and the database stops answering mid-export.
type freezeBefore struct {
	export.Store
	freeze func()
}

func (f freezeBefore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	return f.Store.View(ctx, id, func(tx export.Tx) error { return fn(freezeTx{tx, f.freeze}) })
}

type freezeTx struct {
	export.Tx
	freeze func()
}

func (t freezeTx) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	t.freeze()
	return t.Tx.ScheduledTasks(ctx)
}

// TestFrozenServer stops every process of a private database server
// (SIGSTOP; SIGCONT at the end) and exports: the store deadline cancels
// the export, the client gets a 503 with Retry-After naming the step the
// export was at, and the slot is free again (a second export is a 503
// too, not a 429). Thawed, the server serves the next export. Without
// the store deadline the export hung until the client gave up (here 10 s).
func TestFrozenServer(t *testing.T) {
	const idle = 500 * time.Millisecond
	for _, target := range privateTargets {
		t.Run(target.name, func(t *testing.T) {
			srv := target.start(t)
			pools := target.pools(t, srv)
			db := pools["defaults"]
			seedPrivate(t, db, target.dialect)
			store, err := sqlstore.New(db, target.dialect)
			require.NoError(t, err)
			for _, c := range []struct {
				name, message string
				store         export.Store
			}{
				{"frozen before the export", "the database did not answer while opening data view", store},
				{"frozen after the agents", "the database did not answer while reading scheduled tasks", freezeBefore{store, srv.freeze}},
			} {
				t.Run(c.name, func(t *testing.T) {
					events := make(chan export.Event, 4)
					h := export.NewHandler(export.NewExporter(c.store), func(*http.Request) (string, error) { return "alice", nil },
						export.WithTimeouts(export.Timeouts{StoreIdle: idle, RetryAfter: 10 * time.Second}),
						export.WithLogger(quietLogger()), export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
					hs := httptest.NewServer(h)
					defer hs.Close()
					client := &http.Client{Timeout: 10 * time.Second}
					get := func() (int, string, time.Duration) {
						start := time.Now()
						resp, err := client.Get(hs.URL)
						require.NoError(t, err)
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
						if resp.StatusCode == http.StatusServiceUnavailable {
							require.Equal(t, "10", resp.Header.Get("Retry-After"))
						}
						return resp.StatusCode, string(body), time.Since(start)
					}

					expect503 := func(what string) {
						t.Helper()
						code, body, took := get()
						require.Equal(t, http.StatusServiceUnavailable, code, "%s: %s", what, body)
						require.Equal(t, `{"error":"Export failed","message":"`+c.message+`"}`, body)
						require.Less(t, took, idle+2*time.Second)
						ev := <-events
						require.Equal(t, export.OutcomeTimeout, ev.Outcome, "%v", ev.Err)
						t.Logf("%s: %d after %v: %v", what, code, took.Round(time.Millisecond), ev.Err)
					}
					if c.store != store {
						expect503("the export during which the server froze")
					} else {
						code, body, _ := get()
						require.Equal(t, http.StatusOK, code, body)
						<-events
						srv.freeze()
						expect503("the first export while frozen")
						expect503("the second export while frozen: its slot came back")
					}
					srv.thaw()
					h2 := export.NewHandler(export.NewExporter(store), func(*http.Request) (string, error) { return "alice", nil },
						export.WithLogger(quietLogger()))
					rec := httptest.NewRecorder()
					h2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
					require.Equal(t, http.StatusOK, rec.Code, "after the thaw: %s", rec.Body)
				})
			}
		})
	}
}
