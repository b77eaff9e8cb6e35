// Command server is a runnable demo of the export handler: a tiny web app
// with a demo sign-in and a "Download my data" link, serving exports from
// an SQL database through package sqlstore.
//
//	go run ./examples/server                     # a demo SQLite file in the temp directory
//	go run ./examples/server -sqlite app.db      # this SQLite file
//	go run ./examples/server -postgres 'postgres://user@localhost/app?sslmode=disable'
//	go run ./examples/server -mysql 'user:pass@tcp(localhost:3306)/app'
//
// Flags: -addr (default 127.0.0.1:8080), -layout (prisma, the default, or
// snake_case), -debug-addr (the runtime's profiles, for load tests; off),
// -client-idle (the export's client deadline; the library's default),
// -builtin-gzip (serve gzip with the library's own coding, the standard
// library's, rather than klauspost/compress's faster one; for
// benchexport's comparison), -jobs-db and -files (where the prepared
// archives' jobs and files are kept: beside the SQLite data file, or in
// the temp directory).
// Tables the layout names are created if missing, and the demo users
// demo-jane and demo-sam are added only when there are no users at all: a
// database that has the application's tables and users is served as it
// is. An existing SQLite file keeps its journal mode (WAL is a property
// of the file, which would outlive the demo); one the demo creates uses
// WAL. If the SQLite file is replaced while the demo runs, every request
// gets a 503 until it is restarted: the pool's open connections would
// otherwise go on reading the old file while new ones read the new.
//
// Sign-in is a 401 for a user that does not exist and a 503, logged with
// its cause, when the database could not be asked.
//
// Sign-in takes a user ID and no password: it is a demo, never a pattern
// for a real application, which has its own authentication and gives the
// export handler a resolver over its own sessions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. If ready is
// not nil it receives the listening address (tests use port 0).
func run(ctx context.Context, args []string, out io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	var cfg dataConfig
	fs.StringVar(&cfg.sqlite, "sqlite", "", "SQLite file to serve (created if missing; default "+defaultSQLitePath()+")")
	fs.StringVar(&cfg.postgres, "postgres", "", "PostgreSQL DSN to serve from, e.g. postgres://user@localhost/app?sslmode=disable")
	fs.StringVar(&cfg.mysql, "mysql", "", "MySQL or MariaDB DSN to serve from, e.g. user:pass@tcp(localhost:3306)/app")
	fs.StringVar(&cfg.layout, "layout", "prisma", "table layout: "+strings.Join(sqlstore.LayoutNames(), " or "))
	clientIdle := fs.Duration("client-idle", 0, "how long a client may take to accept the next 32 KiB of an export before it is cut (0: the library's default, 30s)")
	builtinGzip := fs.Bool("builtin-gzip", false, "serve gzip with the library's built-in coding (the standard library's) instead of klauspost/compress's faster one, to compare them")
	jobsDB := fs.String("jobs-db", "", "SQLite file of the archive jobs (River's queue and export_job; default beside the data: "+filepath.Join(os.TempDir(), "export-demo-jobs.db")+")")
	filesDir := fs.String("files", "", "private directory of the prepared archives (default beside the jobs file: "+filepath.Join(os.TempDir(), "export-demo-files")+")")
	debugAddr := fs.String("debug-addr", "", "also serve the Go runtime's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off by default, and never for a public address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	data, err := openData(openCtx, cfg)
	cancelOpen()
	if err != nil {
		return err
	}
	defer data.db.Close()
	logger := slog.New(slog.NewTextHandler(out, nil))
	app := newApp(data.store, data.users, logger, export.WithTimeouts(export.Timeouts{ClientIdle: *clientIdle}))
	app.replaced = data.replaced
	app.builtinGzip = *builtinGzip

	defaultDB, defaultFiles := jobsPaths(data)
	if *jobsDB == "" {
		*jobsDB = defaultDB
	}
	if *filesDir == "" {
		*filesDir = defaultFiles
	}
	openCtx, cancelOpen = context.WithTimeout(ctx, 30*time.Second)
	archives, closeArchives, err := openArchives(openCtx, *jobsDB, *filesDir, export.NewExporter(data.store), logger)
	cancelOpen()
	if err != nil {
		return fmt.Errorf("archive jobs: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closeArchives(stopCtx)
	}()
	app.archives = archives

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(out, "export demo: data in %s (%s layout)\n", data.where, cfg.layout)
	for _, n := range data.notes {
		fmt.Fprintf(out, "export demo: %s\n", n)
	}
	fmt.Fprintf(out, "export demo: archive jobs in %s, their files in %s\n", *jobsDB, *filesDir)
	signIn := "any user ID"
	if len(data.users) > 0 {
		signIn = strconv.Quote(data.users[0])
	}
	fmt.Fprintf(out, "export demo: open http://%s/ and sign in as %s (demo only: no password)\n", ln.Addr(), signIn)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if *debugAddr != "" {
		dl, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			srv.Close()
			return err
		}
		debug := &http.Server{Handler: debugRoutes(), ReadHeaderTimeout: 10 * time.Second}
		defer debug.Close()
		go debug.Serve(dl)
		fmt.Fprintf(out, "export demo: profiles on http://%s/debug/pprof/\n", dl.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(out, "shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// debugRoutes serves the runtime's profiles, on their own listener so
// that they never share the application's address.
func debugRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
