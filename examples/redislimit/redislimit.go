// Package redislimit is an export.Limiter whose counts live in Redis, so
// that every instance of a host application enforces the same per-user
// and global limits: one export per user across the fleet, and a bound on
// how many run at once in all.
//
// It is an example in a module of its own, so that the Redis client never
// becomes a dependency of the export package. Copy it, or depend on it.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	h := export.NewHandler(exporter, resolve,
//		export.WithLimiter(redislimit.New(rdb, export.Limits{Concurrent: 8})))
//
// How it works. Each export holds a lease: a random token in two sorted
// sets, the user's and the fleet's, scored by the time it expires. One
// Lua script drops expired leases, checks both counts and adds the token,
// atomically and on Redis's clock (instances' clocks may differ). While
// the export runs, a goroutine renews the lease every third of its TTL;
// release removes it. An instance that dies mid-export stops renewing,
// and its lease lapses after the TTL, so a crash never locks a user out
// for longer than that.
//
// Requests beyond the global bound poll for a slot (with backoff, up to
// Limits.MaxWait) while holding their user's place, so a user still has
// one export in flight or waiting. Unlike export.LocalLimiter, waiters are
// not served in strict arrival order across instances.
//
// When Redis cannot be reached, Acquire returns the error and the handler
// answers 500 ("could not acquire export slot"): a limiter that cannot
// count does not let exports through unbounded.
package redislimit

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agentbot/export"
)

// DefaultTTL is how long a lease lives without renewal.
const DefaultTTL = 30 * time.Second

// Limiter is an export.Limiter backed by Redis. Create it with New; it is
// safe for concurrent use, and any number of instances may share one
// Redis.
type Limiter struct {
	rdb    redis.Scripter
	limits export.Limits
	ttl    time.Duration
	prefix string
}

var _ export.Limiter = (*Limiter)(nil)

// Option configures a Limiter.
type Option func(*Limiter)

// WithTTL sets how long a lease outlives an instance that stopped
// renewing it (default 30 s, at least 30 ms). Shorter frees a crashed
// instance's slots sooner and costs more renewals.
func WithTTL(d time.Duration) Option { return func(l *Limiter) { l.ttl = d } }

// WithKeyPrefix sets the start of the Redis keys (default "export").
// Instances share limits exactly when they share the prefix. The keys are
// "{prefix}:running" and "{prefix}:user:<user ID>": the braces keep them
// in one Redis Cluster slot, which the script needs.
func WithKeyPrefix(p string) Option { return func(l *Limiter) { l.prefix = p } }

// New returns a limiter on rdb (a *redis.Client, *redis.ClusterClient or
// any other Scripter) enforcing limits, whose zero fields take the same
// defaults as export.NewLimiter's.
func New(rdb redis.Scripter, limits export.Limits, opts ...Option) *Limiter {
	l := &Limiter{rdb: rdb, limits: limits, ttl: DefaultTTL, prefix: "export"}
	for _, o := range opts {
		o(l)
	}
	l.limits = l.limits.WithDefaults()
	if l.ttl <= 0 {
		l.ttl = DefaultTTL
	}
	// Leases are kept in milliseconds and renewed every third of the TTL.
	l.ttl = max(l.ttl, 30*time.Millisecond)
	return l
}

// The scripts take KEYS = {user set, running set} and ARGV[1] = the
// token, ARGV[2] = the TTL in ms. Scores are expiry times in ms on
// Redis's clock.
var (
	// enterUser takes a place among the user's exports (ARGV[3] = the
	// per-user limit, negative for none): 1 when taken, 0 when full.
	enterUser = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[3])
if limit >= 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

	// start takes a running slot (ARGV[3] = the global limit, negative for
	// none) and renews the user's place: 1 when taken, 0 when full.
	start = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local limit = tonumber(ARGV[3])
if limit >= 0 and redis.call('ZCARD', KEYS[2]) >= limit then return 0 end
redis.call('ZADD', KEYS[2], now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

	// renew pushes back the expiry of the token wherever it still is.
	renew = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, k in ipairs(KEYS) do
  if redis.call('ZADD', k, 'XX', 'CH', now + ARGV[2], ARGV[1]) == 1 then
    redis.call('PEXPIRE', k, ARGV[2])
  end
end
return 1`)

	// leave removes the token from both sets.
	leave = redis.NewScript(`
for _, k in ipairs(KEYS) do redis.call('ZREM', k, ARGV[1]) end
return 1`)
)

// Acquire implements export.Limiter.
func (l *Limiter) Acquire(ctx context.Context, userID string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys := []string{"{" + l.prefix + "}:user:" + userID, "{" + l.prefix + "}:running"}
	token := newToken()
	ttl := l.ttl.Milliseconds()
	ok, err := enterUser.Run(ctx, l.rdb, keys, token, ttl, l.limits.PerUser).Int()
	if err != nil {
		return nil, fmt.Errorf("redislimit: %w", err)
	}
	if ok == 0 {
		return nil, &export.LimitError{RetryAfter: l.limits.RetryAfter, Reason: "an export of this user is already in progress"}
	}

	// The user's place is held from here: keep it alive while waiting.
	lease := &lease{l: l, keys: keys, token: token, done: make(chan struct{})}
	go lease.renewUntilReleased()
	deadline := time.Now().Add(l.limits.MaxWait)
	wait := 20 * time.Millisecond
	for {
		ok, err := start.Run(ctx, l.rdb, keys, token, ttl, l.limits.Concurrent).Int()
		if err == nil && ok == 1 {
			return lease.release, nil
		}
		if err != nil {
			lease.release()
			return nil, fmt.Errorf("redislimit: %w", err)
		}
		// Jitter keeps instances that wait together from polling together.
		sleep := wait/2 + rand.N(wait)
		if l.limits.MaxWait > 0 { // negative: no bound on the wait
			left := time.Until(deadline)
			if left <= 0 {
				lease.release()
				return nil, &export.LimitError{RetryAfter: l.limits.RetryAfter, Reason: "too many exports in progress"}
			}
			sleep = min(sleep, left)
		}
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			lease.release()
			return nil, ctx.Err()
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// lease is one export's token, renewed until released.
type lease struct {
	l     *Limiter
	keys  []string
	token string
	once  sync.Once
	done  chan struct{}
}

func (s *lease) renewUntilReleased() {
	tick := time.NewTicker(s.l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
			// A failed renewal is not fatal: the next may succeed, and at
			// worst the lease lapses and the limits are briefly loose.
			ctx, cancel := context.WithTimeout(context.Background(), s.l.ttl/3)
			renew.Run(ctx, s.l.rdb, s.keys, s.token, s.l.ttl.Milliseconds())
			cancel()
		}
	}
}

// release ends the lease; calling it again does nothing. The removal runs
// on its own context: the request's is often already canceled, and a
// lease left behind would hold a slot until its TTL.
func (s *lease) release() {
	s.once.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		leave.Run(ctx, s.l.rdb, s.keys, s.token)
	})
}

func newToken() string {
	b := make([]byte, 16)
	crand.Read(b) // never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}
