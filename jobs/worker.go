package jobs

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/agentbot/export"
)

// exportArgs is the River job of one export: only the job's ID, whose row
// holds the rest.
type exportArgs struct {
	JobID string `json:"job_id"`
}

func (exportArgs) Kind() string { return "agentbot_export" }

type exportWorker struct {
	river.WorkerDefaults[exportArgs]
	r *Runner
}

func (w *exportWorker) Work(ctx context.Context, job *river.Job[exportArgs]) error {
	return w.r.work(ctx, job.Args.JobID, job.Attempt, job.MaxAttempts)
}

// work runs one attempt of job id. The file is written under a temporary
// name and renamed before the row says ready; a crash in between leaves a
// file whose row is still running, which the retry overwrites (or the
// cleanup removes, once the job has failed).
func (r *Runner) work(ctx context.Context, id string, attempt, maxAttempts int) error {
	j, err := r.job(ctx, r.db, id, "")
	if errors.Is(err, errNoJob) {
		// Deleted before it ran: nothing to do but make sure no file stays.
		return r.removeFiles(ctx, id)
	}
	if err != nil {
		return err
	}
	if !j.active() {
		return nil
	}
	res, err := r.db.ExecContext(ctx, r.q(`UPDATE export_job SET status = 'running', attempts = ? WHERE id = ? AND status IN ('queued', 'running')`), attempt, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	j.Status, j.Attempts = StatusRunning, attempt
	r.event(ctx, j, OutcomeRunning, 0, nil)

	at := r.now()
	sum := sha256.New()
	var n int64
	err = r.storage.Put(ctx, fileKey(id), func(w io.Writer) error {
		cw := &countingWriter{w: io.MultiWriter(w, sum)}
		_, err := r.exporter.Export(ctx, cw, export.Request{UserID: j.UserID, ExportedAt: at})
		n = cw.n
		return err
	})
	if err == nil && r.gzipCopy {
		j.gzBytes, j.gzSHA, err = r.putGzip(ctx, id)
	}
	if err != nil {
		return r.attemptFailed(ctx, j, attempt, maxAttempts, err)
	}
	finished := r.now()
	j.Status, j.SnapshotAt, j.FinishedAt, j.ExpiresAt = StatusReady, fromMillis(at.UnixMilli()), fromMillis(finished.UnixMilli()), fromMillis(finished.Add(r.retention).UnixMilli())
	j.Bytes, j.SHA256 = n, hex.EncodeToString(sum.Sum(nil))
	// The snapshot's instant in full (not milliseconds): the download's
	// filename is made from it, as the endpoint's is from exportedAt.
	var gzBytes, gzSHA any // NULL without a copy
	if j.gzSHA != "" {
		gzBytes, gzSHA = j.gzBytes, j.gzSHA
	}
	res, err = r.db.ExecContext(ctx, r.q(`UPDATE export_job SET status = 'ready', snapshot_at = ?, finished_at = ?, expires_at = ?, bytes = ?, sha256 = ?, gzip_bytes = ?, gzip_sha256 = ? WHERE id = ? AND status = 'running'`),
		at.UnixMilli(), finished.UnixMilli(), j.ExpiresAt.UnixMilli(), n, j.SHA256, gzBytes, gzSHA, id)
	if err != nil {
		return err // retried: the next attempt writes the file again
	}
	if k, _ := res.RowsAffected(); k == 0 {
		// Deleted while it ran.
		return r.removeFiles(ctx, id)
	}
	r.event(ctx, j, OutcomeReady, 0, nil)
	if r.notify != nil {
		r.notify(ctx, j)
	}
	return nil
}

// attemptFailed records a failed attempt: retried by River while
// attempts remain, failed for good after the last (or at once when the
// user no longer exists).
func (r *Runner) attemptFailed(ctx context.Context, j Job, attempt, maxAttempts int, cause error) error {
	gone := errors.Is(cause, export.ErrUserNotFound)
	if !gone && attempt < maxAttempts {
		r.event(ctx, j, OutcomeRetrying, 0, cause)
		return cause
	}
	// A context of its own: ctx may be what ended the attempt.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	r.fail(fctx, j, cause)
	if gone {
		return river.JobCancel(cause)
	}
	return cause
}

// fail marks j failed and tells the notifier.
func (r *Runner) fail(ctx context.Context, j Job, cause error) {
	now := r.now()
	res, err := r.db.ExecContext(ctx, r.q(`UPDATE export_job SET status = 'failed', finished_at = ? WHERE id = ? AND status IN ('queued', 'running')`), now.UnixMilli(), j.ID)
	if err != nil {
		r.logger.ErrorContext(ctx, "export job: could not record a failure", "job_id", j.ID, "error", err)
		return
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return
	}
	r.removeFiles(ctx, j.ID)
	j.Status, j.FinishedAt, j.Err = StatusFailed, fromMillis(now.UnixMilli()), cause
	r.event(ctx, j, OutcomeFailed, 0, cause)
	if r.notify != nil {
		r.notify(ctx, j)
	}
}

// putGzip stores the gzip copy of the document of id, read back from the
// storage (so that it is the copy of exactly what was stored), and
// returns its size and SHA-256.
func (r *Runner) putGzip(ctx context.Context, id string) (int64, string, error) {
	doc, err := r.storage.Open(ctx, fileKey(id))
	if err != nil {
		return 0, "", err
	}
	defer doc.Close()
	sum := sha256.New()
	var n int64
	err = r.storage.Put(ctx, gzipKey(id), func(w io.Writer) error {
		cw := &countingWriter{w: io.MultiWriter(w, sum)}
		zw := gzip.NewWriter(cw) // the default level: made once, sent many times
		if _, err := io.Copy(zw, doc); err != nil {
			return err
		}
		err := zw.Close()
		n = cw.n
		return err
	})
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(sum.Sum(nil)), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// cleanupArgs is the periodic retention job.
type cleanupArgs struct{}

func (cleanupArgs) Kind() string { return "agentbot_export_cleanup" }

type cleanupWorker struct {
	river.WorkerDefaults[cleanupArgs]
	r *Runner
}

func (w *cleanupWorker) Work(ctx context.Context, _ *river.Job[cleanupArgs]) error {
	_, err := w.r.Cleanup(ctx)
	return err
}

// Cleanup expires the files past their time (their jobs read "expired",
// downloads 410), removes files no ready job owns, fails active jobs
// whose River job is gone for good, and forgets expired and failed jobs
// a retention period after they ended. The periodic job runs it; tests
// call it after moving the clock. It returns how many files it removed.
func (r *Runner) Cleanup(ctx context.Context) (removed int, err error) {
	now := r.now()
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT `+jobColumns+` FROM export_job WHERE status = 'ready' AND expires_at <= ?`), now.UnixMilli())
	if err != nil {
		return 0, err
	}
	var expired []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		expired = append(expired, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, j := range expired {
		if err := r.removeFiles(ctx, j.ID); err != nil {
			return removed, err
		}
		removed++
		if _, err := r.db.ExecContext(ctx, r.q(`UPDATE export_job SET status = 'expired' WHERE id = ? AND status = 'ready'`), j.ID); err != nil {
			return removed, err
		}
		j.Status = StatusExpired
		r.event(ctx, j, OutcomeExpired, 0, nil)
	}

	// Files that no ready or active job owns: a job deleted or failed
	// while its file was being written, or a crash between the two.
	keys, err := r.storage.Keys(ctx)
	if err != nil {
		return removed, err
	}
	for _, key := range keys {
		id, ok := strings.CutSuffix(key, ".json")
		if !ok {
			id, ok = strings.CutSuffix(key, ".json.gz")
		}
		if !ok || !validID(id) {
			continue // not the runner's
		}
		j, err := r.job(ctx, r.db, id, "")
		if err != nil && !errors.Is(err, errNoJob) {
			return removed, err
		}
		if err == nil && (j.active() || j.Status == StatusReady) {
			continue
		}
		if err := r.storage.Delete(ctx, key); err != nil {
			return removed, err
		}
		removed++
	}

	// Active jobs whose River job was discarded or canceled (a panic or a
	// timeout on the last attempt) would hold the user's slot for ever.
	rows, err = r.db.QueryContext(ctx, r.q(`SELECT `+jobColumns+` FROM export_job WHERE status IN ('queued', 'running') AND created_at <= ?`), now.Add(-time.Minute).UnixMilli())
	if err != nil {
		return removed, err
	}
	var active []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return removed, err
		}
		active = append(active, j)
	}
	rows.Close()
	for _, j := range active {
		rj, err := r.client.JobGet(ctx, j.riverID)
		switch {
		case errors.Is(err, rivertype.ErrNotFound):
		case err != nil:
			return removed, err
		case rj.State == rivertype.JobStateDiscarded || rj.State == rivertype.JobStateCancelled || rj.State == rivertype.JobStateCompleted:
		default:
			continue
		}
		r.fail(ctx, j, errors.New("jobs: the River job ended without finishing the export"))
	}

	if _, err := r.db.ExecContext(ctx, r.q(`DELETE FROM export_job WHERE status IN ('expired', 'failed') AND COALESCE(expires_at, finished_at) <= ?`), now.Add(-r.retention).UnixMilli()); err != nil {
		return removed, err
	}
	return removed, nil
}
