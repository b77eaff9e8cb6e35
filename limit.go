package export

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// Limiter decides when an export may run. The handler calls Acquire before
// reading any data and the returned release when the response is done.
//
// A host that runs many instances replaces the default LocalLimiter with
// one whose counts are shared (in Redis, a database...).
type Limiter interface {
	// Acquire waits until an export for userID may start and returns a
	// release func, which the caller calls exactly once when it ends.
	// When the export may not run, Acquire returns a *LimitError (the
	// client gets 429 with its RetryAfter). If ctx is done first, it
	// returns an error wrapping ctx.Err(). Any other error is a failure of
	// the limiter itself (the client gets 500).
	Acquire(ctx context.Context, userID string) (release func(), err error)
}

// LimitError refuses an export for now.
type LimitError struct {
	RetryAfter time.Duration // how long the client should wait before trying again
	Reason     string        // for logs
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("export: limited: %s (retry after %s)", e.Reason, e.RetryAfter)
}

// Limits configures a LocalLimiter. In every field, zero means the
// default and a negative value turns that bound off.
type Limits struct {
	// PerUser is how many exports of one user may be in flight at once,
	// counting those waiting for a global slot. Beyond it a request is
	// refused at once. Default 1; negative: no per-user limit.
	PerUser int
	// Concurrent is how many exports may run at once in this process.
	// Beyond it requests wait their turn, first come first served.
	// Default 4; negative: no global limit.
	Concurrent int
	// MaxWait bounds the wait for a global slot; then the request is
	// refused. Default 10s; negative: no bound, a request waits as long
	// as it lasts (its context, the server's timeouts).
	MaxWait time.Duration
	// RetryAfter is what refused clients are told. Default 5s; negative:
	// no delay asked, which the handler sends as "Retry-After: 1", the
	// least a 429 says.
	RetryAfter time.Duration
}

// defaultLimits fill the zero fields of Limits. Unexported so that no code
// can change the defaults of every other handler in the process.
var defaultLimits = Limits{PerUser: 1, Concurrent: 4, MaxWait: 10 * time.Second, RetryAfter: 5 * time.Second}

// LocalLimiter is the in-process Limiter: a per-user in-flight count and a
// first-come-first-served bound on concurrent exports.
type LocalLimiter struct {
	limits Limits

	mu      sync.Mutex
	users   map[string]int // exports in flight or waiting, per user
	running int
	waiting list.List // of chan struct{}, closed when granted
}

var _ Limiter = (*LocalLimiter)(nil)

// NewLimiter returns a LocalLimiter with l's limits, defaults filled in.
func NewLimiter(l Limits) *LocalLimiter {
	return &LocalLimiter{limits: l.WithDefaults(), users: make(map[string]int)}
}

// WithDefaults returns l with each zero field set to its default, as
// NewLimiter applies them; negative fields are kept (their bound is off).
// A shared limiter of the host's uses it to enforce the same limits by
// default.
func (l Limits) WithDefaults() Limits {
	if l.PerUser == 0 {
		l.PerUser = defaultLimits.PerUser
	}
	if l.Concurrent == 0 {
		l.Concurrent = defaultLimits.Concurrent
	}
	if l.MaxWait == 0 {
		l.MaxWait = defaultLimits.MaxWait
	}
	if l.RetryAfter == 0 {
		l.RetryAfter = defaultLimits.RetryAfter
	}
	return l
}

// Acquire implements Limiter.
func (l *LocalLimiter) Acquire(ctx context.Context, userID string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.limits.PerUser > 0 && l.users[userID] >= l.limits.PerUser {
		l.mu.Unlock()
		return nil, &LimitError{RetryAfter: l.limits.RetryAfter, Reason: "an export of this user is already in progress"}
	}
	l.users[userID]++
	if l.limits.Concurrent < 0 || (l.running < l.limits.Concurrent && l.waiting.Len() == 0) {
		l.running++
		l.mu.Unlock()
		return l.releaser(userID), nil
	}
	granted := make(chan struct{})
	elem := l.waiting.PushBack(granted)
	l.mu.Unlock()

	var timeout <-chan time.Time // nil, never ready, when MaxWait is off
	if l.limits.MaxWait > 0 {
		timer := time.NewTimer(l.limits.MaxWait)
		defer timer.Stop()
		timeout = timer.C
	}
	var err error
	select {
	case <-granted:
		return l.releaser(userID), nil
	case <-timeout:
		err = &LimitError{RetryAfter: l.limits.RetryAfter, Reason: "too many exports in progress"}
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	select {
	case <-granted:
		// Granted while giving up: pass the slot on.
		l.mu.Unlock()
		l.releaser(userID)()
		return nil, err
	default:
		l.waiting.Remove(elem)
	}
	l.leave(userID)
	l.mu.Unlock()
	return nil, err
}

func (l *LocalLimiter) releaser(userID string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.leave(userID)
			l.running--
			for l.waiting.Len() > 0 && (l.limits.Concurrent < 0 || l.running < l.limits.Concurrent) {
				l.running++
				close(l.waiting.Remove(l.waiting.Front()).(chan struct{}))
			}
		})
	}
}

// leave drops one of userID's in-flight count; l.mu is held.
func (l *LocalLimiter) leave(userID string) {
	if l.users[userID]--; l.users[userID] <= 0 {
		delete(l.users, userID)
	}
}
