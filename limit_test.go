package export

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitQueued waits until n requests wait for a slot.
func waitQueued(t *testing.T, l *LocalLimiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		got := l.waiting.Len()
		l.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d requests never queued", n)
}

func TestLimiterServesWaitersInOrder(t *testing.T) {
	l := NewLimiter(Limits{Concurrent: 1, MaxWait: time.Minute})
	ctx := context.Background()
	release, err := l.Acquire(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, u := range []string{"w1", "w2", "w3"} {
		wg.Go(func() {
			rel, err := l.Acquire(ctx, u)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, u)
			mu.Unlock()
			rel()
		})
		waitQueued(t, l, i+1)
	}

	// One that gives up leaves the queue without taking a turn.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(cctx, "impatient"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a canceled wait = %v", err)
	}
	waitQueued(t, l, 3)

	release()
	release() // a second call is harmless
	wg.Wait()
	if want := []string{"w1", "w2", "w3"}; !slices.Equal(order, want) {
		t.Fatalf("served in order %v, want %v", order, want)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running != 0 || len(l.users) != 0 || l.waiting.Len() != 0 {
		t.Fatalf("slots not all returned: running %d, users %v, waiting %d", l.running, l.users, l.waiting.Len())
	}
}

func TestLimiterRefusals(t *testing.T) {
	l := NewLimiter(Limits{Concurrent: 1, MaxWait: 20 * time.Millisecond, RetryAfter: 3 * time.Second})
	ctx := context.Background()
	rel, err := l.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if _, err := l.Acquire(ctx, "a"); !errors.As(err, &le) || le.RetryAfter != 3*time.Second {
		t.Fatalf("second export of the same user = %v, want a LimitError", err)
	}
	if _, err := l.Acquire(ctx, "b"); !errors.As(err, &le) {
		t.Fatalf("waiting past MaxWait = %v, want a LimitError", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(canceled, "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context = %v", err)
	}
	rel()
	rel, err = l.Acquire(ctx, "b")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	rel()
}

func TestLimiterUnlimited(t *testing.T) {
	l := NewLimiter(Limits{PerUser: -1, Concurrent: -1})
	var rels []func()
	for range 100 {
		rel, err := l.Acquire(context.Background(), "same user")
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	for _, rel := range rels {
		rel()
	}
}

// TestLimiterGrantedWhileGivingUp races a release against a waiter's
// timeout many times: the slot must never be lost.
func TestLimiterGrantedWhileGivingUp(t *testing.T) {
	l := NewLimiter(Limits{Concurrent: 1, MaxWait: time.Millisecond})
	for i := range 300 {
		rel, err := l.Acquire(context.Background(), "holder")
		if err != nil {
			t.Fatalf("round %d: the slot was lost: %v", i, err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if r, err := l.Acquire(context.Background(), "waiter"); err == nil {
				r()
			}
		}()
		time.Sleep(time.Duration(i%3) * 500 * time.Microsecond)
		rel()
		<-done
	}
}

// TestLimitsNegativeMeansOff: in every field, zero is the default and a
// negative value turns the bound off.
func TestLimitsNegativeMeansOff(t *testing.T) {
	if got := (Limits{}).WithDefaults(); got != defaultLimits {
		t.Fatalf("zero Limits.WithDefaults() = %+v, want %+v", got, defaultLimits)
	}
	off := Limits{PerUser: -1, Concurrent: -1, MaxWait: -1, RetryAfter: -1}
	if got := off.WithDefaults(); got != off {
		t.Fatalf("negative fields: WithDefaults() = %+v, want them kept: %+v", got, off)
	}

	// MaxWait off: a waiter still waits after 100 ms (a MaxWait of 20 ms
	// would have refused it), and gets the slot when it frees.
	l := NewLimiter(Limits{Concurrent: 1, MaxWait: -1})
	release, err := l.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.Acquire(context.Background(), "b")
		if err == nil {
			r()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("with MaxWait off, a waiter gave up: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("the waiter, once the slot freed: %v", err)
	}

	// RetryAfter off: a refusal asks for no delay.
	l = NewLimiter(Limits{RetryAfter: -1})
	release, _ = l.Acquire(context.Background(), "a")
	defer release()
	_, err = l.Acquire(context.Background(), "a")
	var le *LimitError
	if !errors.As(err, &le) || le.RetryAfter > 0 {
		t.Fatalf("RetryAfter off: %v, want a LimitError asking for no delay", err)
	}
}
