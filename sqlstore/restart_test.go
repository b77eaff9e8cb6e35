package sqlstore_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// privateTarget is a private server and how to reach its database.
type privateTarget struct {
	name    string
	dialect sqlstore.Dialect
	start   func(*testing.T) *privateServer
	// pools opens the pools to test on the server: the driver's defaults,
	// and one that never checks an idle connection before lending it (so
	// that the pool lends a dead one for certain).
	pools func(t *testing.T, s *privateServer) map[string]*sql.DB
}

var privateTargets = []privateTarget{
	{"PostgreSQL", sqlstore.Postgres, startPrivatePostgres, func(t *testing.T, s *privateServer) map[string]*sql.DB {
		cfg, err := pgx.ParseConfig(s.dsn)
		require.NoError(t, err)
		pools := map[string]*sql.DB{
			"defaults":      stdlib.OpenDB(*cfg),
			"no idle check": stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false })),
		}
		for _, db := range pools {
			t.Cleanup(func() { db.Close() })
		}
		return pools
	}},
	{"MariaDB", sqlstore.MySQL, startPrivateMariaDB, func(t *testing.T, s *privateServer) map[string]*sql.DB {
		mustExec(t, openPool(t, "mysql", s.dsn), "CREATE DATABASE export_test CHARACTER SET utf8mb4")
		return map[string]*sql.DB{
			"defaults":      openPool(t, "mysql", s.dsn+"export_test"),
			"no idle check": openPool(t, "mysql", s.dsn+"export_test?checkConnLiveness=false"),
		}
	}},
}

func openPool(t *testing.T, driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// seedPrivate creates the tables and one user with a few records.
func seedPrivate(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
	ctx := ctxFor(t)
	l := sqlstore.PrismaLayout()
	require.NoError(t, sqlstore.CreateTables(ctx, db, d, l))
	w := &sqlfixture.Writer{DB: db, Dialect: d, Layout: l, Times: sqlfixture.ISOText}
	require.NoError(t, w.PutUser(ctx, export.User{ID: "alice", Email: "a@example.com", Role: "user"}))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		require.NoError(t, w.PutAgent(ctx, "alice", export.Agent{ID: "a" + strconv.Itoa(100+i), Name: "n", Model: "m", Status: "s", CreatedAt: at, UpdatedAt: at}))
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestViewAfterServerRestart: the first export after the database server
// restarted succeeds. The pool's connections died with the old server;
// the one lent for the export fails at BEGIN (PostgreSQL sends 57P01 to
// every session it shuts down), and opening the view is retried once on
// a connection that answers. Without the retry the export was a 500
// "could not open data view", on both servers.
func TestViewAfterServerRestart(t *testing.T) {
	for _, target := range privateTargets {
		t.Run(target.name, func(t *testing.T) {
			srv := target.start(t)
			pools := target.pools(t, srv)
			seedPrivate(t, pools["defaults"], target.dialect)
			for _, name := range []string{"defaults", "no idle check"} {
				db := pools[name]
				t.Run(name, func(t *testing.T) {
					store, err := sqlstore.New(db, target.dialect)
					require.NoError(t, err)
					events := make(chan export.Event, 4)
					h := export.NewHandler(export.NewExporter(store), func(*http.Request) (string, error) { return "alice", nil },
						export.WithLogger(quietLogger()), export.WithAuditHook(func(_ *http.Request, ev export.Event) { events <- ev }))
					exportOnce := func() (int, string, export.Event) {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/export", nil))
						return rec.Code, rec.Body.String(), <-events
					}
					// Several idle connections, all of which the restart kills.
					db.SetMaxIdleConns(4)
					var conns []*sql.Conn
					for range 3 {
						c, err := db.Conn(ctxFor(t))
						require.NoError(t, err)
						conns = append(conns, c)
					}
					for _, c := range conns {
						c.Close()
					}
					code, body, ev := exportOnce()
					require.Equal(t, http.StatusOK, code, "%s %v", body, ev.Err)

					srv.restart()
					code, body, ev = exportOnce()
					require.Equal(t, http.StatusOK, code, "the first export after the restart: %s %v", body, ev.Err)
					require.Equal(t, 20, ev.Agents)
				})
			}
		})
	}
}
