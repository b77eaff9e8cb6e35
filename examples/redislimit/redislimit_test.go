package redislimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/examples/redislimit"
	"github.com/agentbot/export/memstore"
)

// redisAddr is the Redis the tests use: EXPORT_TEST_REDIS_ADDR if set,
// else a redis-server started by TestMain on a Unix socket (and stopped
// after), else "" and every test skips.
var redisAddr, redisNetwork, skipReason string

func TestMain(m *testing.M) {
	os.Exit(runWithRedis(m))
}

func runWithRedis(m *testing.M) int {
	if addr := os.Getenv("EXPORT_TEST_REDIS_ADDR"); addr != "" {
		redisAddr, redisNetwork = addr, "tcp"
		return m.Run()
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipReason = "Redis tests skipped: no redis-server on PATH (Debian: apt-get install redis-server) and EXPORT_TEST_REDIS_ADDR unset; .ci/run installs it"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "redislimit")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	redisAddr, redisNetwork = sock, "unix"
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	for i := 0; c.Ping(context.Background()).Err() != nil; i++ {
		if i == 100 {
			panic("redis-server did not start within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m.Run()
}

// newClient returns a client of the test Redis, as one instance of a host
// would have, or skips.
func newClient(t *testing.T) *redis.Client {
	t.Helper()
	if redisAddr == "" {
		t.Skip(skipReason)
	}
	c := redis.NewClient(&redis.Options{Network: redisNetwork, Addr: redisAddr})
	t.Cleanup(func() { c.Close() })
	return c
}

// uniquePrefix keeps tests (and test runs) from sharing counts.
func uniquePrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "export-test-" + hex.EncodeToString(b)
}

// gatedStore holds alice's exports (and any user's listed) in View until
// the test opens the gate.
type gatedStore struct {
	*memstore.Store
	held    map[string]bool
	entered chan string
	gate    chan struct{}
}

func newGatedStore(held ...string) *gatedStore {
	s := &gatedStore{Store: memstore.New(), held: map[string]bool{}, entered: make(chan string, 16), gate: make(chan struct{})}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		s.PutUser(export.User{ID: u, Email: u + "@example.com", Role: "user"})
	}
	for _, u := range held {
		s.held[u] = true
	}
	return s
}

func (s *gatedStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	if s.held[id] {
		s.entered <- id
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.View(ctx, id, fn)
}

// instance is one running copy of the host application: its own Redis
// client, limiter and HTTP server, on the shared store and Redis.
type instance struct{ url string }

func newInstance(t *testing.T, store export.Store, prefix string, limits export.Limits, opts ...redislimit.Option) instance {
	t.Helper()
	lim := redislimit.New(newClient(t), limits, append([]redislimit.Option{redislimit.WithKeyPrefix(prefix)}, opts...)...)
	// The user comes from the request's X-Test-User header: a test-only
	// stand-in for a session.
	h := export.NewHandler(export.NewExporter(store), func(r *http.Request) (string, error) { return r.Header.Get("X-Test-User"), nil },
		export.WithLimiter(lim), export.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return instance{url: srv.URL}
}

// client gives up on a request that is held past any limit's wait, so
// that a broken limiter fails the test instead of hanging it.
var client = &http.Client{Timeout: 15 * time.Second}

type answer struct {
	status     int
	retryAfter string
	body       string
	took       time.Duration
}

func (in instance) get(user string) answer {
	req, _ := http.NewRequest(http.MethodGet, in.url, nil)
	req.Header.Set("X-Test-User", user)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return answer{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), took: time.Since(start)}
}

// async runs get in the background.
func (in instance) async(user string) <-chan answer {
	c := make(chan answer, 1)
	go func() { c <- in.get(user) }()
	return c
}

func TestTwoInstancesShareThePerUserLimit(t *testing.T) {
	store := newGatedStore("alice")
	prefix := uniquePrefix()
	a := newInstance(t, store, prefix, export.Limits{})
	b := newInstance(t, store, prefix, export.Limits{})

	first := a.async("alice")
	<-store.entered
	second := b.get("alice")
	require.Equal(t, http.StatusTooManyRequests, second.status, second.body)
	require.Equal(t, `{"error":"Too Many Requests"}`, second.body)
	require.Equal(t, "5", second.retryAfter)
	require.Equal(t, http.StatusOK, b.get("bob").status, "another user is not held up")

	close(store.gate)
	require.Equal(t, http.StatusOK, (<-first).status)
	require.Equal(t, http.StatusOK, b.get("alice").status, "the place is free again once the first export ended")
}

func TestTwoInstancesShareTheGlobalLimit(t *testing.T) {
	store := newGatedStore("alice", "bob")
	prefix := uniquePrefix()
	short := export.Limits{Concurrent: 2, MaxWait: 300 * time.Millisecond, RetryAfter: 2 * time.Second}
	a := newInstance(t, store, prefix, short)
	b := newInstance(t, store, prefix, short)

	alice := a.async("alice")
	bob := b.async("bob")
	<-store.entered
	<-store.entered
	refused := a.get("carol")
	require.Equal(t, http.StatusTooManyRequests, refused.status, refused.body)
	require.Equal(t, "2", refused.retryAfter)
	require.GreaterOrEqual(t, refused.took, 300*time.Millisecond, "a request beyond the bound waits its turn first")

	// A patient instance: its request waits, and gets the first slot freed
	// on the other instance.
	patient := newInstance(t, store, prefix, export.Limits{Concurrent: 2, MaxWait: 10 * time.Second})
	dave := patient.async("dave")
	time.Sleep(200 * time.Millisecond)
	select {
	case got := <-dave:
		t.Fatalf("dave ran past the bound: %+v", got)
	default:
	}
	close(store.gate)
	require.Equal(t, http.StatusOK, (<-alice).status)
	require.Equal(t, http.StatusOK, (<-bob).status)
	require.Equal(t, http.StatusOK, (<-dave).status)
}

// TestLeaseOfACrashedInstanceLapses: an instance that dies mid-export
// (here: its Redis client closes, so it can neither renew nor release)
// holds the user's place only until the lease's TTL.
func TestLeaseOfACrashedInstanceLapses(t *testing.T) {
	prefix := uniquePrefix()
	ttl := 400 * time.Millisecond
	dying := newClient(t)
	release, err := redislimit.New(dying, export.Limits{}, redislimit.WithKeyPrefix(prefix), redislimit.WithTTL(ttl)).Acquire(context.Background(), "alice")
	require.NoError(t, err)
	defer release()

	other := redislimit.New(newClient(t), export.Limits{}, redislimit.WithKeyPrefix(prefix), redislimit.WithTTL(ttl))
	_, err = other.Acquire(context.Background(), "alice")
	var le *export.LimitError
	require.ErrorAs(t, err, &le, "the live lease is respected")

	// Renewals keep a live lease past its TTL.
	time.Sleep(2 * ttl)
	_, err = other.Acquire(context.Background(), "alice")
	require.ErrorAs(t, err, &le, "a renewed lease outlives its TTL")

	dying.Close()
	require.Eventually(t, func() bool {
		rel, err := other.Acquire(context.Background(), "alice")
		if err == nil {
			rel()
		}
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "the crashed instance's lease never lapsed")
}

// TestReleaseAfterTheRequestEnded: release works on its own context, so
// a lease is removed even when the request's context is already over.
func TestReleaseAfterTheRequestEnded(t *testing.T) {
	c := newClient(t)
	prefix := uniquePrefix()
	ctx, cancel := context.WithCancel(context.Background())
	release, err := redislimit.New(c, export.Limits{}, redislimit.WithKeyPrefix(prefix)).Acquire(ctx, "alice")
	require.NoError(t, err)
	cancel()
	release()
	release() // a second call does nothing
	n, err := c.ZCard(context.Background(), "{"+prefix+"}:running").Result()
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = c.ZCard(context.Background(), "{"+prefix+"}:user:alice").Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestRedisUnreachable: no Redis, no export; the client gets the
// contract's 500 without the address, and the limiter's error reaches
// the host's hook.
func TestRedisUnreachable(t *testing.T) {
	if redisAddr == "" {
		t.Skip(skipReason)
	}
	dead := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(t.TempDir(), "no-redis.sock"), MaxRetries: -1})
	defer dead.Close()
	var hooked error
	h := export.NewHandler(export.NewExporter(newGatedStore()), func(*http.Request) (string, error) { return "alice", nil },
		export.WithLimiter(redislimit.New(dead, export.Limits{})),
		export.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		export.WithErrorHook(func(_ *http.Request, err error) { hooked = err }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/export", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Equal(t, `{"error":"Export failed","message":"could not acquire export slot"}`, rec.Body.String())
	require.ErrorContains(t, hooked, "no-redis.sock")
}

func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	store := memstore.New()
	h := export.NewHandler(export.NewExporter(store), func(r *http.Request) (string, error) {
		return "", export.ErrNoSession // the host's session lookup
	}, export.WithLimiter(redislimit.New(rdb, export.Limits{Concurrent: 8})))
	mux := http.NewServeMux()
	mux.Handle("/api/export", h)
	fmt.Println(strings.HasPrefix(fmt.Sprintf("%T", h), "*export."))
	// Output: true
}
