package main

import (
	"context"
	"database/sql"
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

// datasetVersion is part of every file name: bump it when the generated
// data changes, so that stale files are not reused.
const datasetVersion = 1

// shape is how many records a dataset holds: one big account with big
// records per section (none if 0), and others accounts with otherRows
// records per section each, whose rows interleave in time with the big
// one's so that the owner filter and the index matter.
type shape struct {
	big, others, otherRows int
}

// dataset is an SQLite file with the application's tables (Prisma's DDL,
// secret columns included, plus the index sqlstore.Schema advises).
type dataset struct {
	path       string
	shape      shape
	userID     string // the big account
	perSection int    // its records per section
}

// otherUserID is the ID of the i-th other account.
func otherUserID(i int) string { return fmt.Sprintf("clbenchotheraccount%06d", i) }

// The timestamps are stored the ways real applications store them, one
// form per column, all in DATETIME columns:
//
//	Agent.createdAt          ISO text           2026-03-01T09:00:00.123Z
//	Agent.updatedAt          Unix milliseconds  1772355600123
//	ScheduledTask.createdAt  offset and µs      2026-03-01 11:00:00.123456+02:00
//	Workflow.createdAt       ISO text           2026-03-01T09:00:00.123Z
func isoText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

var plusTwo = time.FixedZone("", 2*3600)

func offsetText(t time.Time) string { return t.In(plusTwo).Format("2006-01-02 15:04:05.000000-07:00") }

// bigUserID is the account the comparison exports.
const bigUserID = "clbenchbigaccount00000001"

// openDataset returns the dataset of shape sh in dir, building it if it is
// not there yet. Building writes to a
// temporary name and renames at the end, so an interrupted build is never
// mistaken for a finished one.
func openDataset(ctx context.Context, dir string, sh shape, log io.Writer) (dataset, error) {
	ds := dataset{
		path:       filepath.Join(dir, fmt.Sprintf("app-v%d-%d-%dx%d.db", datasetVersion, sh.big, sh.others, sh.otherRows)),
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
	fmt.Fprintf(log, "building %s...\n", ds.path)
	if err := build(ctx, tmp, sh); err != nil {
		return ds, fmt.Errorf("building %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, ds.path); err != nil {
		return ds, err
	}
	fi, _ := os.Stat(ds.path)
	fmt.Fprintf(log, "built in %v, %.0f MB\n", time.Since(start).Round(time.Millisecond), float64(fi.Size())/1e6)
	return ds, nil
}

func build(ctx context.Context, path string, sh shape) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
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
	g, err := newGenerator(ctx, tx)
	if err != nil {
		return err
	}
	defer g.close()

	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// Each account's records span about a year, whatever their number.
	const year = 365 * 24 * time.Hour
	if sh.big > 0 {
		if err := g.user(bigUserID, "big-account@example.com"); err != nil {
			return err
		}
		if err := g.records(bigUserID, sh.big, start, year/time.Duration(sh.big)); err != nil {
			return err
		}
	}
	for i := range sh.others {
		id := otherUserID(i)
		if err := g.user(id, fmt.Sprintf("other-%d@example.com", i)); err != nil {
			return err
		}
		if err := g.records(id, sh.otherRows, start, year/time.Duration(max(sh.otherRows, 1))); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// The index the README advises, created as a host would: after the
	// tables exist (CREATE TABLE IF NOT EXISTS leaves them alone).
	stmts, err := sqlstore.Schema(sqlstore.SQLite, sqlstore.PrismaLayout())
	if err != nil {
		return err
	}
	for _, stmt := range stmts {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	_, err = db.ExecContext(ctx, "ANALYZE")
	return err
}

// generator writes deterministic, realistic rows: cuid-like IDs, names
// with the occasional non-ASCII letter or character JSON must escape, and
// the secret columns filled as an application fills them.
type generator struct {
	ctx                                     context.Context
	rng                                     *rand.Rand
	insUser, insAgent, insTask, insWorkflow *sql.Stmt
}

func newGenerator(ctx context.Context, tx *sql.Tx) (*generator, error) {
	g := &generator{ctx: ctx, rng: rand.New(rand.NewPCG(1, 2))}
	var err error
	prep := func(table string, cols ...string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = tx.PrepareContext(ctx, "INSERT INTO `"+table+"` (`"+strings.Join(cols, "`, `")+"`) VALUES (?"+strings.Repeat(", ?", len(cols)-1)+")")
		return s
	}
	g.insUser = prep("User", "id", "email", "name", "plan", "role", "referralCode", "referralCredits", "passwordHash", "walletSeed", "createdAt", "updatedAt")
	g.insAgent = prep("Agent", "id", "userId", "name", "model", "status", "config", "apiKeyHash", "encryptedToken", "createdAt", "updatedAt")
	g.insTask = prep("ScheduledTask", "id", "userId", "agentId", "name", "cronSchedule", "prompt", "enabled", "createdAt")
	g.insWorkflow = prep("Workflow", "id", "userId", "name", "definition", "webhookSecret", "enabled", "createdAt")
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *generator) close() {
	for _, s := range []*sql.Stmt{g.insUser, g.insAgent, g.insTask, g.insWorkflow} {
		if s != nil {
			s.Close()
		}
	}
}

// id returns a new 25-character cuid-like ID.
func (g *generator) id() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := []byte("cl")
	for range 23 {
		b = append(b, digits[g.rng.IntN(len(digits))])
	}
	return string(b)
}

var (
	agentNames = []string{"Inbox triage", "Sales follow-up", "Research assistant", "Support deflection", "Weekly digest",
		"Résumé screener", "日報アシスタント", `Ops "on-call" helper`, "Lead scorer", "Code reviewer"}
	models     = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b"}
	statuses   = []string{"running", "paused", "pending", "error"}
	taskNames  = []string{"Morning summary", "Nightly cleanup", "Report to #team", "Sync CRM", "Check uptime\tand alert"}
	crons      = []string{"0 9 * * *", "*/15 * * * *", "0 0 * * 0", "30 18 * * 1-5"}
	flowNames  = []string{"Onboarding", "Refund <approval>", "Escalation path", "Newsletter & social", "Lead routing"}
	secretText = strings.Repeat("SECRET-", 20)
)

func (g *generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *generator) user(id, email string) error {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := g.insUser.ExecContext(g.ctx, id, email, "Bench User", "pro", "user", "REF"+id[len(id)-6:], 3,
		"$argon2id$v=19$m=65536,t=3,p=4$"+secretText, secretText, now.UnixMilli(), now.UnixMilli())
	return err
}

// records writes n records in each section for userID, created from start
// at about every step (some at the very same instant, so that ID order is
// exercised), and each named with a sequence number.
func (g *generator) records(userID string, n int, start time.Time, step time.Duration) error {
	at := start
	for i := range n {
		if g.rng.IntN(50) != 0 { // 1 in 50 shares the previous instant
			at = at.Add(time.Duration(g.rng.Int64N(int64(2*step))) + time.Microsecond).Truncate(time.Microsecond)
		}
		updated := at.Add(time.Duration(g.rng.IntN(3600)) * time.Second)
		agentID := g.id()
		if _, err := g.insAgent.ExecContext(g.ctx, agentID, userID, fmt.Sprintf("%s %d", g.pick(agentNames), i), g.pick(models), g.pick(statuses),
			`{"apiKey":"sk-`+secretText+`","temperature":0.2,"tools":["search","email"]}`, "sha256:"+secretText, secretText,
			isoText(at), updated.UnixMilli()); err != nil {
			return err
		}
		if _, err := g.insTask.ExecContext(g.ctx, g.id(), userID, agentID, fmt.Sprintf("%s %d", g.pick(taskNames), i), g.pick(crons),
			"Summarise the last day of messages and send them to the team. "+secretText, g.rng.IntN(4) != 0,
			offsetText(at)); err != nil {
			return err
		}
		if _, err := g.insWorkflow.ExecContext(g.ctx, g.id(), userID, fmt.Sprintf("%s %d", g.pick(flowNames), i),
			`{"steps":[{"type":"trigger","on":"email"},{"type":"agent","id":"`+agentID+`"}],"secret":"`+secretText+`"}`,
			"whsec_"+secretText, g.rng.IntN(2) == 0, isoText(at)); err != nil {
			return err
		}
	}
	return nil
}
