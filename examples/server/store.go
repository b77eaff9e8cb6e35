package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
	"github.com/agentbot/export/sqlstore/pgxrows"
)

const (
	demoUserID  = "demo-jane"
	otherUserID = "demo-sam"
)

// dataConfig says where the demo's data lives: one of the three sources,
// or none for the default SQLite file in the OS temp directory.
type dataConfig struct {
	sqlite, postgres, mysql string
	layout                  string
}

// defaultSQLitePath is the demo file used when no database is named.
func defaultSQLitePath() string { return filepath.Join(os.TempDir(), "export-demo.db") }

// demoData is an opened database the demo serves from.
type demoData struct {
	store *sqlstore.Store
	db    *sql.DB
	where string   // for the startup message
	notes []string // what was done to the database, if anything
	users []string // some user IDs, for the sign-in page
	// replaced reports an SQLite file replaced since it was opened (nil
	// for a server database).
	replaced func() error
	// sqlitePath is the SQLite file served, "" for a server database.
	sqlitePath string
}

// openData opens the configured database, creates the layout's tables if
// they are missing, and seeds the demo users if there are no users at all.
// A database that already has the tables is never altered.
func openData(ctx context.Context, cfg dataConfig) (*demoData, error) {
	layout, err := sqlstore.LayoutByName(cfg.layout)
	if err != nil {
		return nil, err
	}
	named := 0
	for _, s := range []string{cfg.sqlite, cfg.postgres, cfg.mysql} {
		if s != "" {
			named++
		}
	}
	if named > 1 {
		return nil, errors.New("name one database: -sqlite, -postgres or -mysql")
	}

	var driver, dsn, where string
	var dialect sqlstore.Dialect
	var sqlitePath string
	created := false
	switch {
	case cfg.postgres != "":
		driver, dsn, dialect, where = "pgx", cfg.postgres, sqlstore.Postgres, "PostgreSQL"
	case cfg.mysql != "":
		driver, dsn, dialect, where = "mysql", cfg.mysql, sqlstore.MySQL, "MySQL"
	default:
		path := cfg.sqlite
		if path == "" {
			path = defaultSQLitePath()
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		// The busy timeout queues writers instead of failing them. WAL
		// lets exports read while the application writes, but it is a
		// property of the file, kept after the demo ends: only a file the
		// demo creates gets it. An existing file keeps its journal mode
		// (sqlstore's doc says what each means for an export's snapshot).
		dsn = "file:" + abs + "?_pragma=busy_timeout(5000)"
		if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			created = true
			dsn += "&_pragma=journal_mode(WAL)"
		}
		driver, dialect, where, sqlitePath = "sqlite", sqlstore.SQLite, "SQLite file "+abs, abs
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	d, err := prepare(ctx, db, dialect, layout, cfg.layout)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	d.where = where
	d.sqlitePath = sqlitePath
	if sqlitePath != "" {
		var mode string
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		how := "the file's own"
		if created {
			how = "set on the file the demo created"
		}
		d.notes = append(d.notes, "journal mode "+mode+" ("+how+")")
		if d.replaced, err = watchFile(sqlitePath); err != nil {
			db.Close()
			return nil, err
		}
	}
	return d, nil
}

// watchFile returns a func that reports an error once the file at path is
// no longer the one open now (renamed over, deleted, restored from a
// backup). The pool's open connections would go on reading the old file
// while new ones opened the new one: the demo refuses to serve instead.
func watchFile(path string) (func() error, error) {
	opened, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return func() error {
		now, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("the database file %s is gone: %w", path, err)
		}
		if !os.SameFile(opened, now) {
			return fmt.Errorf("the database file %s was replaced while the server ran (a different file now has its name)", path)
		}
		return nil
	}, nil
}

func prepare(ctx context.Context, db *sql.DB, dialect sqlstore.Dialect, layout sqlstore.Layout, layoutName string) (*demoData, error) {
	if err := db.PingContext(ctx); err != nil {
		return nil, err
	}
	opts := []sqlstore.Option{sqlstore.WithLayout(layout)}
	if dialect == sqlstore.Postgres {
		// pgx's database/sql driver: read the rows through pgx itself.
		opts = append(opts, pgxrows.Option())
	}
	store, err := sqlstore.New(db, dialect, opts...)
	if err != nil {
		return nil, err
	}
	d := &demoData{store: store, db: db}
	warnings, err := store.Check(ctx)
	if err != nil {
		// Some table or column is missing: create what is missing.
		if err := sqlstore.CreateTables(ctx, db, dialect, layout); err != nil {
			return nil, err
		}
		d.notes = append(d.notes, "created the "+layoutName+" tables")
		if warnings, err = store.Check(ctx); err != nil {
			return nil, fmt.Errorf("the tables do not match the layout: %w", err)
		}
	}
	for _, w := range warnings { // a missing index, say: exports work, slower
		d.notes = append(d.notes, "warning: "+w.String())
	}
	w := &sqlfixture.Writer{DB: db, Dialect: dialect, Layout: layout}
	users, err := w.UserIDs(ctx, 5)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		for _, doc := range demoDocuments() {
			if err := w.PutDocument(ctx, doc); err != nil {
				return nil, fmt.Errorf("seeding: %w", err)
			}
		}
		d.notes = append(d.notes, "seeded the demo users "+demoUserID+" and "+otherUserID)
		if users, err = w.UserIDs(ctx, 5); err != nil {
			return nil, err
		}
	}
	d.users = users
	return d, nil
}

// demoDocuments is the seed data: two users with a few records each.
func demoDocuments() []*export.Document {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 9, 0, 0, 0, time.UTC) }
	jane := &export.Document{
		User: export.User{ID: demoUserID, Email: "jane@example.com", Name: export.Some("Jane Doe"),
			Plan: export.Some("solo"), Role: "user", ReferralCode: export.Some("JANE2026"), ReferralCredits: 2},
		Agents: []export.Agent{
			{ID: "agent_research", Name: "research-assistant", Model: "gpt-4o", Status: "running", CreatedAt: day(1), UpdatedAt: day(20)},
			{ID: "agent_support", Name: "support-bot", Model: "claude-sonnet", Status: "pending", CreatedAt: day(5), UpdatedAt: day(5)},
		},
		ScheduledTasks: []export.ScheduledTask{
			{ID: "task_report", Name: "daily-report", CronSchedule: "0 9 * * *", Enabled: true, CreatedAt: day(2)},
			{ID: "task_cleanup", Name: "weekly-cleanup", CronSchedule: "0 3 * * 1", Enabled: false, CreatedAt: day(8)},
		},
		Workflows: []export.Workflow{
			{ID: "wf_onboarding", Name: "onboarding-flow", Enabled: true, CreatedAt: day(3)},
			{ID: "wf_escalation", Name: "escalation <urgent> & \"quoted\"", Enabled: false, CreatedAt: day(9)},
		},
	}
	sam := &export.Document{
		User: export.User{ID: otherUserID, Email: "sam@example.com", Plan: export.Some("free"), Role: "user"},
		Agents: []export.Agent{
			{ID: "agent_sam", Name: "sams-agent", Model: "gpt-4o-mini", Status: "stopped", CreatedAt: day(4), UpdatedAt: day(4)},
		},
	}
	return []*export.Document{jane, sam}
}
