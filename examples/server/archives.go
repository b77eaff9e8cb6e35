package main

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
)

// The archives ("Prepare my archive") run on package jobs. Their state
// lives in an SQLite file of their own beside the data (River's tables
// and export_job), never in the application's database, which the demo
// serves as it is; the files go to a private directory. Both outlive the
// demo, so archives survive a restart: a job that was running when the
// demo was stopped is rescued and completes after the next start.

// jobsPaths returns the default jobs database and files directory for
// the data served: beside an SQLite data file, in the OS temp directory
// for a server database.
func jobsPaths(data *demoData) (dbPath, filesDir string) {
	base := filepath.Join(os.TempDir(), "export-demo")
	if data.sqlitePath != "" {
		base = strings.TrimSuffix(data.sqlitePath, filepath.Ext(data.sqlitePath))
	}
	return base + "-jobs.db", base + "-files"
}

// openArchives opens (creating if needed) the jobs database and starts a
// runner over it, making documents with ex, the exporter of the
// synchronous endpoint. close stops the runner and closes the database.
func openArchives(ctx context.Context, dbPath, filesDir string, ex export.Exporter, logger *slog.Logger) (r *jobs.Runner, close func(context.Context), err error) {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1) // as River asks of SQLite
	storage, err := jobs.NewLocalDir(filesDir)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	notify := func(ctx context.Context, j jobs.Job) {
		// A real application sends its email here.
		logger.InfoContext(ctx, "demo notifier: the archive is "+string(j.Status), "user_id", j.UserID, "job_id", j.ID)
	}
	r, err = jobs.New(db, riversqlite.New(db), ex, jobs.WithStorage(storage), jobs.WithLogger(logger), jobs.WithNotifier(notify),
		// The demo's exports are small: a job whose process died is
		// retried a minute after it started, not half an hour.
		jobs.WithJobTimeout(30*time.Second, 30*time.Second))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := r.Migrate(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	// Started apart from ctx: close stops it, letting running jobs end.
	if err := r.Start(context.WithoutCancel(ctx)); err != nil {
		db.Close()
		return nil, nil, err
	}
	return r, func(ctx context.Context) {
		r.Stop(ctx)
		db.Close()
	}, nil
}
