package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// TestClientGoneMidExport: a client that hangs up while its export is
// reading rows ends the export at once. The rows are closed, the
// transaction is rolled back on the database server, the spool file is
// removed, no goroutine is left, and the pool's one connection (or its
// replacement, where the driver closed it) serves the next export.
func TestClientGoneMidExport(t *testing.T) {
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			store, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
			ctx := ctxFor(t)
			require.NoError(t, w.PutUser(ctx, export.User{ID: "alice", Email: "a@example.com", Role: "user"}))
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range 400 { // about 80 KB: the writer has handed bytes to the spool by the gate

				require.NoError(t, w.PutAgent(ctx, "alice", export.Agent{ID: "a" + strconv.Itoa(100+i), Name: "n", Model: "m", Status: "s", CreatedAt: at, UpdatedAt: at}))
			}
			// One connection: if the export left it inside a transaction,
			// the next export would run on it and the probe would see it.
			tdb.db.SetMaxOpenConns(1)
			tdb.db.SetMaxIdleConns(1)
			probe := newTxProbe(t, tdb)

			gate := &gateStore{Store: store, reading: make(chan struct{})}
			dir := t.TempDir()
			events := make(chan export.Event, 4)
			h := export.NewHandler(export.NewExporter(gate), func(*http.Request) (string, error) { return "alice", nil },
				export.WithSpool(16, dir), // the user part alone goes past it: a file exists mid-export
				export.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
				export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
			srv := httptest.NewServer(h)
			client := srv.Client()
			defer srv.Close()
			goroutines := goleak.IgnoreCurrent()

			reqCtx, hangUp := context.WithCancel(ctx)
			defer hangUp() // before srv.Close, if the test fails while the export waits
			done := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL, nil)
				// Identity: gzip would hold the first bytes in its
				// compressor, and no file would exist yet at the gate.
				req.Header.Set("Accept-Encoding", "identity")
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-gate.reading // gateAt agents are read; the rows and the transaction are open
			require.Equal(t, 1, openSpoolFiles(t, dir), "the document spools to a file")
			if probe != nil {
				require.True(t, probe(), "the probe does not see the open transaction")
			}
			hangUp()
			require.Error(t, <-done)

			var ev export.Event
			select {
			case ev = <-events:
			case <-time.After(30 * time.Second):
				t.Fatal("the export did not end after the client left")
			}
			require.Equal(t, export.OutcomeCanceled, ev.Outcome, "%v", ev.Err)
			require.ErrorIs(t, ev.Err, context.Canceled)
			require.Equal(t, gateAt, gate.read(), "rows were read after the client left")
			require.Zero(t, openSpoolFiles(t, dir), "the spool file is still open")
			files, _ := os.ReadDir(dir)
			require.Empty(t, files, "temporary files left behind")
			require.Zero(t, tdb.db.Stats().InUse, "the connection was not given back")
			if probe != nil {
				// go-sql-driver/mysql closes a connection whose query's
				// context ends (the pool then drops it), and the server
				// rolls back once it notices: not at once. Polled slowly:
				// InnoDB refreshes innodb_trx only when it was last read
				// more than 100 ms ago, so a fast poll reads a stale copy
				// for ever.
				require.Eventually(t, func() bool { return !probe() }, 10*time.Second, 300*time.Millisecond, "the transaction is still open on the server")
			}

			// The process keeps serving, with at most one connection.
			gate.reading = nil
			resp, err := client.Get(srv.URL)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			doc, err := export.Decode(bytes.NewReader(body))
			require.NoError(t, err)
			require.Len(t, doc.Agents, 400)
			<-events

			client.CloseIdleConnections()
			srv.Close()
			// The pool may hold a new connection (where the driver closed
			// the first), and go-sql-driver/mysql runs a goroutine for
			// each: close the idle ones, so that what is left is a leak.
			tdb.db.SetMaxIdleConns(0)
			goleak.VerifyNone(t, goroutines)
		})
	}
}

// newTxProbe returns a function that reports whether the pool's one
// connection is inside a transaction, asked from a separate connection so
// that it works while the export holds that one; nil for SQLite, whose
// transactions have no server to ask (the second export on the same
// connection shows there that none was left open: SQLite refuses to BEGIN
// inside a transaction).
func newTxProbe(t *testing.T, tdb *testDB) func() bool {
	t.Helper()
	var idQuery, probeQuery string
	var driver, dsn string
	switch tdb.dialect {
	case sqlstore.Postgres:
		idQuery = "SELECT pg_backend_pid()"
		probeQuery = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state <> 'idle'"
		driver, dsn = "pgx", os.Getenv(postgresEnv)
	case sqlstore.MySQL:
		idQuery = "SELECT CONNECTION_ID()"
		probeQuery = "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?"
		driver, dsn = "mysql", os.Getenv(mysqlEnv)
	default:
		return nil
	}
	var id int64
	require.NoError(t, tdb.db.QueryRow(idQuery).Scan(&id))
	other, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	other.SetMaxOpenConns(1)
	t.Cleanup(func() { other.Close() })
	require.NoError(t, other.Ping()) // its connection exists before goroutines are counted
	return func() bool {
		var n int
		require.NoError(t, other.QueryRow(probeQuery, id).Scan(&n))
		return n > 0
	}
}

// gateAt is the agent after which gateStore pauses.
const gateAt = 300

// gateStore pauses the agents section after gateAt records until the
// request's context ends, and counts the records read.
type gateStore struct {
	export.Store
	reading chan struct{} // closed after gateAt agents; nil: no pause

	mu sync.Mutex
	n  int
}

func (g *gateStore) read() int { g.mu.Lock(); defer g.mu.Unlock(); return g.n }

func (g *gateStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	return g.Store.View(ctx, id, func(tx export.Tx) error { return fn(gateTx{tx, g}) })
}

type gateTx struct {
	export.Tx
	g *gateStore
}

func (t gateTx) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return func(yield func(export.Agent, error) bool) {
		for a, err := range t.Tx.Agents(ctx) {
			if err == nil {
				t.g.mu.Lock()
				t.g.n++
				pause := t.g.n == gateAt
				t.g.mu.Unlock()
				if pause && t.g.reading != nil {
					close(t.g.reading)
					<-ctx.Done()
				}
			}
			if !yield(a, err) {
				return
			}
		}
	}
}

// openSpoolFiles counts this process's open files in dir. The spool
// unlinks its file as soon as it is created, so on Linux the file shows
// only here, as a descriptor, until the spool closes it.
func openSpoolFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("needs Linux /proc to see open files: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir+string(os.PathSeparator)) {
			n++
		}
	}
	return n
}
