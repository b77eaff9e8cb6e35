package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"

	"github.com/agentbot/export"
)

// Store is an export.Store over the host's own tables. It is safe for
// concurrent use; each View takes one connection from the pool for the
// length of one read-only transaction.
type Store struct {
	db      *sql.DB
	dialect Dialect
	layout  Layout
	txOpts  *sql.TxOptions
	q       queries
}

var _ export.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithLayout sets the tables and columns to read. The default is
// PrismaLayout. New refuses a layout that does not Validate.
func WithLayout(l Layout) Option { return func(s *Store) { s.layout = l } }

// New returns a Store that reads through db, the host's own pool (the
// store never opens or closes a connection pool, and never writes).
// All SQL text is built here, once.
func New(db *sql.DB, d Dialect, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if !d.valid() {
		return nil, fmt.Errorf("sqlstore: unknown dialect %v", d)
	}
	s := &Store{db: db, dialect: d, layout: PrismaLayout()}
	for _, o := range opts {
		o(s)
	}
	if err := s.layout.Validate(); err != nil {
		return nil, err
	}
	s.txOpts = d.txOptions()
	s.q = buildQueries(d, s.layout)
	return s, nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// Layout returns the store's layout.
func (s *Store) Layout() Layout { return s.layout }

// The steps of a View, as they appear in errors.
const (
	OpBegin          = "beginning transaction"
	OpUser           = "reading user"
	OpAgents         = "reading agents"
	OpScheduledTasks = "reading scheduled tasks"
	OpWorkflows      = "reading workflows"
	OpCommit         = "committing transaction"
)

// Error is a failed step of reading the database. Op names the step (one
// of the Op constants) and is safe to show; Err is the driver's error,
// for logs only: it may hold SQL, table names or host names.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return "sqlstore: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the driver's error.
func (e *Error) Unwrap() error { return e.Err }

// View implements export.Store: one read-only transaction, in which the
// user's row is read first (pinning the snapshot every section is read
// from), then fn runs. The transaction is committed if fn succeeds and
// rolled back otherwise.
func (s *Store) View(ctx context.Context, userID string, fn func(export.Tx) error) error {
	if userID == "" {
		return export.ErrUserNotFound
	}
	tx, err := s.db.BeginTx(ctx, s.txOpts)
	if err != nil {
		return &Error{Op: OpBegin, Err: err}
	}
	v := &view{s: s, tx: tx, args: s.args(userID)}
	defer func() {
		if !v.closed {
			v.closed = true
			// A rollback of a read-only transaction has nothing to undo;
			// its error changes nothing for the caller, whose error (from
			// fn or the user read) is the one to report. database/sql
			// discards the connection if the driver says it is broken.
			_ = tx.Rollback()
		}
	}()

	if err := v.readUser(ctx, userID); err != nil {
		return err
	}
	if err := fn(v); err != nil {
		return err
	}
	v.closed = true
	if err := tx.Commit(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, sql.ErrTxDone) {
			// database/sql rolled the transaction back when ctx ended;
			// say so, so that callers see the cancellation.
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return &Error{Op: OpCommit, Err: err}
	}
	return nil
}

func (s *Store) args(userID string) []any {
	if s.q.args == 2 {
		return []any{userID, userID}
	}
	return []any{userID}
}

// view is the export.Tx of one View.
type view struct {
	s      *Store
	tx     *sql.Tx
	args   []any
	user   export.User
	closed bool // set when View ends; a Tx used after that fails
}

var errViewClosed = errors.New("sqlstore: Tx used after its View returned")

func (v *view) readUser(ctx context.Context, userID string) error {
	var email, name, plan, role, code sql.NullString
	var credits sql.NullInt64
	err := v.tx.QueryRowContext(ctx, v.s.q.user, v.args...).Scan(&email, &name, &plan, &role, &code, &credits)
	if errors.Is(err, sql.ErrNoRows) {
		return export.ErrUserNotFound
	}
	if err != nil {
		// Named as the user stage, not as opening the view: the
		// transaction is open, reading the row is what failed.
		return &export.Error{Stage: export.StageUser, Err: &Error{Op: OpUser, Err: err}}
	}
	v.user = export.User{
		ID:              userID,
		Email:           email.String,
		Name:            export.NullString(name),
		Plan:            export.NullString(plan),
		Role:            role.String,
		ReferralCode:    export.NullString(code),
		ReferralCredits: credits.Int64,
	}
	return nil
}

func (v *view) User(context.Context) (export.User, error) {
	if v.closed {
		return export.User{}, errViewClosed
	}
	return v.user, nil
}

func (v *view) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return func(yield func(export.Agent, error) bool) {
		var id, name, model, status text
		var created, updated timestamp
		v.rows(ctx, OpAgents, v.s.q.agents, []any{&id, &name, &model, &status, &created, &updated}, func() bool {
			return yield(export.Agent{ID: string(id), Name: string(name), Model: string(model), Status: string(status),
				CreatedAt: created.t, UpdatedAt: updated.t}, nil)
		}, func(err error) { yield(export.Agent{}, err) })
	}
}

func (v *view) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	return func(yield func(export.ScheduledTask, error) bool) {
		var id, name, cron text
		var enabled flag
		var created timestamp
		v.rows(ctx, OpScheduledTasks, v.s.q.scheduledTasks, []any{&id, &name, &cron, &enabled, &created}, func() bool {
			return yield(export.ScheduledTask{ID: string(id), Name: string(name), CronSchedule: string(cron),
				Enabled: bool(enabled), CreatedAt: created.t}, nil)
		}, func(err error) { yield(export.ScheduledTask{}, err) })
	}
}

func (v *view) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	return func(yield func(export.Workflow, error) bool) {
		var id, name text
		var enabled flag
		var created timestamp
		v.rows(ctx, OpWorkflows, v.s.q.workflows, []any{&id, &name, &enabled, &created}, func() bool {
			return yield(export.Workflow{ID: string(id), Name: string(name), Enabled: bool(enabled), CreatedAt: created.t}, nil)
		}, func(err error) { yield(export.Workflow{}, err) })
	}
}

// rows runs one section's query and scans each row into dest, calling
// row after each scan until it returns false (the caller broke out). Any
// failure, including one from closing the rows, goes to fail as an *Error
// for op. Rows stream: one row is held at a time.
func (v *view) rows(ctx context.Context, op, query string, dest []any, row func() bool, fail func(error)) {
	if v.closed {
		fail(&Error{Op: op, Err: errViewClosed})
		return
	}
	rows, err := v.tx.QueryContext(ctx, query, v.args...)
	if err != nil {
		fail(&Error{Op: op, Err: err})
		return
	}
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			// A driver may have the rest of the result buffered, and
			// database/sql closes the rows on cancellation only when its
			// watcher runs: check here, so the export stops at once.
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if !row() {
				return nil
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// database/sql closes the rows at the end of the result and Err
		// reports a failed close; closing again costs nothing and does
		// not depend on that.
		return rows.Close()
	}()
	if err != nil {
		fail(&Error{Op: op, Err: err})
	}
}

// Check verifies, in a transaction opened as View opens it, that every
// table and column of the layout can be read (each query runs once, for
// no user), and on PostgreSQL that the driver honoured the transaction's
// options (REPEATABLE READ, READ ONLY) rather than silently dropping them.
// Hosts call it at startup so that a misconfigured layout fails there,
// not in a user's export.
func (s *Store) Check(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, s.txOpts)
	if err != nil {
		return &Error{Op: OpBegin, Err: err}
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		var isolation, readOnly string
		err := tx.QueryRowContext(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&isolation, &readOnly)
		if err != nil {
			return &Error{Op: OpBegin, Err: err}
		}
		if isolation != "repeatable read" || readOnly != "on" {
			return &Error{Op: OpBegin, Err: fmt.Errorf("the driver opened a transaction with isolation %q and read-only %q, not \"repeatable read\" and \"on\": it ignores database/sql's transaction options", isolation, readOnly)}
		}
	}
	args := s.args("")
	for _, c := range []struct{ op, query string }{
		{OpUser, s.q.user}, {OpAgents, s.q.agents}, {OpScheduledTasks, s.q.scheduledTasks}, {OpWorkflows, s.q.workflows},
	} {
		rows, err := tx.QueryContext(ctx, c.query, args...)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err != nil {
			return &Error{Op: c.op, Err: err}
		}
	}
	return nil
}
