package export

import (
	"context"
	"errors"
	"iter"
	"strings"
	"time"
)

// ErrUserNotFound is returned (possibly wrapped; test with errors.Is) by
// Store.View when the user does not exist. It is the only not-found rule
// of a Store: a user that exists but has no records is not an error, it
// has empty sections.
var ErrUserNotFound = errors.New("export: user not found")

// Store gives read access to the data an export is made of.
//
// A Store is used by many goroutines at once and must be safe for that.
type Store interface {
	// View calls fn with a read-only view of one user's data, all of it
	// as of a single point in time: whatever writes happen while fn runs,
	// every section fn reads reflects the same moment (an SQL store uses
	// one read-only transaction).
	//
	// If the user does not exist (including an empty userID), View
	// returns an error for which errors.Is(err, ErrUserNotFound) holds and
	// does not call fn. Any other failure to open the view is returned as
	// an error of its own.
	//
	// The view is released before View returns, whatever fn does; the Tx
	// must not be used after that. View returns fn's error unchanged. If
	// ctx is done before or while fn runs, reads stop with an error that
	// wraps ctx.Err().
	View(ctx context.Context, userID string, fn func(Tx) error) error
}

// Tx is one user's data as of the moment its view was opened.
//
// Each section is an iterator that yields its records ordered by creation
// time ascending, at the store's full precision, then by ID ascending in
// byte order (Go's string comparison, never a locale collation). Records
// are copies: the caller may keep or change them. An iterator that fails
// yields one zero record with a non-nil error and then stops; it stops
// reading (and releases what it holds) when the caller breaks out early.
// A section may be iterated more than once and yields the same records
// each time.
//
// String fields that the underlying storage holds as NULL come back as
// "", except the User fields typed NullString, which come back not Valid.
//
// Hosts add sections of their own with StoreExporter.AddSection: each
// Section's Read is called with this Tx, inside the same View, and reaches
// the store's own type through AsTx (sqlstore.Section and memstore.Section
// do), so this interface never has to grow.
type Tx interface {
	// User returns the user whose view this is.
	User(ctx context.Context) (User, error)
	Agents(ctx context.Context) iter.Seq2[Agent, error]
	ScheduledTasks(ctx context.Context) iter.Seq2[ScheduledTask, error]
	Workflows(ctx context.Context) iter.Seq2[Workflow, error]
}

// Compare orders two records the way every section is ordered: by
// creation time at full precision, then by ID in byte order. It returns a
// negative number, zero or a positive number, for use with slices.SortFunc.
// Stores that sort in Go use it; the conformance suite checks against it.
func Compare(createdA time.Time, idA string, createdB time.Time, idB string) int {
	if c := createdA.Compare(createdB); c != 0 {
		return c
	}
	return strings.Compare(idA, idB)
}
