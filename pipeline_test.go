package export_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"runtime"
	"testing"
	"time"

	"github.com/agentbot/export"
)

// Large sections are written on a second goroutine (pipeline.go). These
// tests hold that path to the serial one: the same bytes, the same
// errors, and the second goroutine always gone when Export returns,
// whatever fails or panics on either side.

// pipeStore yields n agents, tasks and workflows each; failAt > 0 makes
// the agents fail (fault "error") or panic (fault "panic") at that record.
type pipeStore struct {
	n      int
	failAt int
	fault  string
	taken  int // agents handed out
}

func (f *pipeStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	if id != "u" {
		return export.ErrUserNotFound
	}
	return fn(f)
}

func (f *pipeStore) User(context.Context) (export.User, error) {
	return export.User{ID: "u", Email: "u@example.com", Role: "user"}, nil
}

func (f *pipeStore) Agents(context.Context) iter.Seq2[export.Agent, error] {
	return func(yield func(export.Agent, error) bool) {
		for i := range f.n {
			if i == f.failAt && f.failAt > 0 {
				if f.fault == "panic" {
					panic("store panicked")
				}
				yield(export.Agent{}, errors.New("store failed"))
				return
			}
			f.taken++
			at := genBase.Add(time.Duration(i) * time.Millisecond)
			if !yield(export.Agent{ID: genIDs[i%len(genIDs)], Name: "a<b>\"c\"", Model: "m", Status: "s", CreatedAt: at, UpdatedAt: at}, nil) {
				return
			}
		}
	}
}

func (f *pipeStore) ScheduledTasks(context.Context) iter.Seq2[export.ScheduledTask, error] {
	return (&genStore{n: f.n}).ScheduledTasks(context.Background())
}

func (f *pipeStore) Workflows(context.Context) iter.Seq2[export.Workflow, error] {
	return (&genStore{n: f.n}).Workflows(context.Background())
}

// failingWriter fails every write after the first limit bytes, or panics
// if panicking is set.
type failingWriter struct {
	limit     int
	n         int
	panicking bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		if w.panicking {
			panic("writer panicked")
		}
		return 0, errors.New("disk full")
	}
	w.n += len(p)
	return len(p), nil
}

// exportWith exports from s with GOMAXPROCS set to procs (1 writes every
// section on the calling goroutine), and checks that no goroutine is left.
func exportWith(t *testing.T, procs int, s export.Store, w io.Writer) (res export.Result, err error, panicVal any) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	before := runtime.NumGoroutine()
	func() {
		defer func() { panicVal = recover() }()
		res, err = export.NewExporter(s).Export(context.Background(), w, export.Request{UserID: "u", ExportedAt: genBase})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left behind", runtime.NumGoroutine()-before)
		}
		time.Sleep(time.Millisecond)
	}
	return res, err, panicVal
}

// TestPipelineWritesTheSameBytes: sections of every size around where the
// second goroutine takes over, and around the batch size after that, come
// out the same written on two goroutines as on one.
func TestPipelineWritesTheSameBytes(t *testing.T) {
	// 4096 records go first on one goroutine, then batches of 2048.
	for _, n := range []int{0, 1, 4095, 4096, 4097, 4096 + 2047, 4096 + 2048, 4096 + 2049, 4096 + 4097, 20_000} {
		var serial, piped bytes.Buffer
		_, err1, _ := exportWith(t, 1, &pipeStore{n: n}, &serial)
		res, err2, _ := exportWith(t, 2, &pipeStore{n: n}, &piped)
		if err1 != nil || err2 != nil {
			t.Fatalf("%d records: %v, %v", n, err1, err2)
		}
		if !bytes.Equal(serial.Bytes(), piped.Bytes()) {
			t.Fatalf("%d records per section: the pipelined export differs from the serial one", n)
		}
		if res.Agents != n || res.ScheduledTasks != n || res.Workflows != n {
			t.Fatalf("%d records per section: result %+v", n, res)
		}
		if _, err := export.Decode(&piped); err != nil {
			t.Fatalf("%d records: %v", n, err)
		}
	}
}

// TestPipelineFailures: a store error or panic, a write error or a
// writer's panic, in the middle of a large section, ends the export as
// on the serial path, and the store stops being read soon after a write
// failure.
func TestPipelineFailures(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run("store error", func(t *testing.T) {
			_, err, _ := exportWith(t, procs, &pipeStore{n: 10_000, failAt: 6000, fault: "error"}, io.Discard)
			var ee *export.Error
			if !errors.As(err, &ee) || ee.Stage != export.StageAgents {
				t.Fatalf("GOMAXPROCS %d: %v, want a failure reading agents", procs, err)
			}
		})
		t.Run("store panic", func(t *testing.T) {
			_, _, p := exportWith(t, procs, &pipeStore{n: 10_000, failAt: 6000, fault: "panic"}, io.Discard)
			if p != "store panicked" {
				t.Fatalf("GOMAXPROCS %d: recovered %v, want the store's panic", procs, p)
			}
		})
		t.Run("write error", func(t *testing.T) {
			s := &pipeStore{n: 100_000}
			_, err, _ := exportWith(t, procs, s, &failingWriter{limit: 2 << 20})
			var ee *export.Error
			if !errors.As(err, &ee) || ee.Stage != export.StageWrite {
				t.Fatalf("GOMAXPROCS %d: %v, want a write failure", procs, err)
			}
			// About 11,000 agents fit in 2 MiB; reading stops within a
			// few batches (of 2048) of the failure, not at the end of the
			// section's 100,000.
			if s.taken > 20_000 {
				t.Fatalf("GOMAXPROCS %d: the store was read for %d agents after writing failed", procs, s.taken)
			}
		})
		t.Run("writer panic", func(t *testing.T) {
			_, _, p := exportWith(t, procs, &pipeStore{n: 100_000}, &failingWriter{limit: 2 << 20, panicking: true})
			if p != "writer panicked" {
				t.Fatalf("GOMAXPROCS %d: recovered %v, want the writer's panic", procs, p)
			}
		})
	}
}

// TestPipelineWriteFailureRace repeats a write failure that lands while
// the reading goroutine hands over and takes back batches: whichever way
// the race goes, the export ends (a batch handed over once was once sent
// twice, which filled the free list and hung the export).
func TestPipelineWriteFailureRace(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			export.NewExporter(&pipeStore{n: 20_000}).Export(context.Background(), &failingWriter{limit: 900 << 10}, export.Request{UserID: "u", ExportedAt: genBase})
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("an export hung after its writer failed")
	}
}
