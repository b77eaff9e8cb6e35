package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// sample is one measured run.
type sample struct {
	dur    time.Duration
	bytes  int64
	growth int64 // peak RSS during the run minus RSS just before it
}

// runner starts the measured processes.
type runner struct {
	ctx    context.Context
	dir    string // logs and the built server
	self   string // this program, for its child modes
	server string // the example server, built by buildServer
}

// buildServer builds examples/server, so that the library is measured
// exactly as a host would run it.
func (r *runner) buildServer() error {
	r.server = filepath.Join(r.dir, "example-server")
	cmd := exec.CommandContext(r.ctx, "go", "build", "-o", r.server, "github.com/agentbot/export/examples/server")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the example server: %w", err)
	}
	return nil
}

// library exports the dataset's user through the example server: sign in,
// then GET /api/export.
func (r *runner) library(ds dataset) (sample, error) { return r.libraryCoded(ds, codingRun{}) }

// libraryCoded is library with Accept-Encoding: c.coding ("" for none),
// the server started with c.serverArgs.
func (r *runner) libraryCoded(ds dataset, c codingRun) (sample, error) {
	return r.libraryAfter(ds, c, 0)
}

// libraryAfter is libraryCoded in a server that has first exported the
// same account warm times, untimed.
func (r *runner) libraryAfter(ds dataset, c codingRun, warm int) (sample, error) {
	p, err := startProcess(r.ctx, r.dir, append(append([]string{r.server}, ds.dbArgs()...), c.serverArgs...), true)
	if err != nil {
		return sample{}, err
	}
	defer p.stop()
	cookie, err := login(r.ctx, p.addr, ds.userID)
	if err != nil {
		return sample{}, err
	}
	for range warm {
		if status, _, err := fetchCoded(r.ctx, p.addr, cookie, c.coding, io.Discard); err != nil || status != http.StatusOK {
			return sample{}, fmt.Errorf("warming the server: status %d, %v\n%s", status, err, p.logTail())
		}
	}
	return r.timedFetchCoded(p, cookie, c.coding)
}

// warmExports is how many exports a warm server has served before the
// one libraryWarm times: past the fifth, where PostgreSQL may have
// switched a prepared statement to a generic plan (a fresh process never
// shows what a long-running host sees).
const warmExports = 8

// libraryWarm is library in a server that has already exported the same
// account warmExports times: its connections, prepared statements, pools
// and caches are those of a long-running host.
func (r *runner) libraryWarm(ds dataset) (sample, error) {
	return r.libraryAfter(ds, codingRun{}, warmExports)
}

// naive exports through the naive handler, in a process of its own.
func (r *runner) naive(ds dataset) (sample, error) {
	p, err := startProcess(r.ctx, r.dir, append([]string{r.self, "child", "naive", "-user", ds.userID}, ds.dbArgs()...), true)
	if err != nil {
		return sample{}, err
	}
	defer p.stop()
	return r.timedFetch(p, nil)
}

func (r *runner) timedFetch(p *process, cookie *http.Cookie) (sample, error) {
	return r.timedFetchCoded(p, cookie, "")
}

func (r *runner) timedFetchCoded(p *process, cookie *http.Cookie, coding string) (sample, error) {
	base, err := p.resetPeak()
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	status, n, err := fetchCoded(r.ctx, p.addr, cookie, coding, io.Discard)
	d := time.Since(start)
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		return sample{}, fmt.Errorf("GET /api/export from %s: %w\n%s", filepath.Base(p.cmd.Path), err, p.logTail())
	}
	_, peak, err := p.memory()
	return sample{dur: d, bytes: n, growth: peak - base}, err
}

// raw runs the raw scan in a child: it opens the database and says
// "ready", the peak RSS is reset, then it scans and reports its own time.
func (r *runner) raw(ds dataset) (sample, error) {
	p, err := startProcess(r.ctx, r.dir, append([]string{r.self, "child", "rawscan", "-user", ds.userID}, ds.dbArgs()...), false)
	if err != nil {
		return sample{}, err
	}
	defer p.stop()
	fail := func(err error) (sample, error) { return sample{}, fmt.Errorf("raw scan: %w\n%s", err, p.logTail()) }
	if line, err := p.stdout.ReadString('\n'); err != nil || line != "ready\n" {
		return fail(fmt.Errorf("%q, %v", line, err))
	}
	base, err := p.resetPeak()
	if err != nil {
		return fail(err)
	}
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		return fail(err)
	}
	line, err := p.stdout.ReadString('\n')
	if err != nil {
		return fail(err)
	}
	var rows int
	var ns int64
	if _, err := fmt.Sscanf(line, "rows %d ns %d\n", &rows, &ns); err != nil {
		return fail(fmt.Errorf("%q: %v", line, err))
	}
	if want := 3 * ds.perSection; rows != want {
		return fail(fmt.Errorf("read %d rows, want %d", rows, want))
	}
	_, peak, err := p.memory()
	return sample{dur: time.Duration(ns), growth: peak - base}, err
}

// verify checks, outside any timing, that the library's export holds
// the same data as the naive export: same user, same records in the same
// order, same values, timestamps included, NULLs as the contract has them
// (a NULL user name is null in both; a NULL model or email is "" in
// both). It checks the big account, the second one and some of the
// small ones (one with a NULL email among them, if there is one), then
// that the section tables still have the variant's indexes and no other
// (the example server creates what it finds missing).
func (r *runner) verify(ds dataset) error {
	users := []string{ds.userID}
	if ds.shape.second > 0 {
		users = append(users, secondUserID)
	}
	for i := range min(ds.shape.others, 3) {
		users = append(users, otherUserID(i))
	}
	if id := firstNullEmail(ds.shape); id != "" && !slices.Contains(users, id) {
		users = append(users, id)
	}
	lib, err := startProcess(r.ctx, r.dir, append([]string{r.server}, ds.dbArgs()...), true)
	if err != nil {
		return err
	}
	defer lib.stop()
	for _, user := range users {
		if err := r.verifyUser(ds, lib, user); err != nil {
			return fmt.Errorf("%s, user %s: %w", ds.title(), user, err)
		}
	}
	return r.checkIndexes(ds)
}

func (r *runner) verifyUser(ds dataset, lib *process, user string) error {
	naive, err := startProcess(r.ctx, r.dir, append([]string{r.self, "child", "naive", "-user", user}, ds.dbArgs()...), true)
	if err != nil {
		return err
	}
	defer naive.stop()
	doc, err := r.libraryDocument(lib, user, "")
	if err != nil {
		return err
	}
	got := lines(doc)
	if user == ds.userID { // the measured downloads decode to the same data
		for _, c := range codings {
			srv := lib
			if len(c.serverArgs) > 0 {
				if srv, err = startProcess(r.ctx, r.dir, append(append([]string{r.server}, ds.dbArgs()...), c.serverArgs...), true); err != nil {
					return err
				}
			}
			coded, err := r.libraryDocument(srv, user, c.coding)
			if srv != lib {
				srv.stop()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if !slices.Equal(lines(coded), got) {
				return fmt.Errorf("the %s download decodes to other data than the identity one", c.name)
			}
		}
	}
	var want strings.Builder
	if status, _, err := fetch(r.ctx, naive.addr, nil, &want); err != nil || status != 200 {
		return fmt.Errorf("the naive export: status %d, %v\n%s", status, err, naive.logTail())
	}
	naiveDoc, err := decodeNaive(want.String())
	if err != nil {
		return err
	}
	if n := ds.perSection; user == ds.userID && (len(doc.Agents) != n || len(doc.ScheduledTasks) != n || len(doc.Workflows) != n) {
		return fmt.Errorf("the library exported %d agents, %d tasks and %d workflows, want %d of each",
			len(doc.Agents), len(doc.ScheduledTasks), len(doc.Workflows), n)
	}
	if wantLines := naiveLines(naiveDoc); !slices.Equal(got, wantLines) {
		for i := range min(len(got), len(wantLines)) {
			if got[i] != wantLines[i] {
				return fmt.Errorf("the library's export and the naive one differ: %s, naive %s", got[i], wantLines[i])
			}
		}
		return fmt.Errorf("the library's export has %d lines, the naive one %d", len(got), len(wantLines))
	}
	return nil
}

// libraryDocument signs in to the example server as user and decodes its
// export, downloaded in coding ("" for identity).
func (r *runner) libraryDocument(lib *process, user, coding string) (*export.Document, error) {
	cookie, err := login(r.ctx, lib.addr, user)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		status, _, err := fetchCoded(r.ctx, lib.addr, cookie, coding, pw)
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		pw.CloseWithError(err)
	}()
	body, err := decoded(pr, coding)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	doc, err := export.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("the library's export does not decode: %w\n%s", err, lib.logTail())
	}
	return doc, nil
}

// checkIndexes fails unless the section tables carry exactly the
// variant's indexes: the application's own three, plus the three
// composite ones for the composite variant.
func (r *runner) checkIndexes(ds dataset) error {
	var names []string
	var err error
	switch ds.dialect {
	case sqlstore.SQLite:
		names, err = sqliteIndexes(r.ctx, ds.path)
	case sqlstore.Postgres:
		names, err = postgresIndexes(r.ctx, ds.dsn, ds.schema)
	case sqlstore.MySQL:
		names, err = mysqlIndexes(r.ctx, ds.dsn, ds.schema)
	}
	if err != nil {
		return fmt.Errorf("%s: listing the indexes: %w", ds.title(), err)
	}
	want := 3
	if ds.variant == compositeIndex {
		want = 6
	}
	ok := len(names) == want
	for _, idx := range sectionIndexes {
		ok = ok && slices.Contains(names, idx)
	}
	if !ok {
		return fmt.Errorf("%s: the section tables have the indexes %q, want %q and %d more", ds.title(), names, sectionIndexes, want-3)
	}
	return nil
}

// lines flattens a document to one line per user and record, with times
// as the contract writes them (milliseconds, truncated), for comparison.
func lines(d *export.Document) []string {
	str := func(s export.NullString) string {
		if !s.Valid {
			return "<null>"
		}
		return s.String
	}
	u := d.User
	out := []string{fmt.Sprintf("user %q %q %q %q %q %q %d", u.ID, u.Email, str(u.Name), str(u.Plan), u.Role, str(u.ReferralCode), u.ReferralCredits)}
	for _, a := range d.Agents {
		out = append(out, fmt.Sprintf("agent %q %q %q %q %s %s", a.ID, a.Name, a.Model, a.Status, export.FormatTime(a.CreatedAt), export.FormatTime(a.UpdatedAt)))
	}
	for _, t := range d.ScheduledTasks {
		out = append(out, fmt.Sprintf("task %q %q %q %t %s", t.ID, t.Name, t.CronSchedule, t.Enabled, export.FormatTime(t.CreatedAt)))
	}
	for _, w := range d.Workflows {
		out = append(out, fmt.Sprintf("workflow %q %q %t %s", w.ID, w.Name, w.Enabled, export.FormatTime(w.CreatedAt)))
	}
	return out
}

// naiveLines flattens the naive handler's document the same way.
func naiveLines(n naiveDocument) []string {
	ns := func(s *string) export.NullString {
		if s == nil {
			return export.NullString{}
		}
		return export.Some(*s)
	}
	d := &export.Document{User: export.User{ID: n.User.ID, Email: n.User.Email, Name: ns(n.User.Name), Plan: ns(n.User.Plan),
		Role: n.User.Role, ReferralCode: ns(n.User.ReferralCode), ReferralCredits: n.User.ReferralCredits}}
	for _, a := range n.Agents {
		d.Agents = append(d.Agents, export.Agent{ID: a.ID, Name: a.Name, Model: a.Model, Status: a.Status, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt})
	}
	for _, t := range n.ScheduledTasks {
		d.ScheduledTasks = append(d.ScheduledTasks, export.ScheduledTask{ID: t.ID, Name: t.Name, CronSchedule: t.CronSchedule, Enabled: t.Enabled, CreatedAt: t.CreatedAt})
	}
	for _, w := range n.Workflows {
		d.Workflows = append(d.Workflows, export.Workflow{ID: w.ID, Name: w.Name, Enabled: w.Enabled, CreatedAt: w.CreatedAt})
	}
	return lines(d)
}

// median returns the run with the median time, and the largest growth of
// all runs (memory is judged by its worst case).
func median(runs []sample) sample {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b sample) int { return int(a.dur - b.dur) })
	m := s[len(s)/2]
	for _, r := range runs {
		m.growth = max(m.growth, r.growth)
	}
	return m
}

func mb(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB" }

func secs(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(d.Seconds()*1000, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

func ratio(a, b time.Duration) string {
	return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64) + "x"
}

// thousands formats n with commas.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// A codingRun is one way of downloading the export compressed: the
// Accept-Encoding coding, and the example server's flags.
type codingRun struct {
	name       string
	coding     string
	serverArgs []string
}

// codings are the compressed downloads measured beside identity: gzip as
// the example server serves it (klauspost/compress), gzip as the library
// builds it in (compress/gzip), and zstd, which the example server adds.
var codings = []codingRun{
	{"gzip", "gzip", nil},
	{"gzip, built in", "gzip", []string{"-builtin-gzip"}},
	{"zstd", "zstd", nil},
}

// decoded reads r decoded from coding.
func decoded(r io.Reader, coding string) (io.ReadCloser, error) {
	switch coding {
	case "":
		return io.NopCloser(r), nil
	case "gzip":
		return gzip.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("no decoder for %q", coding)
}
