package jobs

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/agentbot/export"
)

// Status is the state of a job, as the API shows it.
type Status string

// The states of a job. queued and running are "active": a user has at
// most one active job.
const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	StatusReady   Status = "ready"
	StatusFailed  Status = "failed"
	StatusExpired Status = "expired"
)

// Defaults of the options.
const (
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultWorkers         = 2
	DefaultMaxAttempts     = 5
	DefaultJobTimeout      = 30 * time.Minute
	DefaultCleanupInterval = time.Hour
	DefaultBasePath        = "/api/exports"
	// QueueName is the River queue the runner's jobs go to, so that they
	// have a worker bound of their own.
	QueueName = "agentbot_export"
)

// Schema creates the table of export jobs; it works on PostgreSQL and
// SQLite alike. Times are Unix milliseconds. The partial unique index is
// what keeps a user at one queued or running job, across instances.
// Runner.Migrate runs it (and River's own migrations); a host without
// CREATE privilege at run time runs it with its own migrations instead.
const Schema = `CREATE TABLE IF NOT EXISTS export_job (
	id          TEXT PRIMARY KEY,
	user_id     TEXT NOT NULL,
	status      TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	snapshot_at BIGINT,
	finished_at BIGINT,
	expires_at  BIGINT,
	bytes       BIGINT,
	sha256      TEXT,
	gzip_bytes  BIGINT,
	gzip_sha256 TEXT,
	river_id    BIGINT,
	attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS export_job_user ON export_job (user_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS export_job_one_active ON export_job (user_id) WHERE status IN ('queued', 'running')`

// Job is one export job, as the notifier and the API see it. Times are
// zero until they happen.
type Job struct {
	ID         string
	UserID     string
	Status     Status
	CreatedAt  time.Time
	SnapshotAt time.Time // the exportedAt of the document
	FinishedAt time.Time
	ExpiresAt  time.Time
	Bytes      int64
	SHA256     string // hex, of the stored document
	Attempts   int
	Err        error // for the notifier of a failed job: the cause, never shown to clients

	riverID int64
	gzBytes int64  // the stored gzip copy's size, 0 without one
	gzSHA   string // and its SHA-256, hex
}

func (j Job) active() bool { return j.Status == StatusQueued || j.Status == StatusRunning }

// Runner runs export jobs on River and answers the job API (see
// NewHandler). Create it with New, create its tables with Migrate (once),
// then Start it; it is safe for concurrent use.
type Runner struct {
	db       *sql.DB // the job table's reads; its transactions go through inTx
	postgres bool
	client   riverClient
	migrate  func(context.Context) error // River's migrations, with the runner's driver
	inTx     func(context.Context, func(tx dbtx, insert inserter) error) error
	closeDB  bool // db was made by the runner (NewPgx): Stop closes it
	exporter export.Exporter
	storage  Storage

	now             func() time.Time
	retention       time.Duration
	cooldown        time.Duration
	workers         int
	maxAttempts     int
	jobTimeout      time.Duration
	rescueAfter     time.Duration
	cleanupInterval time.Duration
	basePath        string
	prefix          string
	logger          *slog.Logger
	notify          func(context.Context, Job)
	audit           func(context.Context, export.Event)
	riverConfig     func(*river.Config)
	gzipCopy        bool
	redirectTTL     time.Duration // > 0: downloads redirect to the storage's URL
}

// riverClient is what the runner asks of its River client, whichever
// transaction type its driver has.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// dbtx is one transaction on the job table, database/sql's or pgx's.
type dbtx interface {
	queryRow(ctx context.Context, query string, args ...any) scanner
	exec(ctx context.Context, query string, args ...any) error
}

// inserter inserts a River job in the transaction it was made for and
// returns its River ID.
type inserter func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)

// inserterFor inserts River jobs with client in tx.
func inserterFor[TTx any](client *river.Client[TTx], tx TTx) inserter {
	return func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
		res, err := client.InsertTx(ctx, tx, args, opts)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) queryRow(ctx context.Context, q string, args ...any) scanner {
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, q, args...)
	return err
}

type pgxTx struct{ tx pgx.Tx }

func (t pgxTx) queryRow(ctx context.Context, q string, args ...any) scanner {
	return t.tx.QueryRow(ctx, q, args...)
}

func (t pgxTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.Exec(ctx, q, args...)
	return err
}

// Option configures a Runner.
type Option func(*Runner)

// WithStorage sets where finished files go (default: a LocalDir named
// agentbot-exports in the OS temp directory).
func WithStorage(s Storage) Option { return func(r *Runner) { r.storage = s } }

// WithClock sets the runner's clock (default time.Now): createdAt,
// exportedAt, expiry and cooldown all read it. Tests move it forward to
// expire files.
func WithClock(now func() time.Time) Option { return func(r *Runner) { r.now = now } }

// WithRetention sets how long a finished file is kept (default 7 days).
func WithRetention(d time.Duration) Option { return func(r *Runner) { r.retention = d } }

// WithCooldown refuses a new job (429 with Retry-After) until d after the
// user's last job finished (default 0: off).
func WithCooldown(d time.Duration) Option { return func(r *Runner) { r.cooldown = d } }

// WithWorkers bounds how many exports this instance runs at once
// (default 2), apart from the synchronous endpoint's limits.
func WithWorkers(n int) Option { return func(r *Runner) { r.workers = n } }

// WithMaxAttempts sets how many times a job is tried before it fails
// (default 5); River waits longer between each.
func WithMaxAttempts(n int) Option { return func(r *Runner) { r.maxAttempts = n } }

// WithJobTimeout bounds one attempt (default 30 minutes). A job whose
// worker died is retried once it has been running for timeout plus
// rescueAfter (default 5 minutes, for River's rescuer); rescueAfter <= 0
// keeps the default.
func WithJobTimeout(timeout, rescueAfter time.Duration) Option {
	return func(r *Runner) { r.jobTimeout, r.rescueAfter = timeout, rescueAfter }
}

// WithCleanupInterval sets how often the retention job runs (default
// hourly, and once at start).
func WithCleanupInterval(d time.Duration) Option { return func(r *Runner) { r.cleanupInterval = d } }

// WithBasePath sets where the host mounts the API (default
// "/api/exports"), for Location and download links.
func WithBasePath(p string) Option { return func(r *Runner) { r.basePath = strings.TrimRight(p, "/") } }

// WithFilenamePrefix sets the start of the downloaded file's name, as
// export.WithFilenamePrefix does for the endpoint.
func WithFilenamePrefix(p string) Option { return func(r *Runner) { r.prefix = p } }

// WithLogger sets where each event's log line goes (default
// slog.Default()). River's own messages below Warn are dropped.
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.logger = l } }

// WithNotifier calls fn when a job is ready or has failed for good, for
// the host to tell the user (an email). fn runs in the worker: it should
// be quick, or hand the work on.
func WithNotifier(fn func(context.Context, Job)) Option { return func(r *Runner) { r.notify = fn } }

// WithAuditHook calls fn with one export.Event per job transition
// (Outcome "job_queued", "job_running", "job_retrying", "job_ready",
// "job_failed", "job_expired", "job_deleted") and per download
// ("job_downloaded", with Status and SentBytes), Event.JobID set. It is
// context-first where the endpoint's hook takes the request, because
// transitions happen in the worker, with no request; feed one audit sink
// from both: export.WithAuditHook(func(r *http.Request, ev export.Event)
// { sink(r.Context(), ev) }) and jobs.WithAuditHook(sink).
func WithAuditHook(fn func(context.Context, export.Event)) Option {
	return func(r *Runner) { r.audit = fn }
}

// WithoutCompressedCopy stores the document only as it is. By default a
// gzip copy is stored beside it and sent, with Content-Encoding: gzip, to
// clients that accept gzip (ranges then apply to the gzip bytes, which
// have an ETag of their own); clients that do not (curl without
// --compressed) get the document as it is.
func WithoutCompressedCopy() Option { return func(r *Runner) { r.gzipCopy = false } }

// MaxRedirectTTL bounds how long a presigned download URL is valid.
const MaxRedirectTTL = 5 * time.Minute

// WithPresignedRedirect answers an authorised download with a redirect
// (302) to a URL the storage mints for that request, valid for ttl (at
// most MaxRedirectTTL, which is also what ttl <= 0 means), instead of
// sending the file through the application. The storage must implement
// Redirector (s3storage does); New fails otherwise. The URL serves the
// document itself (ranges too, by the store), not the gzip copy.
func WithPresignedRedirect(ttl time.Duration) Option {
	return func(r *Runner) {
		if ttl <= 0 || ttl > MaxRedirectTTL {
			ttl = MaxRedirectTTL
		}
		r.redirectTTL = ttl
	}
}

// WithRiverConfig lets fn change River's configuration after the
// runner's own settings (poll interval, logger, test mode...). The
// runner's queue and workers must stay.
func WithRiverConfig(fn func(*river.Config)) Option { return func(r *Runner) { r.riverConfig = fn } }

// The audit outcomes of job events.
const (
	OutcomeQueued     export.Outcome = "job_queued"
	OutcomeRunning    export.Outcome = "job_running"
	OutcomeRetrying   export.Outcome = "job_retrying"
	OutcomeReady      export.Outcome = "job_ready"
	OutcomeFailed     export.Outcome = "job_failed"
	OutcomeExpired    export.Outcome = "job_expired"
	OutcomeDeleted    export.Outcome = "job_deleted"
	OutcomeDownloaded export.Outcome = "job_downloaded"
)

// New returns a runner whose jobs and River queue live in db, through
// driver: riversqlite.New(db) for SQLite (a pool of one connection, as
// River asks) or riverdatabasesql.New(db) for PostgreSQL over any
// database/sql driver. Both work on *sql.Tx, so a job's row and its River
// job are inserted in one transaction. (On pgx's own pool, use NewPgx.)
// exporter makes the documents: give it the one the synchronous endpoint
// uses, and both serve the same bytes.
func New(db *sql.DB, driver riverdriver.Driver[*sql.Tx], exporter export.Exporter, opts ...Option) (*Runner, error) {
	if db == nil || driver == nil || exporter == nil {
		return nil, errors.New("jobs: New needs a database, a River driver and an Exporter")
	}
	_, sqlite := driver.(*riversqlite.Driver)
	r, err := newRunner(db, !sqlite, exporter, opts)
	if err != nil {
		return nil, err
	}
	client, err := newClient(r, driver)
	if err != nil {
		return nil, err
	}
	r.inTx = func(ctx context.Context, fn func(dbtx, inserter) error) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := fn(sqlTx{tx}, inserterFor(client, tx)); err != nil {
			return err
		}
		return tx.Commit()
	}
	return r, nil
}

// NewPgx is New on a pgx pool, through River's pgx driver (riverpgxv5,
// which listens for new jobs instead of polling): a job's row and its
// River job are inserted in one pgx transaction. The job table's reads go
// through a database/sql handle on the same pool, which Stop closes.
func NewPgx(pool *pgxpool.Pool, exporter export.Exporter, opts ...Option) (*Runner, error) {
	if pool == nil || exporter == nil {
		return nil, errors.New("jobs: NewPgx needs a pool and an Exporter")
	}
	db := stdlib.OpenDBFromPool(pool)
	r, err := newRunner(db, true, exporter, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	r.closeDB = true
	client, err := newClient(r, riverpgxv5.New(pool))
	if err != nil {
		db.Close()
		return nil, err
	}
	r.inTx = func(ctx context.Context, fn func(dbtx, inserter) error) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := fn(pgxTx{tx}, inserterFor(client, tx)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	return r, nil
}

// newRunner applies the options and their defaults.
func newRunner(db *sql.DB, postgres bool, exporter export.Exporter, opts []Option) (*Runner, error) {
	r := &Runner{db: db, postgres: postgres, exporter: exporter, gzipCopy: true}
	for _, opt := range opts {
		opt(r)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.retention <= 0 {
		r.retention = DefaultRetention
	}
	if r.workers <= 0 {
		r.workers = DefaultWorkers
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = DefaultMaxAttempts
	}
	if r.jobTimeout <= 0 {
		r.jobTimeout = DefaultJobTimeout
	}
	if r.rescueAfter <= 0 {
		r.rescueAfter = 5 * time.Minute
	}
	if r.cleanupInterval <= 0 {
		r.cleanupInterval = DefaultCleanupInterval
	}
	if r.basePath == "" {
		r.basePath = DefaultBasePath
	}
	if r.prefix == "" {
		r.prefix = export.DefaultFilenamePrefix
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if r.storage == nil {
		s, err := NewLocalDir(filepath.Join(os.TempDir(), "agentbot-exports"))
		if err != nil {
			return nil, err
		}
		r.storage = s
	}
	if _, ok := r.storage.(Redirector); r.redirectTTL > 0 && !ok {
		return nil, errors.New("jobs: WithPresignedRedirect needs a Storage that implements Redirector")
	}
	return r, nil
}

// newClient makes r's River client on driver, with r's workers, queue and
// periodic cleanup.
func newClient[TTx any](r *Runner, driver riverdriver.Driver[TTx]) (*river.Client[TTx], error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &exportWorker{r: r}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &cleanupWorker{r: r}); err != nil {
		return nil, err
	}
	cfg := &river.Config{
		Queues:               map[string]river.QueueConfig{QueueName: {MaxWorkers: r.workers}},
		Workers:              workers,
		JobTimeout:           r.jobTimeout,
		RescueStuckJobsAfter: r.jobTimeout + r.rescueAfter,
		MaxAttempts:          r.maxAttempts,
		Logger:               slog.New(minLevel{r.logger.Handler(), slog.LevelWarn}),
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(r.cleanupInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return cleanupArgs{}, &river.InsertOpts{Queue: QueueName, MaxAttempts: 1}
			}, &river.PeriodicJobOpts{ID: "agentbot_export_cleanup", RunOnStart: true})},
	}
	if r.riverConfig != nil {
		r.riverConfig(cfg)
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, err
	}
	r.client = client
	r.migrate = func(ctx context.Context) error {
		m, err := rivermigrate.New(driver, nil)
		if err != nil {
			return err
		}
		_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		return err
	}
	return client, nil
}

// Migrate creates River's tables (its migrations, up) and the job table
// (Schema) where missing.
func (r *Runner) Migrate(ctx context.Context) error {
	if err := r.migrate(ctx); err != nil {
		return fmt.Errorf("jobs: River migrations: %w", err)
	}
	for stmt := range strings.SplitSeq(Schema, ";") {
		if _, err := r.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("jobs: creating the job table: %w", err)
		}
	}
	return nil
}

// Start starts working jobs (this instance's share of the queue) and the
// periodic cleanup; it returns at once.
func (r *Runner) Start(ctx context.Context) error { return r.client.Start(ctx) }

// Stop waits for the running exports to finish (or ctx to end, then
// cancels them: they are retried later, by this or another instance).
func (r *Runner) Stop(ctx context.Context) error {
	err := r.client.Stop(ctx)
	if ctx.Err() != nil {
		err = r.client.StopAndCancel(context.Background())
	}
	if r.closeDB {
		r.db.Close()
	}
	return err
}

// Storage returns where the runner keeps files.
func (r *Runner) Storage() Storage { return r.storage }

// newID returns a job ID: 160 random bits in lower-case base32, 32
// characters.
func newID() string {
	var b [20]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// validID reports whether s has the form of newID's IDs, so that nothing
// else reaches the database or the storage.
func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

func fileKey(id string) string { return id + ".json" }

// gzipKey is where the gzip copy of the document of id is kept.
func gzipKey(id string) string { return id + ".json.gz" }

// removeFiles removes the document of id and its gzip copy.
func (r *Runner) removeFiles(ctx context.Context, id string) error {
	err := r.storage.Delete(ctx, fileKey(id))
	if gerr := r.storage.Delete(ctx, gzipKey(id)); err == nil {
		err = gerr
	}
	return err
}

// q rewrites ? placeholders as $1, $2... for PostgreSQL.
func (r *Runner) q(s string) string {
	if !r.postgres {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

const jobColumns = `id, user_id, status, created_at, snapshot_at, finished_at, expires_at, bytes, sha256, gzip_bytes, gzip_sha256, river_id, attempts`

type scanner interface{ Scan(...any) error }

func scanJob(s scanner) (Job, error) {
	var j Job
	var status string
	var created int64
	var snap, fin, exp, bytes, gzBytes, riverID sql.NullInt64
	var sum, gzSum sql.NullString
	if err := s.Scan(&j.ID, &j.UserID, &status, &created, &snap, &fin, &exp, &bytes, &sum, &gzBytes, &gzSum, &riverID, &j.Attempts); err != nil {
		return Job{}, err
	}
	j.Status = Status(status)
	j.CreatedAt = fromMillis(created)
	if snap.Valid {
		j.SnapshotAt = fromMillis(snap.Int64)
	}
	if fin.Valid {
		j.FinishedAt = fromMillis(fin.Int64)
	}
	if exp.Valid {
		j.ExpiresAt = fromMillis(exp.Int64)
	}
	j.Bytes, j.SHA256, j.riverID = bytes.Int64, sum.String, riverID.Int64
	j.gzBytes, j.gzSHA = gzBytes.Int64, gzSum.String
	return j, nil
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// errNoJob is the one not-found rule of the job table.
var errNoJob = errors.New("jobs: no such job")

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// job returns the job id of userID ("" for any user). A ready job past
// its expiry reads as expired, whether or not the cleanup has run.
func (r *Runner) job(ctx context.Context, q querier, id, userID string) (Job, error) {
	query := `SELECT ` + jobColumns + ` FROM export_job WHERE id = ?`
	args := []any{id}
	if userID != "" {
		query += ` AND user_id = ?`
		args = append(args, userID)
	}
	j, err := scanJob(q.QueryRowContext(ctx, r.q(query), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, errNoJob
	}
	if err != nil {
		return Job{}, err
	}
	r.expireView(&j)
	return j, nil
}

func (r *Runner) expireView(j *Job) {
	if j.Status == StatusReady && !j.ExpiresAt.IsZero() && !r.now().Before(j.ExpiresAt) {
		j.Status = StatusExpired
	}
}

// Jobs returns userID's jobs, newest first (at most 100).
func (r *Runner) Jobs(ctx context.Context, userID string) ([]Job, error) {
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT `+jobColumns+` FROM export_job WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 100`), userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	jobs := []Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		r.expireView(&j)
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// CooldownError is Enqueue's refusal under WithCooldown.
type CooldownError struct{ RetryAfter time.Duration }

func (e *CooldownError) Error() string {
	return "jobs: a new export is allowed in " + e.RetryAfter.String()
}

// Enqueue starts a job for userID and returns it with created true; while
// the user has a queued or running job it returns that one, created
// false. The job's row and its River job are inserted in one transaction.
func (r *Runner) Enqueue(ctx context.Context, userID string) (j Job, created bool, err error) {
	if userID == "" {
		return Job{}, false, errors.New("jobs: Enqueue needs a user ID")
	}
	for range 3 {
		j, created, err = r.enqueue(ctx, userID)
		if err == nil || errors.As(err, new(*CooldownError)) {
			break
		}
		// Another request for the same user may have won the unique
		// index: its job is the answer.
		if a, aerr := r.activeJob(ctx, r.db, userID); aerr == nil {
			return a, false, nil
		}
	}
	if err == nil && created {
		r.event(ctx, j, OutcomeQueued, 0, nil)
	}
	return j, created, err
}

func (r *Runner) activeJob(ctx context.Context, q querier, userID string) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, r.q(`SELECT `+jobColumns+` FROM export_job WHERE user_id = ? AND status IN ('queued', 'running')`), userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, errNoJob
	}
	return j, err
}

func (r *Runner) enqueue(ctx context.Context, userID string) (job Job, created bool, err error) {
	err = r.inTx(ctx, func(tx dbtx, insert inserter) error {
		a, err := scanJob(tx.queryRow(ctx, r.q(`SELECT `+jobColumns+` FROM export_job WHERE user_id = ? AND status IN ('queued', 'running')`), userID))
		if err == nil {
			job = a
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := r.now()
		if r.cooldown > 0 {
			var last sql.NullInt64
			if err := tx.queryRow(ctx, r.q(`SELECT MAX(finished_at) FROM export_job WHERE user_id = ?`), userID).Scan(&last); err != nil {
				return err
			}
			if last.Valid {
				if wait := fromMillis(last.Int64).Add(r.cooldown).Sub(now); wait > 0 {
					return &CooldownError{RetryAfter: wait}
				}
			}
		}
		j := Job{ID: newID(), UserID: userID, Status: StatusQueued, CreatedAt: fromMillis(now.UnixMilli())}
		if err := tx.exec(ctx, r.q(`INSERT INTO export_job (id, user_id, status, created_at) VALUES (?, ?, 'queued', ?)`), j.ID, userID, now.UnixMilli()); err != nil {
			return err
		}
		if j.riverID, err = insert(ctx, exportArgs{JobID: j.ID}, &river.InsertOpts{Queue: QueueName, MaxAttempts: r.maxAttempts}); err != nil {
			return err
		}
		if err := tx.exec(ctx, r.q(`UPDATE export_job SET river_id = ? WHERE id = ?`), j.riverID, j.ID); err != nil {
			return err
		}
		job, created = j, true
		return nil
	})
	if err != nil {
		return Job{}, false, err
	}
	return job, created, nil
}

// Delete removes userID's job id and its file. A running export is
// canceled; if it finishes anyway, it finds its row gone and removes what
// it wrote.
func (r *Runner) Delete(ctx context.Context, userID, id string) error {
	j, err := r.job(ctx, r.db, id, userID)
	if err != nil {
		return err
	}
	res, err := r.db.ExecContext(ctx, r.q(`DELETE FROM export_job WHERE id = ? AND user_id = ?`), id, userID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoJob
	}
	if j.active() && j.riverID != 0 {
		r.client.JobCancel(ctx, j.riverID) // best effort: the worker checks its row too
	}
	if err := r.removeFiles(ctx, id); err != nil {
		r.logger.ErrorContext(ctx, "export job: could not remove the file of a deleted job", "job_id", id, "error", err)
	}
	r.event(ctx, j, OutcomeDeleted, 0, nil)
	return nil
}

// event sends one job event to the audit hook and the logger.
func (r *Runner) event(ctx context.Context, j Job, outcome export.Outcome, status int, err error) {
	ev := export.Event{UserID: j.UserID, JobID: j.ID, Outcome: outcome, Status: status, Bytes: j.Bytes, Err: err}
	if !j.FinishedAt.IsZero() && !j.CreatedAt.IsZero() {
		ev.Duration = j.FinishedAt.Sub(j.CreatedAt)
	}
	r.emit(ctx, ev)
}

func (r *Runner) emit(ctx context.Context, ev export.Event) {
	if r.audit != nil {
		r.audit(ctx, ev)
	}
	level := slog.LevelInfo
	if ev.Outcome == OutcomeFailed || ev.Outcome == OutcomeRetrying {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("user_id", ev.UserID),
		slog.String("job_id", ev.JobID),
		slog.String("outcome", string(ev.Outcome)),
		slog.Int64("bytes", ev.Bytes),
		slog.Duration("duration", ev.Duration),
	}
	if ev.Status != 0 {
		attrs = append(attrs, slog.Int("status", ev.Status), slog.Int64("sent_bytes", ev.SentBytes))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	r.logger.LogAttrs(ctx, level, "export job", attrs...)
}

// minLevel drops records below min: River's informational chatter.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.min} }
