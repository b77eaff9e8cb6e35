// Command benchexport measures the export of large accounts through the
// example server against two baselines, in one run on the same data:
//
//   - naive: the version a Go team writes first (load every row into
//     slices, json.MarshalIndent, write), served over HTTP the same way;
//   - raw scan: the three ordered queries scanned into sql.RawBytes with
//     the driver's default column handling and no JSON at all, the floor
//     of reading the data through database/sql.
//
// It builds SQLite files with the application's tables (once; they are
// kept in -dir), runs each measurement in a fresh process, and prints the
// times, the ratios and each process's peak RSS growth, then the same for
// accounts from 3,000 to 3,000,000 records, then a run of concurrent
// exports of ordinary accounts. Run it from the module:
//
//	go run ./internal/cmd/benchexport
//
// The load subcommand runs many clients against the example server on
// SQLite and PostgreSQL (see load.go):
//
//	go run ./internal/cmd/benchexport load -postgres DSN
//
// It needs Linux (/proc) and the go command (it builds the example
// server). The first run builds about 2.5 GB of data files, which takes a
// few minutes; -scale and -rows make it smaller.
package main

import (
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
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "child" {
		if err := child(os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchexport child:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "load" {
		if err := runLoad(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "benchexport load:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchexport:", err)
		os.Exit(1)
	}
}

type config struct {
	rows      int
	runs      int
	scale     []int
	naiveMax  int
	dir       string
	clients   int
	loadFor   time.Duration
	skipLoad  bool
	skipScale bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("benchexport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.rows, "rows", 100_000, "records per section of the headline account")
	fs.IntVar(&c.runs, "runs", 5, "runs of each measurement of the headline account (the median is reported)")
	scale := fs.String("scale", "1000,10000,100000,1000000", "records per section of the scaling accounts, comma-separated")
	fs.IntVar(&c.naiveMax, "naive-max", 100_000, "largest records per section the naive export is run for (it holds everything in memory)")
	fs.StringVar(&c.dir, "dir", filepath.Join(os.TempDir(), "export-bench"), "directory for the generated SQLite files, kept between runs")
	fs.IntVar(&c.clients, "clients", 32, "concurrent clients in the load run")
	fs.DurationVar(&c.loadFor, "load-for", 10*time.Second, "duration of the load run")
	fs.BoolVar(&c.skipLoad, "skip-load", false, "skip the load run")
	fs.BoolVar(&c.skipScale, "skip-scale", false, "skip the scaling runs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*scale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-scale: %q is not a positive number", s)
		}
		c.scale = append(c.scale, n)
	}
	if c.rows < 1 || c.runs < 1 || c.clients < 1 {
		return c, errors.New("-rows, -runs and -clients must be at least 1")
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux: peak RSS is read from /proc")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "benchexport-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	r := &runner{ctx: ctx, dir: work, self: self}
	if err := r.buildServer(); err != nil {
		return err
	}
	out := func(format string, a ...any) { fmt.Fprintf(stdout, format, a...) }

	// The headline: one large account, every measurement interleaved so
	// that drift in the machine's speed hits each alike.
	ds, err := openDataset(ctx, cfg.dir, shape{big: cfg.rows, others: 100, otherRows: 100}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "checking that the library's export holds the naive export's data...")
	if err := r.verify(ds); err != nil {
		return err
	}
	if _, err := r.raw(ds); err != nil { // warm the OS's file cache
		return err
	}
	var lib, naive, raw []sample
	for i := range cfg.runs {
		fmt.Fprintf(stderr, "headline run %d of %d\n", i+1, cfg.runs)
		for _, m := range []struct {
			runs *[]sample
			fn   func(dataset) (sample, error)
		}{{&raw, r.raw}, {&lib, r.library}, {&naive, r.naive}} {
			s, err := m.fn(ds)
			if err != nil {
				return err
			}
			*m.runs = append(*m.runs, s)
		}
	}
	l, n, w := median(lib), median(naive), median(raw)
	out("## Export of one account of %s records (%s per section) from SQLite\n\n", thousands(3*cfg.rows), thousands(cfg.rows))
	out("%s; %s of JSON; median time of %d runs, each in a fresh process; peak RSS growth is the worst run's.\n\n",
		machine(), mb(l.bytes), cfg.runs)
	out("| | time | vs naive | vs raw scan | peak RSS growth |\n|---|---:|---:|---:|---:|\n")
	out("| naive: slices + `json.MarshalIndent`, over HTTP | %s | 1.00x | %s | %s |\n", secs(n.dur), ratio(n.dur, w.dur), mb(n.growth))
	out("| raw scan: 3 queries into `sql.RawBytes`, no JSON | %s | %s | 1.00x | %s |\n", secs(w.dur), ratio(w.dur, n.dur), mb(w.growth))
	out("| **this library**: example server, HTTP | **%s** | **%s** | **%s** | **%s** |\n\n", secs(l.dur), ratio(l.dur, n.dur), ratio(l.dur, w.dur), mb(l.growth))
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	out("- %.1fx faster than the naive export (goal: at least 3x): %s\n", float64(n.dur)/float64(l.dur), goal(l.dur*3 <= n.dur))
	out("- %s the raw scan's time (goal: at most 1.00x): %s\n", ratio(l.dur, w.dur), goal(l.dur <= w.dur))
	out("- peak RSS grew by %s (goal: at most 32 MB): %s\n\n", mb(l.growth), goal(l.growth <= 32<<20))

	if !cfg.skipScale {
		out("## Scaling\n\n| records | JSON | this library | per record | raw scan | library / raw | naive | library RSS growth |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, size := range cfg.scale {
			ds, err := openDataset(ctx, cfg.dir, shape{big: size, others: 100, otherRows: 100}, stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "scaling: %s records per section\n", thousands(size))
			runs := 3
			if size >= 1_000_000 {
				runs = 1
			}
			var lib, raw, naive []sample
			for range runs {
				s, err := r.raw(ds)
				if err != nil {
					return err
				}
				raw = append(raw, s)
				if s, err = r.library(ds); err != nil {
					return err
				}
				lib = append(lib, s)
				if size <= cfg.naiveMax {
					if s, err = r.naive(ds); err != nil {
						return err
					}
					naive = append(naive, s)
				}
			}
			l, w := median(lib), median(raw)
			naiveCell := "not run"
			if len(naive) > 0 {
				naiveCell = secs(median(naive).dur)
			}
			perRecord := l.dur / time.Duration(3*size)
			out("| %s | %s | %s | %v | %s | %s | %s | %s |\n", thousands(3*size), mb(l.bytes), secs(l.dur), perRecord, secs(w.dur), ratio(l.dur, w.dur), naiveCell, mb(l.growth))
		}
		out("\n")
	}

	if !cfg.skipLoad {
		ds, err := openDataset(ctx, cfg.dir, shape{others: 1000, otherRows: 100}, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "load: %d clients for %v\n", cfg.clients, cfg.loadFor)
		res, err := r.concurrent(ds, cfg.clients, cfg.loadFor)
		if err != nil {
			return err
		}
		out("## %d concurrent clients, ordinary accounts (300 records each), for %v\n\n", res.clients, cfg.loadFor)
		out("| exports | per second | records per second | p50 | p99 | max | 429 | errors | server CPU | machine busy |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		out("| %s | %.0f | %s | %s | %s | %s | %d | %d | %.2f cores | %.0f%% |\n\n", thousands(res.ok), float64(res.ok)/res.elapsed.Seconds(),
			thousands(int(float64(res.records)/res.elapsed.Seconds())), secs(res.p50), secs(res.p99), secs(res.max), res.refused, res.fail,
			res.serverCores, 100*res.machineBusy)
		if res.fail > 0 {
			return fmt.Errorf("%d exports failed; the first: %s", res.fail, res.firstError)
		}
	}
	return nil
}

// machine describes this machine for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// child runs one of the measured processes other than the example server.
func child(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	path := fs.String("sqlite", "", "SQLite file")
	user := fs.String("user", "", "user ID")
	addr := fs.String("addr", "", "listen address (naive)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*path)
	if err != nil {
		return err
	}
	// Opened as the example server opens its file.
	db, err := sql.Open("sqlite", "file:"+abs+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		return err
	}
	switch mode {
	case "rawscan":
		fmt.Println("ready")
		var line string
		if _, err := fmt.Scanln(&line); err != nil {
			return err
		}
		start := time.Now()
		n, err := rawScan(context.Background(), db, *user)
		if err != nil {
			return err
		}
		fmt.Printf("rows %d ns %d\n", n, time.Since(start).Nanoseconds())
		io.Copy(io.Discard, os.Stdin) // wait to be stopped
		return nil
	case "naive":
		l, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/api/export", naiveHandler(db, *user))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "naive export server\n") })
		return http.Serve(l, mux)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}
