// Command benchexport measures the export of large accounts through the
// example server against two baselines, in one run on the same data:
//
//   - naive: the version a Go team writes first (load every row into
//     slices, json.MarshalIndent, write), served over HTTP the same way;
//   - raw scan: the three ordered queries scanned into sql.RawBytes with
//     the driver's default column handling and no JSON at all, the floor
//     of reading the data through database/sql (pgx's stdlib driver on
//     PostgreSQL, ordering by "createdAt", id COLLATE "C").
//
// The data is what adopters have: the application's tables as Prisma
// makes them, with only its own indexes (@@index([userId])) by default,
// and realistic rows (a 100,000- and a 20,000-record account among many
// small ones, interleaved in storage; NULL models and user fields; names
// to escape; cuid-like IDs; every timestamp form the contract allows).
// Each comparison runs on two variants: the application's own indexes,
// and those plus the composite index sqlstore.Schema recommends
// (-variants, -index). With -postgres it runs on PostgreSQL too (the same
// data, loaded with COPY into a schema per variant), and there, where
// node and npm are present, also times the route this library replaces
// (Node.js, node-postgres). -mysql adds MySQL/MariaDB, without goals.
//
// It builds the data once (SQLite files are kept in -dir, PostgreSQL and
// MySQL schemas in their databases), runs each measurement in a fresh
// process, and prints the times, the ratios and each process's peak RSS
// growth per database and variant, a summary of them side by side, then
// the same for SQLite accounts from 3,000 to 3,000,000 records, then a
// run of concurrent exports of ordinary accounts. Run it from the module:
//
//	go run ./internal/cmd/benchexport -postgres 'postgres://user@127.0.0.1/db?sslmode=disable'
//
// The load subcommand runs many clients against the example server on
// SQLite and PostgreSQL (see load.go):
//
//	go run ./internal/cmd/benchexport load -postgres DSN
//
// It needs Linux (/proc) and the go command (it builds the example
// server). The first run builds about 3 GB of data files, which takes a
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/agentbot/export/sqlstore"
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
	second    int
	runs      int
	scale     []int
	naiveMax  int
	dir       string
	variants  []variant
	postgres  string
	mysql     string
	skipNode  bool
	skipCoded bool
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
	fs.IntVar(&c.second, "second", 20_000, "records per section of the second large account in every dataset (0: none)")
	fs.IntVar(&c.runs, "runs", 5, "runs of each measurement of the headline account (the median is reported)")
	scale := fs.String("scale", "1000,10000,100000,1000000", "records per section of the scaling accounts (SQLite, own indexes), comma-separated")
	fs.IntVar(&c.naiveMax, "naive-max", 100_000, "largest records per section the naive export is run for in the scaling runs (it holds everything in memory)")
	fs.StringVar(&c.dir, "dir", filepath.Join(os.TempDir(), "export-bench"), "directory for the generated SQLite files, kept between runs")
	variants := fs.String("variants", "own,index", "index variants of the headline comparison: own (the application's indexes only: Prisma's @@index([userId])) and index (plus the composite index sqlstore.Schema recommends), comma-separated")
	index := fs.Bool("index", false, "measure only the variant with the composite index (short for -variants index)")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL DSN: also run the comparison on PostgreSQL, in schemas bench_v* of that database, kept between runs")
	fs.StringVar(&c.mysql, "mysql", "", "MySQL or MariaDB DSN: also report the comparison there (no goals), in tables of that database made anew when stale")
	fs.BoolVar(&c.skipNode, "skip-node", false, "do not time the original Node.js route on PostgreSQL")
	fs.BoolVar(&c.skipCoded, "skip-codings", false, "do not time the library's gzip and zstd downloads beside identity")
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
	if *index {
		*variants = "index"
	}
	for _, s := range strings.Split(*variants, ",") {
		switch strings.TrimSpace(s) {
		case "own":
			c.variants = append(c.variants, ownIndexes)
		case "index":
			c.variants = append(c.variants, compositeIndex)
		default:
			return c, fmt.Errorf("-variants: %q is neither own nor index", s)
		}
	}
	if c.rows < 1 || c.runs < 1 || c.clients < 1 || c.second < 0 {
		return c, errors.New("-rows, -runs and -clients must be at least 1, -second at least 0")
	}
	return c, nil
}

// A measured is one database's headline comparison.
type measured struct {
	ds                    dataset
	goals                 bool // the project's goals apply (SQLite, PostgreSQL)
	lib, naive, raw, node []sample
	warm                  []sample            // the library's export in a server past its first warmExports
	coded                 map[string][]sample // the library's compressed downloads, by codingRun name
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

	// The datasets: the same generated data in each database and variant.
	sh := shape{big: cfg.rows, second: cfg.second, others: 100, otherRows: 100}
	var all []*measured
	for _, v := range cfg.variants {
		ds, err := openDataset(ctx, cfg.dir, sh, v, stderr)
		if err != nil {
			return err
		}
		all = append(all, &measured{ds: ds, goals: true})
	}
	if cfg.postgres != "" {
		for _, v := range cfg.variants {
			ds, err := openPostgres(ctx, cfg.postgres, sh, v, stderr)
			if err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			all = append(all, &measured{ds: ds, goals: true})
		}
	}
	if cfg.mysql != "" {
		for _, v := range cfg.variants {
			ds, err := openMySQL(ctx, cfg.mysql, sh, v, stderr)
			if err != nil {
				return fmt.Errorf("MySQL: %w", err)
			}
			all = append(all, &measured{ds: ds})
		}
	}
	var node *nodeRoute
	nodeNote := ""
	if cfg.postgres != "" && !cfg.skipNode {
		node, nodeNote = setupNode(ctx, work, cfg.postgres, stderr)
	} else if cfg.postgres == "" && !cfg.skipNode {
		fmt.Fprintln(stderr, "note: the original Node.js route is timed on PostgreSQL only (-postgres)")
	}

	for _, m := range all {
		fmt.Fprintf(stderr, "checking that the library's export holds the naive export's data: %s...\n", m.ds.title())
		if err := r.verify(m.ds); err != nil {
			return err
		}
		if _, err := r.raw(m.ds); err != nil { // warm the caches
			return err
		}
		if node != nil && m.ds.dialect == sqlstore.Postgres {
			if err := node.verify(r, m.ds); err != nil {
				return err
			}
		}
	}
	// Every measurement interleaved, so that drift in the machine's speed
	// hits each alike.
	for i := range cfg.runs {
		fmt.Fprintf(stderr, "headline run %d of %d\n", i+1, cfg.runs)
		for _, m := range all {
			steps := []struct {
				runs *[]sample
				fn   func(dataset) (sample, error)
			}{{&m.raw, r.raw}, {&m.lib, r.library}, {&m.warm, r.libraryWarm}, {&m.naive, r.naive}}
			if !cfg.skipCoded {
				if m.coded == nil {
					m.coded = map[string][]sample{}
				}
				for _, c := range codings {
					steps = append(steps, struct {
						runs *[]sample
						fn   func(dataset) (sample, error)
					}{nil, func(ds dataset) (sample, error) {
						s, err := r.libraryCoded(ds, c)
						if err == nil {
							m.coded[c.name] = append(m.coded[c.name], s)
						}
						return s, err
					}})
				}
			}
			if node != nil && m.ds.dialect == sqlstore.Postgres {
				steps = append(steps, struct {
					runs *[]sample
					fn   func(dataset) (sample, error)
				}{&m.node, func(ds dataset) (sample, error) { return node.run(r, ds) }})
			}
			for _, st := range steps {
				s, err := st.fn(m.ds)
				if err != nil {
					return fmt.Errorf("%s: %w", m.ds.title(), err)
				}
				if st.runs != nil {
					*st.runs = append(*st.runs, s)
				}
			}
		}
	}
	for _, m := range all { // nothing changed the indexes meanwhile
		if err := r.checkIndexes(m.ds); err != nil {
			return err
		}
	}
	goal := goalText
	for _, m := range all {
		l, n, w := median(m.lib), median(m.naive), median(m.raw)
		out("## %s: export of one account of %s records (%s per section)\n\n", m.ds.title(), thousands(3*cfg.rows), thousands(cfg.rows))
		out("%s; %s of JSON; median time of %s, each in a fresh process; peak RSS growth is the worst run's.\n\n",
			machine(), mb(l.bytes), plural(cfg.runs, "run"))
		out("| | time | vs naive | vs raw scan | peak RSS growth |\n|---|---:|---:|---:|---:|\n")
		out("| naive: slices + `json.MarshalIndent`, over HTTP | %s | 1.00x | %s | %s |\n", secs(n.dur), ratio(n.dur, w.dur), mb(n.growth))
		out("| raw scan: 3 queries into `sql.RawBytes`, no JSON | %s | %s | 1.00x | %s |\n", secs(w.dur), ratio(w.dur, n.dur), mb(w.growth))
		out("| **this library**: example server, HTTP | **%s** | **%s** | **%s** | **%s** |\n", secs(l.dur), ratio(l.dur, n.dur), ratio(l.dur, w.dur), mb(l.growth))
		h := median(m.warm) // measured beside every fresh-process run
		out("| this library, warm: export %d of one server process | %s | %s | %s | %s |\n", warmExports+1, secs(h.dur), ratio(h.dur, n.dur), ratio(h.dur, w.dur), mb(h.growth))
		if len(m.node) > 0 {
			o := median(m.node)
			out("| original route: Node.js, node-postgres, `Promise.all`, `JSON.stringify` | %s | %s | %s | %s |\n", secs(o.dur), ratio(o.dur, n.dur), ratio(o.dur, w.dur), mb(o.growth))
		}
		out("\n")
		if m.goals {
			out("- %.2fx faster than the naive export (goal: at least 3x): %s\n", float64(n.dur)/float64(l.dur), goal(l.dur*3 <= n.dur))
			out("- %s the raw scan's time (goal: at most 1.00x): %s\n", ratio(l.dur, w.dur), goal(l.dur <= w.dur))
			out("- peak RSS grew by %s (goal: at most 32 MB): %s\n", mb(l.growth), goal(l.growth <= 32<<20))
		} else {
			out("- %.2fx faster than the naive export, %s the raw scan's time, peak RSS growth %s (reported, no goal)\n",
				float64(n.dur)/float64(l.dur), ratio(l.dur, w.dur), mb(l.growth))
		}
		out("- a warm server (its export %d, the same account each time) took %s its first export's time (a comparison, not a goal: what a long-running host sees, prepared statements and caches reused)\n", warmExports+1, ratio(h.dur, l.dur))
		if len(m.node) > 0 {
			o := median(m.node)
			out("- the original route took %s the library's time, with %s of peak RSS growth (a comparison, not a goal)\n", ratio(o.dur, l.dur), mb(o.growth))
		}
		out("\n")
		if len(m.coded) > 0 {
			codedTable(out, m)
		}
	}
	if node == nil && nodeNote != "" {
		out("The original Node.js route was not timed: %s.\n\n", nodeNote)
	}
	if len(all) > 1 {
		summary(out, all, cfg.runs)
	}

	if !cfg.skipScale {
		out("## Scaling (SQLite, the application's own indexes)\n\n| records | JSON | this library | per record | raw scan | library / raw | naive | library RSS growth |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, size := range cfg.scale {
			ds, err := openDataset(ctx, cfg.dir, shape{big: size, second: cfg.second, others: 100, otherRows: 100}, ownIndexes, stderr)
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
		ds, err := openDataset(ctx, cfg.dir, shape{others: 1000, otherRows: 100}, ownIndexes, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "load: %d clients for %v\n", cfg.clients, cfg.loadFor)
		res, err := r.concurrent(ds, cfg.clients, cfg.loadFor)
		if err != nil {
			return err
		}
		out("## %d concurrent clients, ordinary accounts (300 records each), SQLite, the application's own indexes, for %v\n\n", res.clients, cfg.loadFor)
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

// summary prints the variants side by side, one column each.
func summary(out func(string, ...any), all []*measured, runs int) {
	out("## Summary: the %s-record account, median of %s\n\n|", thousands(3*all[0].ds.perSection), plural(runs, "run"))
	for _, m := range all {
		out(" | %s", m.ds.title())
	}
	out(" |\n|---")
	for range all {
		out("|---:")
	}
	out("|\n")
	row := func(name string, cell func(m *measured) string) {
		out("| %s", name)
		for _, m := range all {
			out(" | %s", cell(m))
		}
		out(" |\n")
	}
	row("naive (slices + `json.MarshalIndent`)", func(m *measured) string { return secs(median(m.naive).dur) })
	row("raw scan (the three ordered queries into `sql.RawBytes`)", func(m *measured) string { return secs(median(m.raw).dur) })
	row("this library, example server over HTTP", func(m *measured) string { return secs(median(m.lib).dur) })
	row(fmt.Sprintf("this library, warm server (export %d of one process; no goal)", warmExports+1), func(m *measured) string {
		return secs(median(m.warm).dur) + " (" + ratio(median(m.warm).dur, median(m.lib).dur) + ")"
	})
	row("library / raw scan (goal: at most 1.00x)", func(m *measured) string { return ratio(median(m.lib).dur, median(m.raw).dur) })
	row("naive / library (goal: at least 3x)", func(m *measured) string {
		return strconv.FormatFloat(float64(median(m.naive).dur)/float64(median(m.lib).dur), 'f', 2, 64) + "x"
	})
	row("library peak RSS growth (goal: at most 32 MB)", func(m *measured) string { return mb(median(m.lib).growth) })
	if len(all[0].coded) > 0 {
		for _, c := range codings {
			goals := ""
			if c.coding == "gzip" {
				goals = " (goals: at most 1.30x, at least 5x)"
			}
			row(c.name+" download: time / identity's, times smaller"+goals, func(m *measured) string {
				g := median(m.coded[c.name])
				return ratio(g.dur, median(m.lib).dur) + ", " + smaller(median(m.lib), g)
			})
		}
	}
	row("goals", func(m *measured) string {
		if !m.goals {
			return "none"
		}
		l, n, w := median(m.lib), median(m.naive), median(m.raw)
		var missed []string
		if l.dur*3 > n.dur {
			missed = append(missed, "3x naive")
		}
		if l.dur > w.dur {
			missed = append(missed, "raw scan")
		}
		if l.growth > 32<<20 {
			missed = append(missed, "RSS")
		}
		for _, c := range codings {
			if g, ok := m.coded[c.name]; ok && c.coding == "gzip" {
				if g := median(g); 10*g.dur > 13*l.dur || g.bytes*5 > l.bytes || g.growth > 32<<20 {
					missed = append(missed, c.name)
				}
			}
		}
		if len(missed) == 0 {
			return "all met"
		}
		return "NOT MET: " + strings.Join(missed, ", ")
	})
	if slices.ContainsFunc(all, func(m *measured) bool { return len(m.node) > 0 }) {
		row("original route (Node.js) / library", func(m *measured) string {
			if len(m.node) == 0 {
				return "-"
			}
			return ratio(median(m.node).dur, median(m.lib).dur)
		})
	}
	out("\n")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
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
	pg := fs.String("postgres", "", "PostgreSQL DSN")
	my := fs.String("mysql", "", "MySQL DSN")
	user := fs.String("user", "", "user ID")
	addr := fs.String("addr", "", "listen address (naive)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Opened as the example server opens its database.
	var db *sql.DB
	var err error
	dialect := sqlstore.SQLite
	switch {
	case *pg != "":
		dialect = sqlstore.Postgres
		db, err = sql.Open("pgx", *pg)
	case *my != "":
		dialect = sqlstore.MySQL
		db, err = sql.Open("mysql", *my)
	default:
		abs, aerr := filepath.Abs(*path)
		if aerr != nil {
			return aerr
		}
		db, err = sql.Open("sqlite", "file:"+abs+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	}
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
		n, err := rawScan(context.Background(), db, dialect, *user)
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
		mux.Handle("/api/export", naiveHandler(db, dialect, *user))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "naive export server\n") })
		return http.Serve(l, mux)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// codedTable reports the library's downloads in each content coding
// beside identity, with the compressed-transfer goals for gzip.
func codedTable(out func(string, ...any), m *measured) {
	l := median(m.lib)
	out("Compressed downloads, the same export through the example server (`Accept-Encoding` of one coding; median of %s):\n\n", plural(len(m.lib), "run"))
	out("| coding | time | vs identity | bytes sent | times smaller | peak RSS growth |\n|---|---:|---:|---:|---:|---:|\n")
	out("| identity | %s | 1.00x | %s | 1.0x | %s |\n", secs(l.dur), mb(l.bytes), mb(l.growth))
	for _, c := range codings {
		s := median(m.coded[c.name])
		out("| %s | %s | %s | %s | %s | %s |\n", c.name, secs(s.dur), ratio(s.dur, l.dur), mb(s.bytes), smaller(l, s), mb(s.growth))
	}
	out("\n")
	if m.goals {
		for _, c := range codings {
			if c.coding != "gzip" {
				continue
			}
			g := median(m.coded[c.name])
			out("- %s: %s the identity download's time (goal: at most 1.30x): %s; %s fewer bytes (goal: at least 5x): %s; peak RSS grew by %s (goal: at most 32 MB): %s\n",
				c.name, ratio(g.dur, l.dur), goalText(10*g.dur <= 13*l.dur), smaller(l, g), goalText(g.bytes*5 <= l.bytes), mb(g.growth), goalText(g.growth <= 32<<20))
		}
		out("\n")
	}
}

// smaller says how many times fewer bytes c sent than l.
func smaller(l, c sample) string {
	if c.bytes == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(l.bytes)/float64(c.bytes), 'f', 1, 64) + "x"
}

func goalText(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}
