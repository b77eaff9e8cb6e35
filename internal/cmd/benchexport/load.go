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
	faulty      int           // fault mode: this many more clients, on accounts of their own
	behave      bool          // fault mode: those clients read their exports as the others do
	clientIdle  time.Duration // the server's client deadline in fault mode
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
	fs.IntVar(&c.faulty, "faulty", 0, "fault mode: run each database twice, the second time with this many more clients that misbehave (half stall without reading, half hang up mid-body), and compare the well-behaved clients' latency")
	fs.DurationVar(&c.clientIdle, "client-idle", time.Second, "fault mode: the server's client deadline (its -client-idle), in both runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.duration <= 0 || c.maxRequests < 1 || c.clients < 1 || c.largeEvery < 1 || c.shape.big < 1 || c.shape.others < 1 || c.shape.otherRows < 0 {
		return errors.New("-for, -max-requests, -clients, -large-every, -large-rows and -small must be positive")
	}
	if c.faulty < 0 || c.faulty > 0 && c.clientIdle <= 0 {
		return errors.New("-faulty must not be negative, and needs a positive -client-idle")
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
	if c.faulty > 0 {
		// Both runs of fault mode on the same file, with the faulty
		// clients' accounts in it.
		if ds.path, err = addFaultAccounts(ctx, ds, c.faulty, stderr); err != nil {
			return err
		}
	}
	targets := []loadTarget{{"SQLite", "-sqlite", ds.path}}
	if c.postgres != "" {
		fmt.Fprintln(stderr, "copying the data to PostgreSQL...")
		dsn, err := copyToPostgres(ctx, ds.path, c.postgres)
		if err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		targets = append(targets, loadTarget{"PostgreSQL", "-postgres", dsn})
	}

	if c.faulty > 0 {
		fmt.Fprintf(stdout, "%s.\n\n", machine())
		if failed := r.faultRuns(ds, c, targets, stdout, stderr); len(failed) > 0 {
			return errors.New(strings.Join(failed, "; "))
		}
		return nil
	}
	c.clientIdle = 0 // the server's default
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

// faultRuns runs each database twice on a fresh server with the same
// client deadline: the well-behaved clients alone, then beside c.faulty
// clients that misbehave, each on an account of its own. It reports the
// well-behaved clients' latency in both and what became of the faults.
func (r *runner) faultRuns(ds dataset, c loadConfig, targets []loadTarget, stdout, stderr io.Writer) []string {
	stalling := (c.faulty + 1) / 2
	fmt.Fprintf(stdout, "## Load with faults: %d well-behaved clients, small accounts (%s records) and one large (%s records, 1 request in %d), beside %d more clients, each on a copy of the large account of its own: first they read their exports as the others do, then they misbehave (%d stall: they send the request and read nothing for %v, twice the server's client deadline of %v, then check that they were cut; %d hang up after the first 16 KiB of the body), at most %v or %s requests per run\n\n",
		c.clients, thousands(3*c.shape.otherRows), thousands(3*c.shape.big), c.largeEvery, c.faulty, stalling, 2*c.clientIdle, c.clientIdle, c.faulty-stalling, c.duration, thousands(c.maxRequests))
	fmt.Fprintln(stdout, "| database | run | good requests | good small p50 | good small p99 | good large p99 | good 429 | good errors | extra: whole exports | stalls (cut) | hang-ups | refused | fds before/after | goroutines before/after | temp files after |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var failed, summary []string
	for _, tg := range targets {
		var p99 [2]time.Duration
		for run, behave := range []bool{true, false} {
			name := fmt.Sprintf("%d extra clients behave", c.faulty)
			if !behave {
				name = fmt.Sprintf("%d extra clients misbehave", c.faulty)
			}
			fmt.Fprintf(stderr, "load on %s, %s...\n", tg.name, name)
			fc := c
			fc.behave = behave
			res, err := r.soak(ds, fc, tg.flag, tg.value)
			if err != nil {
				return append(failed, fmt.Sprintf("%s: %v", tg.name, err))
			}
			fmt.Fprintf(stdout, "| %s | %s | %s | %s | %s | %s | %d | %d | %d | %d (%d) | %d | %d | %d / %d | %d / %d | %d |\n",
				tg.name, name, thousands(res.requests), ms(res.small, 50), ms(res.small, 99), ms(res.large, 99), res.refused, res.errors,
				res.faultReads, res.stalls, res.stallsCut, res.hangups, res.faultOther, res.fdsBefore, res.fdsAfter, res.goroutinesBefore, res.goroutinesAfter, res.tempFilesAfter)
			p99[run] = percentile(res.small, 99)
			if res.firstOther != "" {
				fmt.Fprintf(stderr, "%s, %s: %d of the extra clients' requests were refused or failed before they could misbehave; the first: %s\n", tg.name, name, res.faultOther, res.firstOther)
			}
			if res.errors > 0 {
				failed = append(failed, fmt.Sprintf("%s, %s: %d errors for well-behaved clients; the first: %s", tg.name, name, res.errors, res.firstError))
			}
			if res.stallsCut < res.stalls {
				failed = append(failed, fmt.Sprintf("%s: %d of %d stalled clients were not cut: %s", tg.name, res.stalls-res.stallsCut, res.stalls, res.firstFault))
			}
			if res.fdsAfter > res.fdsBefore || res.goroutinesAfter > res.goroutinesBefore || res.tempFilesAfter > 0 {
				failed = append(failed, fmt.Sprintf("%s, %s: the server did not return to its starting level", tg.name, name))
			}
		}
		ratio := float64(p99[1]) / float64(p99[0])
		verdict := "met"
		if ratio > 2 {
			verdict = "NOT met"
		}
		summary = append(summary, fmt.Sprintf("- %s: the well-behaved clients' small-account p99 while the extra clients misbehave is %.2fx what it is while they behave (goal: at most 2x): %s", tg.name, ratio, verdict))
	}
	fmt.Fprintln(stdout)
	for _, l := range summary {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout)
	return failed
}

func percentile(lat []time.Duration, pct int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)*pct/100, len(lat)-1)]
}

// loadTarget is a database the load runs on: the server's flag for it.
type loadTarget struct{ name, flag, value string }

type soakResult struct {
	requests, ok, refused, errors     int
	bytes                             int64
	elapsed                           time.Duration
	small, large                      []time.Duration
	firstError                        string
	fdsBefore, fdsAfter               int
	goroutinesBefore, goroutinesAfter int
	tempFilesAfter                    int
	// fault mode: the misbehaving clients' requests
	stalls, stallsCut, hangups int
	faultReads                 int // the extra clients' whole exports, when they behave
	faultOther                 int // faulty clients' requests refused (429) or failed before misbehaving
	firstFault, firstOther     string
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
	// The demo's archive jobs keep their queue and files outside the
	// temporary directory, which must hold no file after the run.
	jobsDir, err := os.MkdirTemp(r.dir, "server-jobs-")
	if err != nil {
		return res, err
	}
	argv := []string{r.server, dbFlag, dbValue, "-debug-addr", debug,
		"-jobs-db", filepath.Join(jobsDir, "jobs.db"), "-files", filepath.Join(jobsDir, "files")}
	if c.clientIdle > 0 {
		argv = append(argv, "-client-idle", c.clientIdle.String())
	}
	p, err := startProcess(r.ctx, r.dir, argv, true, "TMPDIR="+tmp)
	if err != nil {
		return res, err
	}
	defer p.stop()
	if err := settle(p, debug); err != nil {
		return res, err
	}

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
	// The faulty clients have accounts of their own, so that the per-user
	// limit never refuses a well-behaved client because a faulty one
	// holds its account.
	var faultCookies []*http.Cookie
	for i := range c.faulty {
		cookie, err := login(r.ctx, p.addr, faultUserID(i))
		if err != nil {
			return res, err
		}
		faultCookies = append(faultCookies, cookie)
	}
	// The starting level is taken after a warm-up at full concurrency:
	// the database pool then holds its idle connections (and their files)
	// already, which are kept, not leaked.
	warm := c
	warm.maxRequests, warm.duration = min(c.maxRequests, 4*c.clients), c.duration
	warm.faulty = 0
	if _, err := r.clients(p, warm, cookies, nil); err != nil {
		return res, err
	}
	client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // the server sees the connections close
	if res.fdsBefore, res.goroutinesBefore, err = levels(p, debug); err != nil {
		return res, err
	}
	run, err := r.clients(p, c, cookies, faultCookies)
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

// clients runs c.clients clients until c.duration or c.maxRequests, and
// beside them one misbehaving client per faultCookies (see faulty).
func (r *runner) clients(p *process, c loadConfig, cookies, faultCookies []*http.Cookie) (soakResult, error) {
	var res soakResult
	var mu sync.Mutex
	var next int
	start := time.Now()
	var wg sync.WaitGroup
	done := make(chan struct{})
	var faults sync.WaitGroup
	for i, cookie := range faultCookies {
		mode := []string{"stall", "hang up"}[i%2]
		if c.behave {
			mode = "read"
		}
		faults.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				outcome, err := misbehave(p.addr, cookie, mode, 2*c.clientIdle)
				mu.Lock()
				switch outcome {
				case "read":
					res.faultReads++
				case "cut":
					res.stalls++
					res.stallsCut++
				case "whole":
					res.stalls++
					if res.firstFault == "" {
						res.firstFault = fmt.Sprintf("a stalled client got its whole document (%v): the kernel's socket buffers held it, so the server never waited for the client; make the large account larger (-large-rows)", err)
					}
				case "hung up":
					res.hangups++
				default: // refused or failed before it could misbehave
					res.faultOther++
					if res.firstOther == "" {
						res.firstOther = fmt.Sprintf("%s: %v", outcome, err)
					}
				}
				mu.Unlock()
				if outcome != "cut" && outcome != "hung up" && outcome != "read" {
					time.Sleep(10 * time.Millisecond) // not a busy loop if the server refuses
				}
			}
		})
	}
	defer func() { close(done); faults.Wait() }()
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

// misbehave makes one export request as an extra client of fault mode.
// mode "stall" sends it and reads nothing for hold, then reads what the
// server sent and reports whether the transfer was cut short (the
// account must be larger than the sockets' buffers, several MB on
// loopback, or the server's writes all finish into the kernel and
// nothing stalls); "hang up" reads the status and the first 16 KiB of
// the body and closes the connection; "read" reads the whole export, as
// a well-behaved client does, for the run to compare with.
func misbehave(addr string, cookie *http.Cookie, mode string, hold time.Duration) (outcome string, err error) {
	stall := mode == "stall"
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "error", err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /api/export HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n", addr, cookie.String()); err != nil {
		return "error", err
	}
	if stall {
		time.Sleep(hold)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if stall {
			return "cut", nil // before the status line got through
		}
		return "error", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "refused", fmt.Errorf("status %d", resp.StatusCode)
	}
	switch mode {
	case "hang up":
		if _, err = io.CopyN(io.Discard, resp.Body, 16<<10); err != nil {
			return "error", err
		}
		return "hung up", nil
	case "read":
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != resp.ContentLength {
			return "error", fmt.Errorf("read %d of %d bytes: %v", n, resp.ContentLength, err)
		}
		return "read", nil
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n == resp.ContentLength {
		return "whole", fmt.Errorf("%d bytes, all of them", n)
	}
	return "cut", nil
}

// faultUserID is the ID of the i-th faulty client's account.
func faultUserID(i int) string { return fmt.Sprintf("clbenchfaultaccount%06d", i) }

// addFaultAccounts returns a copy of the dataset's file with n more
// accounts, each a copy of the large one: a faulty client that stalls
// must ask for more than the sockets' buffers hold, or the server's
// writes would finish into the kernel and nothing would stall. The copy
// is kept beside the dataset, as the dataset is.
func addFaultAccounts(ctx context.Context, ds dataset, n int, log io.Writer) (string, error) {
	path := strings.TrimSuffix(ds.path, ".db") + fmt.Sprintf("-faults%d.db", n)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	fmt.Fprintf(log, "adding %d fault accounts in %s...\n", n, path)
	tmp := path + ".building"
	os.Remove(tmp)
	src, err := sql.Open("sqlite", "file:"+ds.path+"?mode=ro")
	if err != nil {
		return "", err
	}
	_, err = src.ExecContext(ctx, "VACUUM INTO ?", tmp)
	src.Close()
	if err != nil {
		return "", err
	}
	db, err := sql.Open("sqlite", "file:"+tmp+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the temporary table lives on one connection
	for i := range n {
		id := faultUserID(i)
		for _, t := range []struct{ table, set string }{
			{"User", "id = ?1, email = ?1 || '@example.com'"},
			{"Agent", `id = ?1 || id, "userId" = ?1`},
			{"ScheduledTask", `id = ?1 || id, "userId" = ?1`},
			{"Workflow", `id = ?1 || id, "userId" = ?1`},
		} {
			owner := `"userId"`
			if t.table == "User" {
				owner = "id"
			}
			for _, stmt := range []string{
				`CREATE TEMP TABLE copy AS SELECT * FROM "` + t.table + `" WHERE ` + owner + ` = ?2`,
				`UPDATE copy SET ` + t.set,
				`INSERT INTO "` + t.table + `" SELECT * FROM copy`,
				`DROP TABLE copy`,
			} {
				if _, err := db.ExecContext(ctx, stmt, id, ds.userID); err != nil {
					return "", fmt.Errorf("%s: %s: %w", t.table, stmt, err)
				}
			}
		}
	}
	if err := db.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// levels reads the server's open file descriptors (from /proc) and
// goroutines (from its profile page).
// settle waits until the server's goroutines have stood still for 2 s
// (at most 30 s): the demo's archive queue (River) starts its services
// over its first seconds (32 goroutines after 1.5 s, 42 from 4.5 s on),
// and those are not the load's to give back.
func settle(p *process, debugAddr string) error {
	last, since := -1, time.Now()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(250 * time.Millisecond) {
		_, n, err := levels(p, debugAddr)
		if err != nil {
			return err
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 2*time.Second {
			return nil
		}
	}
	return fmt.Errorf("the server's goroutines did not settle in 30 s (last %d)", last)
}

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
