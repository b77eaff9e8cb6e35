package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

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
	reader  RowReader // nil: database/sql's driver interface

	// plan is what packed.go's checks found for the schema version
	// last seen.
	plan atomic.Pointer[packPlan]
	// sortFree is what the plans said of sorts on PostgreSQL (stream.go).
	sortFree sortFree

	noPack   bool                         // tests: never read packed (packed.go)
	noStream bool                         // tests: leave the planner's settings alone (stream.go)
	onRead   func(op string, packed bool) // tests: told how each section is read
	onLookup func(op string)              // tests: told when an odd packed row is looked up
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
//
// fn runs on the calling goroutine, and the sections of its Tx are read
// one at a time: the connection is a single driver connection (see
// conn.go), so a section started while another is still being read fails
// instead of interleaving the two.
func (s *Store) View(ctx context.Context, userID string, fn func(export.Tx) error) error {
	if userID == "" {
		return export.ErrUserNotFound
	}
	var v *view
	defer func() {
		if v != nil {
			v.closed = true
		}
	}()
	return withTx(ctx, s.db, s.txOpts, true, func(c *dconn) error {
		c.reader = s.reader
		v = &view{s: s, c: c, args: s.args(userID)}
		if err := v.readUser(ctx, userID); err != nil {
			return err
		}
		return fn(v)
	})
}

func (s *Store) args(userID string) []any {
	if s.q.args == 2 {
		return []any{userID, userID}
	}
	return []any{userID}
}

// view is the export.Tx of one View.
type view struct {
	s       *Store
	c       *dconn
	args    []any
	user    export.User
	reading bool // a section's rows are open
	closed  bool // set when View ends; a Tx used after that fails

	// plan says which sections are read packed (packed.go); nil until
	// the first section is read.
	plan *packPlan
	// host holds PostgreSQL's jit, enable_sort and plan_cache_mode as
	// they were before the built-in sections changed them, until they are
	// given back (stream.go); plannerSet once that was decided.
	host       *[3]string
	plannerSet bool
}

var (
	errViewClosed = errors.New("sqlstore: Tx used after its View returned")
	errReading    = errors.New("sqlstore: a section was read while another was still being read (sections of one Tx are read one at a time)")
)

func (v *view) readUser(ctx context.Context, userID string) error {
	var email, name, plan, role, code sql.NullString
	var credits sql.NullInt64
	found := false
	err := v.each(ctx, v.s.q.user, v.args, []sql.Scanner{&email, &name, &plan, &role, &code, &credits}, func(*driverRows) bool {
		found = true
		return false
	})
	if err != nil {
		// Named as the user stage, not as opening the view: the
		// transaction is open, reading the row is what failed.
		return &export.Error{Stage: export.StageUser, Err: &Error{Op: OpUser, Err: err}}
	}
	if !found {
		return export.ErrUserNotFound
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
		var f [6]string
		err := v.section(ctx, &v.s.q.agents, []sql.Scanner{&id, &name, &model, &status, &created, &updated},
			func(p *packedRow) bool {
				if !p.split(f[:]) {
					return false
				}
				id, name, model, status = text(f[0]), text(f[1]), text(f[2]), text(f[3])
				return unpackTime(&created, f[4]) && unpackTime(&updated, f[5])
			},
			func() bool {
				return yield(export.Agent{ID: string(id), Name: string(name), Model: string(model), Status: string(status),
					CreatedAt: created.t, UpdatedAt: updated.t}, nil)
			})
		if err != nil {
			yield(export.Agent{}, &Error{Op: OpAgents, Err: err})
		}
	}
}

func (v *view) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	return func(yield func(export.ScheduledTask, error) bool) {
		var id, name, cron text
		var enabled flag
		var created timestamp
		var f [5]string
		err := v.section(ctx, &v.s.q.scheduledTasks, []sql.Scanner{&id, &name, &cron, &enabled, &created},
			func(p *packedRow) bool {
				if !p.split(f[:]) {
					return false
				}
				id, name, cron = text(f[0]), text(f[1]), text(f[2])
				return unpackFlag(&enabled, f[3]) && unpackTime(&created, f[4])
			},
			func() bool {
				return yield(export.ScheduledTask{ID: string(id), Name: string(name), CronSchedule: string(cron),
					Enabled: bool(enabled), CreatedAt: created.t}, nil)
			})
		if err != nil {
			yield(export.ScheduledTask{}, &Error{Op: OpScheduledTasks, Err: err})
		}
	}
}

func (v *view) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	return func(yield func(export.Workflow, error) bool) {
		var id, name text
		var enabled flag
		var created timestamp
		var f [4]string
		err := v.section(ctx, &v.s.q.workflows, []sql.Scanner{&id, &name, &enabled, &created},
			func(p *packedRow) bool {
				if !p.split(f[:]) {
					return false
				}
				id, name = text(f[0]), text(f[1])
				return unpackFlag(&enabled, f[2]) && unpackTime(&created, f[3])
			},
			func() bool {
				return yield(export.Workflow{ID: string(id), Name: string(name), Enabled: bool(enabled), CreatedAt: created.t}, nil)
			})
		if err != nil {
			yield(export.Workflow{}, &Error{Op: OpWorkflows, Err: err})
		}
	}
}

// each runs query with args and scans each row into dest, calling row
// after each until it returns false.
func (v *view) each(ctx context.Context, query string, args []any, dest []sql.Scanner, row func(*driverRows) bool) error {
	return v.eachFrom(ctx, query, args, dest, 0, row)
}

// eachFrom is each after reading past the first skip rows unscanned.
func (v *view) eachFrom(ctx context.Context, query string, args []any, dest []sql.Scanner, skip int, row func(*driverRows) bool) (err error) {
	switch {
	case v.closed:
		return errViewClosed
	case v.reading:
		return errReading
	}
	v.reading = true
	defer func() { v.reading = false }()
	rows, err := v.c.query(ctx, query, args)
	if err != nil {
		return err
	}
	// Closing can fail too (a driver may only then learn of an error at
	// the end of the result), and that must fail the read. Deferred, so
	// that the rows are closed even if row panics.
	defer func() {
		if cerr := rows.close(); err == nil {
			err = cerr
		}
	}()
	for {
		// A driver may have the rest of the result buffered: check here,
		// so that the export stops at once when ctx ends.
		if err := ctx.Err(); err != nil {
			return err
		}
		if skip > 0 {
			skip--
			if more, err := rows.next(nil); err != nil || !more {
				return err
			}
			continue
		}
		more, err := rows.next(dest)
		if err != nil || !more {
			return err
		}
		if !row(rows) {
			return nil
		}
	}
}

// Check verifies, in a transaction opened as View opens it, that every
// table and column of the layout can be read (each query runs once, for
// no user), and on PostgreSQL that the driver honoured the transaction's
// options (REPEATABLE READ, READ ONLY) rather than silently dropping them.
// Hosts call it at startup so that a misconfigured layout fails there,
// not in a user's export.
//
// The warnings are what does not stop an export but slows it: on
// PostgreSQL and SQLite, a section whose ordered read no index serves
// (the query plan sorts the user's rows), with the CREATE INDEX to run.
// Log them; they are not errors.
func (s *Store) Check(ctx context.Context) ([]Warning, error) {
	var warnings []Warning
	err := withTx(ctx, s.db, s.txOpts, false, func(c *dconn) error {
		c.reader = s.reader
		v := &view{s: s, c: c, args: s.args("")}
		if s.dialect == Postgres {
			var isolation, readOnly text
			err := v.each(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')", nil,
				[]sql.Scanner{&isolation, &readOnly}, func(*driverRows) bool { return false })
			if err != nil {
				return &Error{Op: OpBegin, Err: err}
			}
			if isolation != "repeatable read" || readOnly != "on" {
				return &Error{Op: OpBegin, Err: fmt.Errorf("the driver opened a transaction with isolation %q and read-only %q, not \"repeatable read\" and \"on\": it ignores database/sql's transaction options", isolation, readOnly)}
			}
		}
		if err := v.each(ctx, s.q.user, v.args, nil, func(*driverRows) bool { return true }); err != nil {
			return &Error{Op: OpUser, Err: err}
		}
		used := make([]string, 0, 3) // the form of each section's query a View runs
		for _, q := range s.q.sections() {
			query := q.plain
			if packed := v.packedQuery(ctx, q); packed != "" {
				// The forms a View would use: the packed query, and the
				// lookup of an odd row (rowid -1: no row).
				if err := v.each(ctx, q.lookup, append([]any{int64(-1)}, v.args...), nil, func(*driverRows) bool { return true }); err != nil {
					return &Error{Op: q.op, Err: err}
				}
				query = packed
			}
			if err := v.each(ctx, query, v.args, nil, func(*driverRows) bool { return true }); err != nil {
				return &Error{Op: q.op, Err: err}
			}
			used = append(used, query)
		}
		warnings = v.adviseIndexes(ctx, used)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return warnings, nil
}
