package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// datasetVersion is part of every file and schema name: bump it when the
// generated data changes, so that stale data is not reused.
//
// 2: the application's own indexes by default, NULLs, a second large
// account, users interleaved in storage, four timestamp forms.
const datasetVersion = 2

// shape is how many records a dataset holds: one big account with big
// records per section (none if 0), a second one with second records per
// section (none if 0), and others accounts with otherRows records per
// section each. All accounts' rows interleave in storage, in time order,
// as an application's tables fill up.
type shape struct {
	big, second, others, otherRows int
}

func (sh shape) String() string {
	return fmt.Sprintf("%d-%d-%dx%d", sh.big, sh.second, sh.others, sh.otherRows)
}

// A variant is which indexes the section tables carry: the application's
// own (Prisma's @@index([userId]) on each), or those plus the composite
// index that sqlstore.Schema recommends.
type variant int

const (
	ownIndexes variant = iota
	compositeIndex
)

func (v variant) String() string {
	if v == compositeIndex {
		return "index"
	}
	return "own"
}

func (v variant) describe() string {
	if v == compositeIndex {
		return "with the composite index"
	}
	return "the application's own indexes"
}

// dataset is one database holding the application's tables (Prisma's
// DDL, secret columns included) and a shape's rows.
type dataset struct {
	dialect    sqlstore.Dialect
	variant    variant
	path       string // SQLite file
	dsn        string // PostgreSQL or MySQL, reaching the dataset's tables
	schema     string // PostgreSQL: the dataset's schema
	shape      shape
	userID     string // the big account
	perSection int    // its records per section
	server     string // MySQL: "MySQL" or "MariaDB", from VERSION()
}

// dbArgs are the flags that point the example server (and the child
// modes of this program) at the dataset.
func (ds dataset) dbArgs() []string {
	switch ds.dialect {
	case sqlstore.Postgres:
		return []string{"-postgres", ds.dsn}
	case sqlstore.MySQL:
		return []string{"-mysql", ds.dsn}
	}
	return []string{"-sqlite", ds.path}
}

// title names the dataset in the report: "SQLite, the application's own
// indexes".
func (ds dataset) title() string {
	name := map[sqlstore.Dialect]string{sqlstore.SQLite: "SQLite", sqlstore.Postgres: "PostgreSQL", sqlstore.MySQL: "MySQL"}[ds.dialect]
	if ds.server != "" {
		name = ds.server
	}
	return name + ", " + ds.variant.describe()
}

// The accounts. IDs are 25 characters, as the application's cuids.
const (
	bigUserID    = "clbenchbigaccount00000001"
	secondUserID = "clbenchsecondaccount00001"
)

// otherUserID is the ID of the i-th other account.
func otherUserID(i int) string { return fmt.Sprintf("clbenchotheraccount%06d", i) }

// sectionIndexes are the application's own indexes on the section tables,
// as Prisma names them for @@index([userId]) (sqlfixture.AppSchema makes
// them with the tables).
var sectionIndexes = []string{"Agent_userId_idx", "ScheduledTask_userId_idx", "Workflow_userId_idx"}

// compositeIndexStatements are sqlstore.Schema's CREATE INDEX statements
// for the Prisma layout, its tables in schema (PostgreSQL) if not "".
func compositeIndexStatements(d sqlstore.Dialect, schema string) ([]string, error) {
	l := sqlstore.PrismaLayout()
	if schema != "" {
		for _, t := range []*string{&l.User.Table, &l.Agent.Table, &l.ScheduledTask.Table, &l.Workflow.Table} {
			*t = schema + "." + *t
		}
	}
	stmts, err := sqlstore.Schema(d, l)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range stmts {
		if strings.HasPrefix(s, "CREATE INDEX") {
			out = append(out, s)
		}
		// MySQL's are in the CREATE TABLE (there is no CREATE INDEX IF
		// NOT EXISTS): "  INDEX `name` (cols),".
		if d == sqlstore.MySQL {
			head, _, _ := strings.Cut(s, "\n")
			table := strings.TrimSuffix(strings.TrimPrefix(head, "CREATE TABLE IF NOT EXISTS "), " (")
			for line := range strings.Lines(s) {
				if line = strings.TrimSpace(line); strings.HasPrefix(line, "INDEX ") {
					out = append(out, "ALTER TABLE "+table+" ADD "+strings.TrimSuffix(line, ","))
				}
			}
		}
	}
	if len(out) != 3 {
		return nil, fmt.Errorf("sqlstore.Schema gave %d CREATE INDEX statements, want 3", len(out))
	}
	return out, nil
}

// The timestamps are stored the ways the contract allows, one form per
// column, all in DATETIME columns of SQLite:
//
//	Agent.createdAt          ISO text              2026-03-01T09:00:00.123Z
//	Agent.updatedAt          Unix milliseconds     1772355600123
//	ScheduledTask.createdAt  offset and µs         2026-03-01 11:00:00.123456+02:00
//	Workflow.createdAt       no zone (UTC), space  2026-03-01 09:00:00.123
//
// PostgreSQL's columns are TIMESTAMP(3): the times truncated to
// milliseconds, as the application writes them.
func isoText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

var plusTwo = time.FixedZone("", 2*3600)

func offsetText(t time.Time) string { return t.In(plusTwo).Format("2006-01-02 15:04:05.000000-07:00") }

func spaceText(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }

// openDataset returns the SQLite dataset of shape sh and variant v in dir,
// building it if it is not there yet. Building writes to a temporary name
// and renames at the end, so an interrupted build is never mistaken for a
// finished one. The composite variant is a copy of the other with the
// index added, so both hold the same bytes in the same order.
func openDataset(ctx context.Context, dir string, sh shape, v variant, log io.Writer) (dataset, error) {
	ds := dataset{
		dialect:    sqlstore.SQLite,
		variant:    v,
		path:       filepath.Join(dir, fmt.Sprintf("app-v%d-%s-%s.db", datasetVersion, v, sh)),
		shape:      sh,
		userID:     bigUserID,
		perSection: sh.big,
	}
	if _, err := os.Stat(ds.path); err == nil {
		return ds, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ds, err
	}
	tmp := ds.path + ".building"
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(tmp + suffix)
	}
	start := time.Now()
	if v == compositeIndex {
		own, err := openDataset(ctx, dir, sh, ownIndexes, log)
		if err != nil {
			return ds, err
		}
		fmt.Fprintf(log, "building %s (a copy of %s with the composite index)...\n", ds.path, filepath.Base(own.path))
		if err := copyFile(own.path, tmp); err != nil {
			return ds, err
		}
		if err := addCompositeSQLite(ctx, tmp); err != nil {
			return ds, fmt.Errorf("indexing %s: %w", tmp, err)
		}
	} else {
		fmt.Fprintf(log, "building %s...\n", ds.path)
		if err := buildSQLite(ctx, tmp, sh); err != nil {
			return ds, fmt.Errorf("building %s: %w", tmp, err)
		}
	}
	if err := os.Rename(tmp, ds.path); err != nil {
		return ds, err
	}
	fi, _ := os.Stat(ds.path)
	fmt.Fprintf(log, "built in %v, %.0f MB\n", time.Since(start).Round(time.Millisecond), float64(fi.Size())/1e6)
	return ds, nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func openBuilding(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// buildSQLite writes the application's tables and its own indexes
// (sqlfixture.AppSchema: both made first, as the application's migrations
// make them), then the rows.
func buildSQLite(ctx context.Context, path string, sh shape) error {
	db, err := openBuilding(path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range sqlfixture.AppSchema(sqlstore.SQLite, "") {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	prep := func(table string, cols ...string) (*sql.Stmt, error) {
		return tx.PrepareContext(ctx, "INSERT INTO `"+table+"` (`"+strings.Join(cols, "`, `")+"`) VALUES (?"+strings.Repeat(", ?", len(cols)-1)+")")
	}
	var stmts [4]*sql.Stmt
	for i, t := range [][]string{
		{"User", "id", "email", "name", "plan", "role", "referralCode", "referralCredits", "passwordHash", "walletSeed", "createdAt", "updatedAt"},
		{"Agent", "id", "userId", "name", "model", "status", "config", "apiKeyHash", "encryptedToken", "createdAt", "updatedAt"},
		{"ScheduledTask", "id", "userId", "agentId", "name", "cronSchedule", "prompt", "enabled", "createdAt"},
		{"Workflow", "id", "userId", "name", "definition", "webhookSecret", "enabled", "createdAt"},
	} {
		if stmts[i], err = prep(t[0], t[1:]...); err != nil {
			return err
		}
		defer stmts[i].Close()
	}
	err = generate(sh, func(u *userRow) error {
		_, err := stmts[0].ExecContext(ctx, u.id, u.email, u.name, u.plan, "user", u.referralCode, u.credits,
			passwordHash, secretText, u.created.UnixMilli(), u.created.UnixMilli())
		return err
	}, func(r *record) error {
		if _, err := stmts[1].ExecContext(ctx, r.agentID, r.userID, r.agentName, r.model, r.status,
			r.config(), "sha256:"+secretText, secretText, isoText(r.created), r.updated.UnixMilli()); err != nil {
			return err
		}
		if _, err := stmts[2].ExecContext(ctx, r.taskID, r.userID, r.agentID, r.taskName, r.cron,
			prompt, r.taskEnabled, offsetText(r.created)); err != nil {
			return err
		}
		_, err := stmts[3].ExecContext(ctx, r.flowID, r.userID, r.flowName, r.definition(), "whsec_"+secretText,
			r.flowEnabled, spaceText(r.created))
		return err
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "ANALYZE")
	return err
}

// addCompositeSQLite adds the recommended index as a host would, to the
// existing tables, and analyzes again.
func addCompositeSQLite(ctx context.Context, path string) error {
	db, err := openBuilding(path)
	if err != nil {
		return err
	}
	defer db.Close()
	stmts, err := compositeIndexStatements(sqlstore.SQLite, "")
	if err != nil {
		return err
	}
	for _, stmt := range append(stmts, "ANALYZE") {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// sqliteIndexes lists the indexes on the section tables, for checking
// that nothing (the example server included) added one.
func sqliteIndexes(ctx context.Context, path string) ([]string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('Agent', 'ScheduledTask', 'Workflow') AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// userRow and record are the generated data, before any database's
// forms: nil pointers are NULLs, times are UTC with microseconds.
type userRow struct {
	id                        string
	email, name, referralCode *string
	plan                      string
	credits                   int
	created                   time.Time
}

type record struct {
	userID, agentID, agentName string
	model                      *string
	status                     string
	created, updated           time.Time
	taskID, taskName, cron     string
	taskEnabled                bool
	flowID, flowName           string
	flowEnabled                bool
}

// The secret columns, filled as an application fills them.
var (
	secretText   = strings.Repeat("SECRET-", 20)
	passwordHash = "$argon2id$v=19$m=65536,t=3,p=4$" + secretText
	prompt       = "Summarise the last day of messages and send them to the team. " + secretText
)

func (r *record) config() string {
	return `{"apiKey":"sk-` + secretText + `","temperature":0.2,"tools":["search","email"]}`
}

func (r *record) definition() string {
	return `{"steps":[{"type":"trigger","on":"email"},{"type":"agent","id":"` + r.agentID + `"}],"secret":"` + secretText + `"}`
}

// Names with what JSON must escape (quotes, backslash, tab, newline,
// control characters), what HTML-minded encoders escape (<, >, &),
// U+2028, non-ASCII letters and emoji.
var (
	agentNames = []string{"Inbox triage", "Sales follow-up", "Research assistant", "Support deflection", "Weekly digest",
		"Résumé screener", "日報アシスタント", `Ops "on-call" helper`, "Lead scorer", "Code reviewer",
		`C:\agents\triage`, "Support 🤖 bot", "Line one\nline two", "Bell\x07 and unit\x1f separator", "Para\u2028graph"}
	models    = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b"}
	statuses  = []string{"running", "paused", "pending", "error"}
	taskNames = []string{"Morning summary", "Nightly cleanup", "Report to #team", "Sync CRM", "Check uptime\tand alert",
		`Back up C:\data`, "Envoyer le résumé 📬"}
	crons     = []string{"0 9 * * *", "*/15 * * * *", "0 0 * * 0", "30 18 * * 1-5"}
	flowNames = []string{"Onboarding", "Refund <approval>", "Escalation path", "Newsletter & social", "Lead routing",
		`Say "hi"`, "Übergabe\r\nan Team 2"}
	plans       = []string{"solo", "collective", "label", "network", "free", "free", "free"}
	personNames = []string{"Ada Lovelace", "José Álvarez", "Zoë O'Brien", "李雷", `"DJ" K\ice`, "Ana <admin>", "Sam & Max"}
)

func ptr(s string) *string { return &s }

// generate produces the dataset of shape sh, deterministically: the users
// first, then the records of all accounts in time order, each record
// going to an account chosen at random in proportion to the records it
// still has to get, so that the accounts' rows interleave in storage as
// in a live application. Each account's records thus span the same
// year. About 1 in 50 records shares the previous record's instant of
// its account, so that the ID order is exercised.
func generate(sh shape, onUser func(*userRow) error, onRecord func(*record) error) error {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	id := func() string { // cuid-like, 25 characters
		const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
		b := []byte("cl")
		for range 23 {
			b = append(b, digits[rng.IntN(len(digits))])
		}
		return string(b)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	type account struct {
		id        string
		left, seq int
		last      time.Time
	}
	var accounts []*account
	add := func(u *userRow, n int) error {
		u.created = start.Add(-time.Duration(1+len(accounts)) * time.Hour)
		if err := onUser(u); err != nil {
			return err
		}
		if n > 0 {
			accounts = append(accounts, &account{id: u.id, left: n})
		}
		return nil
	}
	// The big account has no name (a NULL user field in the headline
	// export); the second no referral code and a name to escape.
	if sh.big > 0 {
		if err := add(&userRow{id: bigUserID, email: ptr("big-account@example.com"), plan: "solo",
			referralCode: ptr("REFBIG001"), credits: 3}, sh.big); err != nil {
			return err
		}
	}
	if sh.second > 0 {
		if err := add(&userRow{id: secondUserID, email: ptr("second.account+export@example.com"),
			name: ptr("Zoë \"Z\" O'Brien\t<ops> & 🚀\u2028"), plan: "collective"}, sh.second); err != nil {
			return err
		}
	}
	// The others: email missing for about 1 in 20, name for 3 in 10,
	// referral code for 6 in 10.
	for i := range sh.others {
		u := &userRow{id: otherUserID(i), plan: pick(plans), credits: rng.IntN(10)}
		if rng.IntN(20) != 0 {
			u.email = ptr(fmt.Sprintf("other-%d@example.com", i))
		}
		if rng.IntN(10) >= 3 {
			u.name = ptr(pick(personNames))
		}
		if rng.IntN(10) >= 6 {
			u.referralCode = ptr(fmt.Sprintf("REF%06d", i))
		}
		if err := add(u, sh.otherRows); err != nil {
			return err
		}
	}

	total := 0
	for _, a := range accounts {
		total += a.left
	}
	const year = 365 * 24 * time.Hour
	step := int64(year) / int64(max(total, 1))
	clock := start
	for total > 0 {
		clock = clock.Add(time.Microsecond + time.Duration(rng.Int64N(2*step+1))).Truncate(time.Microsecond)
		n := rng.IntN(total)
		var a *account
		for _, a = range accounts {
			if n < a.left {
				break
			}
			n -= a.left
		}
		at := clock
		if a.seq > 0 && rng.IntN(50) == 0 {
			at = a.last
		}
		r := &record{
			userID: a.id, agentID: id(), agentName: fmt.Sprintf("%s %d", pick(agentNames), a.seq),
			status: pick(statuses), created: at, updated: at.Add(time.Duration(rng.IntN(3600_000)) * time.Millisecond),
			taskID: id(), taskName: fmt.Sprintf("%s %d", pick(taskNames), a.seq), cron: pick(crons), taskEnabled: rng.IntN(4) != 0,
			flowID: id(), flowName: fmt.Sprintf("%s %d", pick(flowNames), a.seq), flowEnabled: rng.IntN(2) == 0,
		}
		if rng.IntN(4) != 0 { // about a quarter of the agents have no model
			r.model = ptr(pick(models))
		}
		if err := onRecord(r); err != nil {
			return err
		}
		a.last = at
		a.seq++
		a.left--
		total--
	}
	return nil
}

// firstNullEmail is the ID of the first account of shape sh whose email
// is NULL, or "".
func firstNullEmail(sh shape) string {
	stop := errors.New("stop")
	var id string
	generate(sh, func(u *userRow) error {
		if u.email == nil && id == "" {
			id = u.id
		}
		return nil
	}, func(*record) error { return stop })
	return id
}
