package main

import (
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/klauspost/compress/zstd"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

type exportFlags struct {
	sqlite, postgres, mysql string
	layout, userID, out     string
	force                   bool
	audit                   string
	sections                sectionFlags
	exportedAt              string // for reproducing a document
	progressEvery           time.Duration
}

// exportFlagSet declares the export's flags into f; -help prints them.
func exportFlagSet(f *exportFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.sqlite, "sqlite", "", "read the SQLite database in `FILE` (opened read-only)")
	fs.StringVar(&f.postgres, "postgres", "", "read the PostgreSQL database at `DSN` (postgres://user@host/db)")
	fs.StringVar(&f.mysql, "mysql", "", "read the MySQL or MariaDB database at `DSN` (user:password@tcp(host:3306)/db)")
	fs.StringVar(&f.layout, "layout", "prisma", "the tables' `layout`: "+strings.Join(sqlstore.LayoutNames(), " or "))
	fs.StringVar(&f.userID, "user", "", "export the user with this `ID` (required)")
	fs.StringVar(&f.out, "o", "", "write the export to `FILE`, or into DIRECTORY under the endpoint's file name (default: standard output); the file appears only when complete; a FILE ending in .gz is written gzip-compressed, one ending in .zst zstd-compressed")
	fs.BoolVar(&f.force, "force", false, "overwrite the -o file if it exists (default: refuse)")
	fs.StringVar(&f.audit, "audit", "", "append the audit event (JSON) to `FILE`, opened before anything is exported (default: standard error)")
	fs.Var(&f.sections, "section", "add a section of the host's own, as `NAME=QUERY`: the query takes the user's ID as its one parameter, as with sqlstore.Section (repeatable, in order)")
	fs.StringVar(&f.exportedAt, "exported-at", "", "stamp the document with this `time` (RFC 3339), to reproduce a file (default: now)")
	fs.DurationVar(&f.progressEvery, "progress-every", time.Second, "report progress on standard error this often")
	return fs
}

func parseExportFlags(args []string) (exportFlags, error) {
	var f exportFlags
	flags := exportFlagSet(&f)
	if err := flags.Parse(args); err != nil {
		return f, usageError{err}
	}
	if flags.NArg() > 0 {
		return f, usageError{fmt.Errorf("unexpected arguments %q", flags.Args())}
	}
	n := 0
	for _, s := range []string{f.sqlite, f.postgres, f.mysql} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return f, usageError{errors.New("give exactly one of -sqlite, -postgres and -mysql")}
	}
	if f.userID == "" {
		return f, usageError{errors.New("-user is required")}
	}
	if f.progressEvery <= 0 {
		return f, usageError{errors.New("-progress-every must be positive")}
	}
	// A file name's compression is checked before the database is asked
	// (a directory's file gets the endpoint's name, .json).
	if fi, err := os.Stat(f.out); f.out != "" && f.out != "-" && (err != nil || !fi.IsDir()) {
		if _, err := fileCodingOf(f.out); err != nil {
			return f, usageError{err}
		}
	}
	return f, nil
}

// fileCoding is how -o's file is compressed, chosen by its extension.
type fileCoding struct {
	name      string // "identity" (plain), "gzip" or "zstd"
	newWriter func(io.Writer) (io.WriteCloser, error)
}

// Default levels: a support request is not in a hurry, and the file may
// be mailed, so each compressor's own default (gzip 6, zstd 3) rather
// than the endpoint's fastest.
var (
	plainFile = fileCoding{name: "identity"}
	gzipFile  = fileCoding{name: "gzip", newWriter: func(w io.Writer) (io.WriteCloser, error) {
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	}}
	zstdFile = fileCoding{name: "zstd", newWriter: func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	}}
)

// otherCompression lists extensions that say "compressed" in a way the
// command does not write. Such a name is refused rather than given plain
// JSON, which would not be what the name says.
var otherCompression = []string{".br", ".bz2", ".xz", ".lz4", ".lz", ".lzma", ".lzo", ".sz", ".z", ".zip", ".7z", ".tgz", ".gzip", ".zstd", ".zz", ".deflate"}

// fileCodingOf returns how a file named path is written: gzip for .gz,
// zstd for .zst (either case), plain for any other name, and an error for
// an extension of another compression.
func fileCodingOf(path string) (fileCoding, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case ext == ".gz":
		return gzipFile, nil
	case ext == ".zst":
		return zstdFile, nil
	case slices.Contains(otherCompression, ext):
		return fileCoding{}, fmt.Errorf("-o %s: %s names a compression the command does not write; it writes gzip for .gz and zstd for .zst (for example export.json.gz), and plain JSON for any other name", path, filepath.Ext(path))
	}
	return plainFile, nil
}

// exportUser writes one user's document and one audit event.
func exportUser(args []string, stdout, stderr io.Writer) (err error) {
	f, err := parseExportFlags(args)
	if err != nil {
		return err
	}
	at := time.Now()
	if f.exportedAt != "" {
		if at, err = time.Parse(time.RFC3339Nano, f.exportedAt); err != nil {
			return usageError{fmt.Errorf("-exported-at: %w", err)}
		}
	}
	layout, err := sqlstore.LayoutByName(f.layout)
	if err != nil {
		return usageError{err}
	}
	// The audit log opens first: an export that could not be recorded
	// must not be written.
	audit, closeAudit, err := openAudit(f.audit, stderr)
	if err != nil {
		return err
	}
	defer closeAudit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The audit event is written whatever happens from here on.
	start := time.Now()
	ev := auditEvent{UserID: f.userID, Operator: operator(), Outcome: "failed"}
	defer func() {
		ev.Duration = time.Since(start)
		if err != nil {
			ev.Err = strings.TrimPrefix(err.Error(), "export: ")
		}
		if aerr := writeAudit(audit, ev); aerr != nil && err == nil {
			err = aerr
		}
	}()

	store, closeDB, err := openStore(ctx, f, layout)
	if err != nil {
		return err
	}
	defer closeDB()

	exp := export.NewExporter(store)
	for _, s := range f.sections {
		if err := exp.AddSection(sqlstore.Section(s[0], s[1])); err != nil {
			return usageError{fmt.Errorf("-section %s: %s", s[0], strings.TrimPrefix(err.Error(), "export: "))}
		}
	}
	out, err := openOutput(f.out, f.force, f.userID, at, stdout)
	if err != nil {
		return err
	}
	defer out.discard()
	ev.Encoding = out.coding.name
	pw := &progressWriter{w: out.w}
	stopProgress := pw.report(stderr, f.progressEvery)
	res, err := exp.Export(ctx, pw, export.Request{UserID: f.userID, ExportedAt: at})
	stopProgress()
	ev.Bytes, ev.Agents, ev.ScheduledTasks, ev.Workflows = res.Bytes, res.Agents, res.ScheduledTasks, res.Workflows
	if errors.Is(err, export.ErrUserNotFound) {
		return fmt.Errorf("no user with ID %q in the database", f.userID)
	}
	if err != nil {
		return err // the full error: this is the operator's own tool
	}
	where, err := out.commit()
	if err != nil {
		return err
	}
	ev.Outcome, ev.File = "exported", where
	if out.file != nil {
		ev.FileBytes = out.file.n
	}
	if where != "" {
		size := fmt.Sprintf("%d bytes", res.Bytes)
		if out.coding.newWriter != nil {
			size = fmt.Sprintf("%d bytes (%s of the %d-byte document)", ev.FileBytes, out.coding.name, res.Bytes)
		}
		fmt.Fprintf(stderr, "wrote %s: %s, %d agents, %d scheduled tasks, %d workflows\n", where, size, res.Agents, res.ScheduledTasks, res.Workflows)
	}
	return nil
}

// sectionFlags collects -section NAME=QUERY, in order.
type sectionFlags [][2]string

func (s *sectionFlags) String() string { return fmt.Sprint(*s) }

func (s *sectionFlags) Set(v string) error {
	name, query, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(query) == "" {
		return errors.New("want NAME=QUERY")
	}
	*s = append(*s, [2]string{name, query})
	return nil
}

// openStore connects, and checks that the layout's tables and columns are
// there, so that a wrong DSN or layout fails with a clear message before
// any file is written.
func openStore(ctx context.Context, f exportFlags, layout sqlstore.Layout) (*sqlstore.Store, func(), error) {
	var driver, dsn, name string
	var dialect sqlstore.Dialect
	switch {
	case f.sqlite != "":
		if _, err := os.Stat(f.sqlite); err != nil {
			return nil, nil, fmt.Errorf("SQLite file: %w", err) // sql.Open would create it
		}
		driver, dsn, name, dialect = "sqlite", "file:"+f.sqlite+"?mode=ro&_pragma=busy_timeout(10000)", "SQLite file "+f.sqlite, sqlstore.SQLite
	case f.postgres != "":
		driver, dsn, name, dialect = "pgx", f.postgres, "PostgreSQL", sqlstore.Postgres
	default:
		driver, dsn, name, dialect = "mysql", f.mysql, "MySQL", sqlstore.MySQL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: bad DSN: %w", name, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("cannot connect to %s: %w", name, err)
	}
	store, err := sqlstore.New(db, dialect, sqlstore.WithLayout(layout))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	// Check's warnings (a missing index) slow a large export but do not
	// change it; the command reads one user once, so they are not shown.
	if _, err := store.Check(pingCtx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("%s does not have the %s layout's tables and columns: %w", name, f.layout, err)
	}
	return store, func() { db.Close() }, nil
}

// output is where the document goes: standard output, or a file that
// appears, complete, only on commit.
type output struct {
	w      io.Writer
	coding fileCoding
	file   *countingWriter // the file's own bytes, after compression; nil for stdout
	// commit finishes the file and gives it its name, which it returns
	// ("" for stdout). discard removes an uncommitted file, and does
	// nothing after commit.
	commit  func() (string, error)
	discard func()
}

// openOutput returns where the document goes. For a file: a temporary
// file in the same directory, renamed by commit, removed by discard. For
// a directory: a file in it named as the endpoint names it. An existing
// file is kept unless force. A file named .gz or .zst is compressed.
func openOutput(path string, force bool, userID string, at time.Time, stdout io.Writer) (*output, error) {
	if path == "" || path == "-" {
		return &output{w: stdout, coding: plainFile, commit: func() (string, error) { return "", nil }, discard: func() {}}, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, export.Filename(export.DefaultFilenamePrefix, userID, at))
	}
	coding, err := fileCodingOf(path)
	if err != nil {
		return nil, usageError{err}
	}
	if fi, err := os.Stat(path); err == nil && !force {
		what := "a file"
		if fi.IsDir() {
			what = "a directory"
		}
		return nil, fmt.Errorf("-o: %s is already %s; give -force to overwrite it", path, what)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("-o %s: the directory %s does not exist", path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("-o %s: cannot write in %s: %w", path, dir, errors.Unwrap(err))
	}
	file := &countingWriter{w: tmp}
	out := &output{w: file, coding: coding, file: file}
	var zw io.WriteCloser // the compressor, if any; closed once
	if coding.newWriter != nil {
		if zw, err = coding.newWriter(file); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, fmt.Errorf("-o %s: cannot start %s: %w", path, coding.name, err)
		}
		out.w = zw
	}
	closeCompressor := func() error {
		if zw == nil {
			return nil
		}
		err := zw.Close() // the end of the stream: without it the file is cut
		zw = nil
		return err
	}
	done := false
	out.commit = func() (string, error) {
		if err := closeCompressor(); err != nil {
			return "", fmt.Errorf("-o %s: cannot finish the %s stream: %w", path, coding.name, err)
		}
		if err := tmp.Sync(); err != nil {
			return "", err
		}
		if err := tmp.Close(); err != nil {
			return "", err
		}
		if !force {
			// A file that appeared meanwhile is kept: a hard link fails
			// where a rename would replace it.
			if err := os.Link(tmp.Name(), path); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return "", fmt.Errorf("-o: %s appeared during the export; give -force to overwrite it", path)
				}
				return "", err
			}
			os.Remove(tmp.Name())
		} else if err := os.Rename(tmp.Name(), path); err != nil {
			return "", err
		}
		done = true
		return path, nil
	}
	out.discard = func() {
		if !done {
			closeCompressor() // frees the compressor; the bytes go nowhere kept
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}
	return out, nil
}

// countingWriter counts the bytes that reach the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// progressWriter counts bytes, and reports them while an export runs.
type progressWriter struct {
	w io.Writer
	n atomic.Int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n.Add(int64(n))
	return n, err
}

// report prints a line every interval until stop is called; a short
// export prints none.
func (p *progressWriter) report(stderr io.Writer, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(stderr, "progress: %.1f MB written in %v\n", float64(p.n.Load())/(1<<20), time.Since(start).Round(time.Second/10))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// auditEvent is the record of one run, for the organisation's log of
// data-access requests. It never holds the document.
type auditEvent struct {
	UserID         string
	Operator       string
	Outcome        string
	File           string
	Bytes          int64  // the document's
	Encoding       string // the file's compression: identity, gzip or zstd
	FileBytes      int64  // the file's, as written (compressed); 0 for stdout
	Agents         int
	ScheduledTasks int
	Workflows      int
	Duration       time.Duration
	Err            string
}

// openAudit opens the audit log for appending: the file, or stderr.
func openAudit(path string, stderr io.Writer) (io.Writer, func(), error) {
	if path == "" {
		return stderr, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("-audit: cannot open the audit log, so nothing was exported: %w", err)
	}
	return f, func() { f.Close() }, nil
}

func writeAudit(w io.Writer, ev auditEvent) error {
	attrs := []slog.Attr{
		slog.String("source", "cmd/export"), slog.String("operator", ev.Operator), slog.String("user_id", ev.UserID),
		slog.String("outcome", ev.Outcome), slog.Int64("bytes", ev.Bytes), slog.Int("agents", ev.Agents),
		slog.Int("scheduled_tasks", ev.ScheduledTasks), slog.Int("workflows", ev.Workflows),
		slog.Float64("duration_ms", float64(ev.Duration.Microseconds())/1000),
	}
	if ev.Encoding != "" {
		attrs = append(attrs, slog.String("encoding", ev.Encoding))
	}
	if ev.File != "" {
		attrs = append(attrs, slog.String("file", ev.File), slog.Int64("file_bytes", ev.FileBytes))
	}
	if ev.Err != "" {
		attrs = append(attrs, slog.String("error", ev.Err))
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).LogAttrs(context.Background(), slog.LevelInfo, "export", attrs...)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("-audit: cannot write the audit event: %w", err)
	}
	return nil
}

// operator names who ran the command, for the audit event.
func operator() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
