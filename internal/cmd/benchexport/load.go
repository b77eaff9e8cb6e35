package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// The load test: many clients export a mix of small accounts and one
// large one from the example server, on SQLite and (with -postgres) on
// PostgreSQL, until a duration or a number of requests is reached,
// whichever comes first. It then checks that the server's open files,
// goroutines and temporary files are back where they started.
//
//	go run ./internal/cmd/benchexport load -postgres 'postgres://user@127.0.0.1/db?sslmode=disable'

type loadConfig struct {
	duration    time.Duration
	maxRequests int
	clients     int
	largeEvery  int
	shape       shape
	dir         string
	postgres    string
}

func runLoad(args []string, stdout, stderr io.Writer) error {
	var c loadConfig
	fs := flag.NewFlagSet("benchexport load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "for", 30*time.Second, "how long each database's run lasts at most")
	fs.IntVar(&c.maxRequests, "max-requests", 1_000_000, "how many requests each database's run makes at most")
	fs.IntVar(&c.clients, "clients", 32, "concurrent clients")
	fs.IntVar(&c.largeEvery, "large-every", 20, "one request in this many is for the large account")
	fs.IntVar(&c.shape.big, "large-rows", 20_000, "records per section of the large account")
	fs.IntVar(&c.shape.others, "small", 200, "number of small accounts")
	fs.IntVar(&c.shape.otherRows, "small-rows", 100, "records per section of each small account")
	fs.StringVar(&c.dir, "dir", filepath.Join(os.TempDir(), "export-bench"), "directory for the generated SQLite files, kept between runs")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL DSN: also run on PostgreSQL, in a schema export_load that is dropped and made anew")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.duration <= 0 || c.maxRequests < 1 || c.clients < 1 || c.largeEvery < 1 || c.shape.big < 1 || c.shape.others < 1 || c.shape.otherRows < 0 {
		return errors.New("-for, -max-requests, -clients, -large-every, -large-rows and -small must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "benchexport-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	r := &runner{ctx: ctx, dir: work}
	if err := r.buildServer(); err != nil {
		return err
	}
	ds, err := openDataset(ctx, c.dir, c.shape, compositeIndex, stderr)
	if err != nil {
		return err
	}
	targets := []struct{ name, flag, value string }{{"SQLite", "-sqlite", ds.path}}
	if c.postgres != "" {
		fmt.Fprintln(stderr, "copying the data to PostgreSQL...")
		dsn, err := copyToPostgres(ctx, ds.path, c.postgres)
		if err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		targets = append(targets, struct{ name, flag, value string }{"PostgreSQL", "-postgres", dsn})
	}

	fmt.Fprintf(stdout, "## Load: %d clients, small accounts (%s records) and one large (%s records, 1 request in %d), at most %v or %s requests per database\n\n",
		c.clients, thousands(3*c.shape.otherRows), thousands(3*c.shape.big), c.largeEvery, c.duration, thousands(c.maxRequests))
	fmt.Fprintf(stdout, "%s.\n\n", machine())
	fmt.Fprintln(stdout, "| database | requests | exports/s | MB/s | small p50 | small p99 | large p50 | large p99 | 429 | errors | fds before/after | goroutines before/after | temp files after |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var failed []string
	for _, tg := range targets {
		fmt.Fprintf(stderr, "load on %s...\n", tg.name)
		res, err := r.soak(ds, c, tg.flag, tg.value)
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		fmt.Fprintf(stdout, "| %s | %s | %.0f | %.1f | %s | %s | %s | %s | %d | %d | %d / %d | %d / %d | %d |\n",
			tg.name, thousands(res.requests), float64(res.ok)/res.elapsed.Seconds(), float64(res.bytes)/(1<<20)/res.elapsed.Seconds(),
			ms(res.small, 50), ms(res.small, 99), ms(res.large, 50), ms(res.large, 99),
			res.refused, res.errors, res.fdsBefore, res.fdsAfter, res.goroutinesBefore, res.goroutinesAfter, res.tempFilesAfter)
		if res.errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors; the first: %s", tg.name, res.errors, res.firstError))
		}
		if res.fdsAfter > res.fdsBefore || res.goroutinesAfter > res.goroutinesBefore || res.tempFilesAfter > 0 {
			failed = append(failed, fmt.Sprintf("%s: the server did not return to its starting level", tg.name))
		}
	}
	fmt.Fprintln(stdout)
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

type soakResult struct {
	requests, ok, refused, errors     int
	bytes                             int64
	elapsed                           time.Duration
	small, large                      []time.Duration
	firstError                        string
	fdsBefore, fdsAfter               int
	goroutinesBefore, goroutinesAfter int
	tempFilesAfter                    int
}

// soak runs one database's load against a fresh example server, whose
// temporary directory is its own so that its files can be counted.
func (r *runner) soak(ds dataset, c loadConfig, dbFlag, dbValue string) (soakResult, error) {
	var res soakResult
	tmp, err := os.MkdirTemp(r.dir, "server-tmp-")
	if err != nil {
		return res, err
	}
	debug, err := freeAddr()
	if err != nil {
		return res, err
	}
	p, err := startProcess(r.ctx, r.dir, []string{r.server, dbFlag, dbValue, "-debug-addr", debug}, true, "TMPDIR="+tmp)
	if err != nil {
		return res, err
	}
	defer p.stop()

	users := []string{ds.userID}
	for i := range c.shape.others {
		users = append(users, otherUserID(i))
	}
	cookies := make([]*http.Cookie, len(users))
	for i, u := range users {
		if cookies[i], err = login(r.ctx, p.addr, u); err != nil {
			return res, err
		}
	}
	// The starting level is taken after a warm-up at full concurrency:
	// the database pool then holds its idle connections (and their files)
	// already, which are kept, not leaked.
	warm := c
	warm.maxRequests, warm.duration = min(c.maxRequests, 4*c.clients), c.duration
	if _, err := r.clients(p, warm, cookies); err != nil {
		return res, err
	}
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // the server sees the connections close
	if res.fdsBefore, res.goroutinesBefore, err = levels(p, debug); err != nil {
		return res, err
	}
	run, err := r.clients(p, c, cookies)
	if err != nil {
		return res, err
	}
	run.fdsBefore, run.goroutinesBefore = res.fdsBefore, res.goroutinesBefore
	res = run
	client.CloseIdleConnections()

	// The server's connections close as the client's do, a moment later:
	// wait (a bounded time) for its goroutines and files to settle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if res.fdsAfter, res.goroutinesAfter, err = levels(p, debug); err != nil {
			return res, err
		}
		if (res.fdsAfter <= res.fdsBefore && res.goroutinesAfter <= res.goroutinesBefore) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.tempFilesAfter, err = tempFiles(p, tmp)
	return res, err
}

// clients runs c.clients clients until c.duration or c.maxRequests.
func (r *runner) clients(p *process, c loadConfig, cookies []*http.Cookie) (soakResult, error) {
	var res soakResult
	var mu sync.Mutex
	var next int
	start := time.Now()
	var wg sync.WaitGroup
	for range c.clients {
		wg.Go(func() {
			for r.ctx.Err() == nil && time.Since(start) < c.duration {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= c.maxRequests {
					return
				}
				// Request i is for the large account once in largeEvery,
				// else for a small account, in turn.
				large := i%c.largeEvery == 0
				cookie := cookies[1+i%(len(cookies)-1)]
				if large {
					cookie = cookies[0]
				}
				t0 := time.Now()
				status, n, err := fetch(r.ctx, p.addr, cookie, io.Discard)
				d := time.Since(t0)
				mu.Lock()
				res.requests++
				switch {
				case err == nil && status == http.StatusOK:
					res.ok++
					res.bytes += n
					if large {
						res.large = append(res.large, d)
					} else {
						res.small = append(res.small, d)
					}
				case err == nil && status == http.StatusTooManyRequests:
					res.refused++
				default:
					res.errors++
					if res.firstError == "" {
						res.firstError = fmt.Sprintf("status %d, %v", status, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, r.ctx.Err()
}

// levels reads the server's open file descriptors (from /proc) and
// goroutines (from its profile page).
func levels(p *process, debugAddr string) (fds, goroutines int, err error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	resp, err := client.Get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n') // "goroutine profile: total 12"
	if err != nil {
		return 0, 0, err
	}
	_, total, ok := strings.Cut(strings.TrimSpace(line), "total ")
	if n, err := strconv.Atoi(total); ok && err == nil {
		return len(entries), n, nil
	}
	return 0, 0, fmt.Errorf("unexpected goroutine profile line %q", line)
}

// tempFiles counts the files in the server's temporary directory plus
// its open descriptors of files there (the spool unlinks its file at
// once, so an open one shows only as a descriptor).
func tempFiles(p *process, dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := len(entries)
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, err
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ms is the given percentile of the latencies, in milliseconds.
func ms(lat []time.Duration, pct int) string {
	if len(lat) == 0 {
		return "-"
	}
	slices.Sort(lat)
	return fmt.Sprintf("%.0f ms", float64(lat[min(len(lat)*pct/100, len(lat)-1)])/1e6)
}

// copyToPostgres copies the SQLite dataset's four tables, secret columns
// included, into a fresh schema export_load with the application's
// PostgreSQL DDL and the advised index, and returns the DSN that reaches
// it (search_path set).
func copyToPostgres(ctx context.Context, sqlitePath, dsn string) (string, error) {
	src, err := sql.Open("sqlite", "file:"+sqlitePath+"?mode=ro")
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", err
	}
	defer dst.Close()
	const schema = "export_load"
	for _, stmt := range append([]string{"DROP SCHEMA IF EXISTS " + schema + " CASCADE", "CREATE SCHEMA " + schema},
		sqlfixture.AppSchema(sqlstore.Postgres, schema+".")...) {
		if _, err := dst.ExecContext(ctx, stmt); err != nil {
			return "", fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	for _, table := range []string{"User", "Agent", "ScheduledTask", "Workflow"} {
		if err := copyTable(ctx, src, dst, table, schema+`."`+table+`"`); err != nil {
			return "", fmt.Errorf("copying %s: %w", table, err)
		}
	}
	l := sqlstore.PrismaLayout()
	for _, t := range []*string{&l.User.Table, &l.Agent.Table, &l.ScheduledTask.Table, &l.Workflow.Table} {
		*t = schema + "." + *t
	}
	stmts, err := sqlstore.Schema(sqlstore.Postgres, l)
	if err != nil {
		return "", err
	}
	for _, stmt := range append(stmts, "ANALYZE") {
		if _, err := dst.ExecContext(ctx, stmt); err != nil {
			return "", fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema, nil
}

// copyTable copies every row, 500 to a statement. SQLite's stored forms
// become PostgreSQL's types: timestamps (ISO text, offset text or Unix
// milliseconds) become time.Time, and enabled's 0/1 a boolean.
func copyTable(ctx context.Context, src, dst *sql.DB, table, target string) error {
	rows, err := src.QueryContext(ctx, "SELECT * FROM `"+table+"`")
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = `"` + c + `"`
	}
	insert := "INSERT INTO " + target + " (" + strings.Join(quoted, ", ") + ") VALUES "
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		var b strings.Builder
		b.WriteString(insert)
		for i := range len(args) / len(cols) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j := range cols {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "$%d", i*len(cols)+j+1)
			}
			b.WriteByte(')')
		}
		_, err := dst.ExecContext(ctx, b.String(), args...)
		args = args[:0]
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, c := range cols {
			v := vals[i]
			switch {
			case c == "createdAt" || c == "updatedAt":
				if v, err = storedTime(v); err != nil {
					return fmt.Errorf("%s: %w", c, err)
				}
			case c == "enabled":
				v = v.(int64) != 0
			}
			args = append(args, v)
		}
		if len(args) >= 500*len(cols) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return flush()
}

func storedTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time: // modernc reads text in a DATETIME column as a time
		return v.UTC(), nil
	case int64:
		return time.UnixMilli(v).UTC(), nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999-07:00"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("unreadable timestamp %q", v)
	}
	return time.Time{}, fmt.Errorf("unexpected timestamp %T", v)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
