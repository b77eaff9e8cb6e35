package export

import (
	"fmt"
	"runtime"
)

// Reading a large section and writing it can use two cores at once: a
// database driver's row reading is the larger part of an export, and
// encoding and writing (into the spool or the socket) most of the rest.
// So the store's iterator runs on the calling goroutine (View's, as a
// store expects), while a second goroutine encodes and writes the records
// already read. Records cross over in batches, through a fixed set of
// reused buffers, so the memory held stays a few batches whatever the
// size of the account.
//
// The first pipelineAfter records of a section are written on the calling
// goroutine, so that a section smaller than that never starts a second
// goroutine nor allocates batches: for an ordinary account (or a document
// in memory) the hand-over would cost more than it saves; the benchmark of
// a 900-record document ran twice as slow with it. All sections are
// written on the calling goroutine when only one CPU is usable.

// pipelineAfter is how many records of a section are written before the
// rest go to the second goroutine.
const pipelineAfter = 4096

// batchSize is how many records cross over at a time: enough that the
// hand-over costs nothing per record, few enough to hold little memory
// (three batches of agents are under 1 MB). It was 256: pprof showed the
// writer's wake-ups (futex) at a few percent of a large export, and 2048
// was 7-9% faster end to end in 20 interleaved runs of the 300,000-record
// export (median 1.02 s against 1.10 s).
const batchSize = 2048

// batches is how many buffers a pipelined section cycles through: one
// being filled, one waiting, one being written.
const batches = 3

// pipelined reports whether large sections are split over two goroutines:
// with one usable CPU they would only take turns.
func pipelined() bool { return runtime.GOMAXPROCS(0) > 1 }

// pipe writes the records of one section.
type pipe[T any] struct {
	j      *jsonWriter
	record func([]byte, T) []byte
	allow  bool // may start the second goroutine

	n       int // records taken
	written int // records written; only the writing side touches it
	batch   []T // being filled

	running bool
	full    chan []T      // batches to write, in order
	free    chan []T      // written batches, to fill again
	failed  chan struct{} // closed when the writer stops writing
	done    chan outcome  // the writer's end, sent once
}

// outcome is how the writing goroutine ended: an error, or a panic to be
// raised again on the calling goroutine.
type outcome struct {
	err      error
	panicked bool
	panicVal any
}

// add takes one record; false means writing has failed, and the caller
// stops reading (close reports the error).
func (p *pipe[T]) add(rec T) bool {
	p.n++
	if !p.allow || p.n <= pipelineAfter {
		return p.writeOne(rec) == nil
	}
	if p.batch == nil {
		p.batch = make([]T, 0, batchSize)
	}
	p.batch = append(p.batch, rec)
	if len(p.batch) < batchSize {
		return true
	}
	if !p.running {
		p.start()
	}
	// Stop at once if writing has failed: the writer goes on taking
	// batches (so that this side never blocks), and a select between
	// handing one over and the failure picks either when both are ready,
	// so without this check reading went on for a few more batches at
	// random (TestPipelineFailures saw 20,480 records read where about
	// 11,000 were written).
	select {
	case <-p.failed:
		return false
	default:
	}
	select {
	case p.full <- p.batch:
		// The batch is the writer's now: it must not be sent again by
		// close if the writer fails before a free one comes back.
		p.batch = nil
	case <-p.failed:
		return false
	}
	select {
	case p.batch = <-p.free:
	case <-p.failed:
		return false
	}
	return true
}

// write encodes records into the writer.
func (p *pipe[T]) write(recs []T) error {
	for _, rec := range recs {
		if err := p.writeOne(rec); err != nil {
			return err
		}
	}
	return nil
}

// writeOne encodes one record, after a comma unless it is the section's
// first, and flushes when the buffer is full.
func (p *pipe[T]) writeOne(rec T) error {
	j := p.j
	if p.written > 0 {
		j.buf = append(j.buf, ',')
	}
	j.buf = p.record(j.buf, rec)
	p.written++
	return j.step()
}

func (p *pipe[T]) start() {
	p.running = true
	p.full = make(chan []T, 1)
	p.free = make(chan []T, batches)
	p.failed = make(chan struct{})
	p.done = make(chan outcome, 1)
	for range batches - 1 {
		p.free <- make([]T, 0, batchSize)
	}
	go p.writer()
}

// writer is the second goroutine: it writes each batch it receives until
// full is closed. After a failure or a panic it stops writing but keeps
// taking batches, so that the calling goroutine never blocks on it.
func (p *pipe[T]) writer() {
	var out outcome
	defer func() {
		if v := recover(); v != nil {
			out = outcome{err: fmt.Errorf("export: panic while writing: %v", v), panicked: true, panicVal: v}
			close(p.failed)
			for range p.full {
			}
		}
		p.done <- out
	}()
	for b := range p.full {
		if out.err == nil {
			if out.err = p.write(b); out.err != nil {
				close(p.failed)
			}
		}
		p.free <- b[:0]
	}
}

// close writes what is left if flush is set, waits for the second
// goroutine, and returns the first write error; a panic of the writer is
// raised again here. It must run once whatever happened before, also when
// the store's iterator panicked, so that the second goroutine always ends.
func (p *pipe[T]) close(flush bool) error {
	if !p.running {
		if flush && len(p.batch) > 0 {
			return p.write(p.batch)
		}
		return p.j.err
	}
	if flush && len(p.batch) > 0 {
		select {
		case p.full <- p.batch:
		case <-p.failed:
		}
	}
	close(p.full)
	out := <-p.done
	p.running = false
	if out.panicked {
		panic(out.panicVal)
	}
	return out.err
}
