package export

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts bound the time an export may go without progress. A zero
// field takes its default; a negative one turns that bound off. They are
// set on the connection (http.ResponseController) and on the export's
// context, so they hold whatever the http.Server's own timeouts are, and
// replace them for the export: a long export that makes progress is never
// cut by a WriteTimeout meant for ordinary pages.
type Timeouts struct {
	// ClientIdle is how long a client may take to accept the next part
	// of the document (at most clientChunk, 32 KiB) before the export is
	// cut: the connection is closed and the slot, spool file and
	// goroutines released (outcome "stalled"). A client that reads more
	// than 32 KiB per ClientIdle is never cut. Default 30s. Negative:
	// the handler leaves the connection's deadlines to the http.Server.
	ClientIdle time.Duration
	// StoreIdle is how long the store may yield nothing (no record, no
	// byte of the document) before the export is canceled: 503 with
	// Retry-After, or in streaming mode after the first byte the
	// streaming abort (outcome "timeout"). Time spent waiting for the
	// client to accept bytes does not count. Default 60s. Negative: none.
	StoreIdle time.Duration
	// Total bounds a whole export, from the moment it has its slot to its
	// last byte sent, progress or not: 503 while nothing was sent, the
	// connection cut after that (outcome "timeout"). Zero (the default)
	// or negative: no bound.
	Total time.Duration
	// RetryAfter is what a 503 tells the client. Default 30s; negative:
	// no delay (Retry-After: 1, the least the header says).
	RetryAfter time.Duration
}

// defaultTimeouts fill the zero fields of Timeouts.
var defaultTimeouts = Timeouts{ClientIdle: 30 * time.Second, StoreIdle: 60 * time.Second, RetryAfter: 30 * time.Second}

// WithDefaults returns t with each zero field set to its default (Total
// stays off), as the handler applies them. As in Limits, zero is a field's
// default and a negative value turns that bound off.
func (t Timeouts) WithDefaults() Timeouts {
	if t.ClientIdle == 0 {
		t.ClientIdle = defaultTimeouts.ClientIdle
	}
	if t.StoreIdle == 0 {
		t.StoreIdle = defaultTimeouts.StoreIdle
	}
	if t.RetryAfter == 0 {
		t.RetryAfter = defaultTimeouts.RetryAfter
	}
	return t
}

// WithTimeouts sets the handler's progress deadlines; see Timeouts. The
// defaults apply without this option.
func WithTimeouts(t Timeouts) Option { return func(h *Handler) { h.timeouts = t } }

// clientChunk is the most the handler writes to a client under one
// deadline: a client must take in this much per Timeouts.ClientIdle.
// It is the encoder's flush size, so a streamed export writes each
// buffer under a deadline of its own.
const clientChunk = 32 << 10

// The causes an export's context is canceled with by its deadlines.
var (
	errStoreIdle = errors.New("export: the store yielded nothing within the store deadline")
	errTotal     = errors.New("export: the export did not finish within its time limit")
)

// progress counts what an export has done, for the store deadline: each
// record the StoreExporter reads and each write of the document. A write
// in flight counts as progress for as long as it lasts, so a slow client
// is never blamed on the store.
type progress struct {
	ticks   atomic.Uint64
	writing atomic.Int32
}

func (p *progress) tick() {
	if p != nil {
		p.ticks.Add(1)
	}
}

type progressKey struct{}

// progressFrom returns the progress counter the handler put in ctx, or
// nil when the export runs outside a handler with a store deadline.
func progressFrom(ctx context.Context) *progress {
	p, _ := ctx.Value(progressKey{}).(*progress)
	return p
}

// watchdog cancels an export's context with errStoreIdle once its
// progress has stood still for idle. It checks four times per idle, so
// it fires between idle and 1.25 idle after the last progress, and runs
// no goroutine between checks.
type watchdog struct {
	p      *progress
	idle   time.Duration
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	last    uint64
	since   time.Time
}

// start arms the watchdog; w must not move after it.
func (w *watchdog) start(p *progress, idle time.Duration, cancel context.CancelCauseFunc) {
	w.p, w.idle, w.cancel, w.since = p, idle, cancel, time.Now()
	w.mu.Lock()
	w.timer = time.AfterFunc(w.period(), w.check)
	w.mu.Unlock()
}

func (w *watchdog) period() time.Duration { return max(w.idle/4, time.Millisecond) }

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now := time.Now()
	if n := w.p.ticks.Load(); n != w.last || w.p.writing.Load() > 0 {
		w.last, w.since = n, now
	}
	if now.Sub(w.since) >= w.idle {
		w.cancel(errStoreIdle)
		return
	}
	w.timer.Reset(min(w.period(), w.idle-now.Sub(w.since)))
}

// stop ends the checks; a watchdog never started has nothing to stop.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// progressWriter marks the document's writes as progress.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	pw.p.writing.Add(1)
	n, err := pw.w.Write(b)
	pw.p.writing.Add(-1)
	pw.p.tick()
	return n, err
}

// clientWriter writes to the client under a write deadline renewed for
// every clientChunk, and remembers whether a deadline cut it.
type clientWriter struct {
	w     *trackingWriter
	rc    *http.ResponseController
	idle  time.Duration // <= 0: no idle deadline
	end   time.Time     // the Total deadline; zero: none
	timed bool          // a write failed on a deadline
}

// deadline is the write deadline for the next chunk.
func (c *clientWriter) deadline() time.Time {
	var d time.Time
	if c.idle > 0 {
		d = time.Now().Add(c.idle)
	}
	if !c.end.IsZero() && (d.IsZero() || c.end.Before(d)) {
		d = c.end
	}
	return d
}

func (c *clientWriter) arm() {
	if c.idle > 0 || !c.end.IsZero() {
		c.rc.SetWriteDeadline(c.deadline())
	}
}

func (c *clientWriter) failed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timed = true
	}
	return err
}

func (c *clientWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), clientChunk)
		c.arm()
		m, err := c.w.Write(p[:k])
		n += m
		if err != nil {
			return n, c.failed(err)
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom sends a spooled file chunk by chunk, each under its own
// deadline, keeping the sendfile path.
func (c *clientWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	for {
		c.arm()
		m, err := c.w.ReadFrom(io.LimitReader(src, clientChunk))
		n += m
		if err != nil {
			return n, c.failed(err)
		}
		if m == 0 {
			return n, nil
		}
	}
}

// flush pushes what net/http still buffers to the client, under the
// deadline, so that every byte of a body has been taken in by the
// kernel once it returns nil.
func (c *clientWriter) flush() error {
	if c.idle <= 0 && c.end.IsZero() {
		return nil // net/http flushes at the end of the response
	}
	c.arm()
	if err := c.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return c.failed(err)
	}
	return nil
}

// gerund turns a stage ("read agents") into words for "while ...":
// "reading agents".
func gerund(s Stage) string {
	verb, rest, _ := strings.Cut(string(s), " ")
	switch {
	case strings.HasSuffix(verb, "e") && verb != "be":
		verb = verb[:len(verb)-1] + "ing"
	default:
		verb += "ing"
	}
	if rest == "" {
		return verb
	}
	return verb + " " + rest
}
