package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrNoSession is what a resolver returns (possibly wrapped) when the
// request has no signed-in user. The handler answers 401. Any other
// resolver error is a failure of the resolver, answered with 500.
var ErrNoSession = errors.New("export: no session")

// DefaultFilenamePrefix starts the name of every downloaded file unless
// the host sets its own with WithFilenamePrefix.
const DefaultFilenamePrefix = "agentbot-export"

// DefaultSpoolThreshold is how much of a document is kept in memory
// before the rest goes to a temporary file.
const DefaultSpoolThreshold = 1 << 20

// Handler serves GET /api/export for the signed-in user. Create it with
// NewHandler; it is safe for concurrent use.
type Handler struct {
	exporter Exporter
	resolve  func(*http.Request) (string, error)

	prefix     string
	now        func() time.Time
	logger     *slog.Logger
	onError    func(*http.Request, error)
	onEvent    func(*http.Request, Event)
	detailed   bool
	limiter    Limiter
	spoolLimit int
	spoolDir   string
	streaming  bool
	timeouts   Timeouts
	encoders   []encoder // content codings, in the server's order of preference
	gzipSet    bool      // WithEncoder("gzip", ...) or WithoutCompression: no built-in gzip
}

var _ http.Handler = (*Handler)(nil)

// Option configures a Handler.
type Option func(*Handler)

// WithFilenamePrefix sets the start of the downloaded file's name
// (default "agentbot-export"). Characters outside A-Z a-z 0-9 _ - are
// replaced by _, as in the user ID part; "" keeps the default.
func WithFilenamePrefix(prefix string) Option { return func(h *Handler) { h.prefix = prefix } }

// WithClock sets the source of exportedAt (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// The three ways to hear from the handler, by purpose:
//
//   - WithLogger: operations. One log line per request (the Event's
//     fields, at Error level for failed and aborted exports), to read or
//     ship with the rest of your logs. On by default, to slog.Default().
//   - WithErrorHook: error reporting. The full error of each export that
//     failed (500) or aborted mid-stream, at once, for an error tracker
//     (Sentry...); not called for 401, 405 or 429, which are not faults.
//   - WithAuditHook: the record of data access. One Event per request,
//     whatever its outcome, after the response is done: who, the outcome,
//     what was sent. For an audit log or metrics, typed rather than text.
//
// They are independent: set any of them; none changes the response.

// WithLogger sets where the log line of each request goes (see above);
// nil means slog.Default().
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithErrorHook calls fn with the full error of every failed export (each
// 500 and 503, and a streamed export aborted after its first byte), for
// error reporting. The response itself is fixed by the format and is not
// the hook's to write.
func WithErrorHook(fn func(*http.Request, error)) Option { return func(h *Handler) { h.onError = fn } }

// WithAuditHook calls fn once per request to the handler, whatever its
// outcome, after the response is done, with the request's Event.
func WithAuditHook(fn func(*http.Request, Event)) Option { return func(h *Handler) { h.onEvent = fn } }

// WithDetailedErrors puts the full error text into 500 responses. It can
// leak SQL, paths and host names to clients: for development only.
func WithDetailedErrors(on bool) Option { return func(h *Handler) { h.detailed = on } }

// WithLimiter replaces the default limiter (NewLimiter(Limits{}));
// nil keeps the default. To lift the limits use
// NewLimiter(Limits{PerUser: -1, Concurrent: -1}).
func WithLimiter(l Limiter) Option { return func(h *Handler) { h.limiter = l } }

// WithSpool sets how many bytes of a document are held in memory
// (threshold, default 1 MiB; values <= 0 keep the default) and the
// directory for the temporary file beyond that ("" means os.TempDir).
// WithSpool(1, dir) sends every document to a file in dir (to keep
// documents out of the heap, or on an encrypted disk of their own).
//
// Under WithStreaming, a GET is not spooled, so WithSpool does not apply
// to it; HEAD still is, though only counted and hashed, never stored.
func WithSpool(threshold int, dir string) Option {
	return func(h *Handler) { h.spoolLimit, h.spoolDir = threshold, dir }
}

// WithStreaming sends the document as it is produced instead of spooling
// it first: the first byte leaves early and nothing is held, but the
// response has no Content-Length and no Repr-Digest (both need the whole
// document before the headers), and a failure after the first byte
// aborts the connection (the client sees a broken transfer, never a
// well-formed but incomplete file) instead of answering 500.
func WithStreaming(on bool) Option { return func(h *Handler) { h.streaming = on } }

// NewHandler returns the export handler. resolve returns the signed-in
// user's ID: ErrNoSession or "" when there is none. The user ID is taken
// from resolve only, never from the request's URL, headers or body.
//
// NewHandler panics if exporter or resolve is nil, as http.Handle does
// with a nil handler: that is a wiring mistake, not a runtime condition.
func NewHandler(exporter Exporter, resolve func(*http.Request) (userID string, err error), opts ...Option) *Handler {
	if exporter == nil || resolve == nil {
		panic("export: NewHandler needs an Exporter and a resolver")
	}
	h := &Handler{exporter: exporter, resolve: resolve}
	for _, opt := range opts {
		opt(h)
	}
	if h.prefix == "" {
		h.prefix = DefaultFilenamePrefix
	}
	h.prefix = sanitize(h.prefix, -1)
	if h.now == nil {
		h.now = time.Now
	}
	if h.limiter == nil {
		h.limiter = NewLimiter(Limits{})
	}
	if h.spoolLimit <= 0 {
		h.spoolLimit = DefaultSpoolThreshold
	}
	h.timeouts = h.timeouts.WithDefaults()
	if !h.gzipSet {
		h.encoders = append(h.encoders, encoder{name: "gzip", newWriter: newGzipWriter})
	}
	return h
}

// Event describes one request to the handler, for audit.
type Event struct {
	UserID  string // "" when there was no session
	Outcome Outcome
	Status  int
	// Bytes is the size of the document produced: for a HEAD, the size a
	// GET would have sent (though nothing was); for a failure, how far it
	// got. It is the document's own size, before any content coding.
	Bytes int64
	// SentBytes is the size of the body after content coding (what
	// Content-Length counts): for a 200, what was sent; for a HEAD, what
	// a GET would have sent; 0 when no document left (an error answer).
	// Equal to Bytes under identity.
	SentBytes int64
	// Encoding is the content coding negotiated for the document: "gzip",
	// one registered with WithEncoder, or "identity"; "" when the request
	// ended before an export began (405, 401, 429).
	Encoding       string
	Agents         int
	ScheduledTasks int
	Workflows      int
	Sections       map[string]int // records per section added by the host
	Duration       time.Duration
	Err            error // the full error; never shown to the client
	// JobID is the export job the event is about (package jobs: its
	// transitions and downloads); "" for the synchronous endpoint.
	JobID string
}

// Outcome sums up how a request ended. Its values are identifiers
// (lower case, underscores), for logs and metrics labels.
type Outcome string

// The outcomes of Event.
const (
	OutcomeExported         Outcome = "exported"
	OutcomeUnauthorized     Outcome = "unauthorized"
	OutcomeMethodNotAllowed Outcome = "method_not_allowed"
	OutcomeLimited          Outcome = "limited"
	OutcomeCanceled         Outcome = "canceled" // the client went away
	OutcomeFailed           Outcome = "failed"
	OutcomeAborted          Outcome = "aborted" // streaming: failed after the first byte
	OutcomeStalled          Outcome = "stalled" // the client took in nothing for Timeouts.ClientIdle
	OutcomeTimeout          Outcome = "timeout" // the store yielded nothing for Timeouts.StoreIdle, or Timeouts.Total ran out
)

// ServeHTTP answers one export request. A panic below it (in the resolver,
// the limiter, the store) becomes a 500 while nothing has been sent, and an
// aborted connection after that; either way the server keeps serving.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ev := Event{Status: http.StatusOK}
	rw := &trackingWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler || rw.wroteHeader {
				if ev.Outcome != OutcomeAborted && ev.Outcome != OutcomeStalled && ev.Outcome != OutcomeTimeout {
					ev.Outcome, ev.Err = OutcomeAborted, panicError(p)
				}
				h.finish(r, &ev, start)
				panic(http.ErrAbortHandler)
			}
			h.fail(rw, r, &ev, &Error{Stage: StagePanic, Err: panicError(p)})
		}
		h.finish(r, &ev, start)
	}()
	h.serve(rw, r, &ev)
}

func (h *Handler) serve(w *trackingWriter, r *http.Request, ev *Event) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Every answer, errors included, for a cache between the handler and
	// the client: the 200's body depends on Accept-Encoding.
	hdr.Add("Vary", "Accept-Encoding")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		ev.Outcome = OutcomeMethodNotAllowed
		h.writeError(w, r, ev, http.StatusMethodNotAllowed, "")
		return
	}
	userID, err := h.resolve(r)
	if err != nil && !errors.Is(err, ErrNoSession) {
		h.fail(w, r, ev, &Error{Stage: StageSession, Err: err})
		return
	}
	if userID == "" || err != nil {
		ev.Outcome = OutcomeUnauthorized
		h.writeError(w, r, ev, http.StatusUnauthorized, "")
		return
	}
	ev.UserID = userID
	discardBody(r)

	release, err := h.limiter.Acquire(r.Context(), userID)
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			secs := int64(math.Ceil(le.RetryAfter.Seconds()))
			hdr.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
			ev.Outcome, ev.Err = OutcomeLimited, err
			h.writeError(w, r, ev, http.StatusTooManyRequests, "")
			return
		}
		h.fail(w, r, ev, &Error{Stage: StageLimit, Err: err})
		return
	}
	// Released once, on return or earlier: a streamed export that fails
	// gives its slot back before it cuts the connection, or a client that
	// retries at once would find its own dead export still holding it.
	released := false
	releaseOnce := func() {
		if !released {
			released = true
			release()
		}
	}
	defer releaseOnce()

	ex := h.begin(w, r)
	defer ex.end()
	req := Request{UserID: userID, ExportedAt: h.now()}
	enc := negotiate(r, h.encoders)
	ev.Encoding = "identity"
	if enc != nil {
		ev.Encoding = enc.name
	}
	if h.streaming && r.Method == http.MethodGet {
		h.serveStreaming(w, r, ev, ex, req, enc, releaseOnce)
		return
	}
	h.serveSpooled(w, r, ev, ex, req, enc)
}

// coder is the writing side of an export: the document goes through
// Write (counted), into the content coding if there is one, to dst.
type coder struct {
	doc  int64 // bytes of the document written
	zw   io.WriteCloser
	gate gate
}

// newCoder starts a coder writing to dst, coded by enc (nil: identity).
func newCoder(dst io.Writer, enc *encoder) (*coder, error) {
	c := &coder{gate: gate{w: dst}}
	if enc != nil {
		zw, err := enc.newWriter(&c.gate)
		if err == nil && zw == nil {
			err = errors.New("export: the " + enc.name + " encoder returned no writer")
		}
		if err != nil {
			return nil, &Error{Stage: StageCompress, Err: err}
		}
		c.zw = zw
	}
	return c, nil
}

func (c *coder) Write(p []byte) (int, error) {
	w := io.Writer(&c.gate)
	if c.zw != nil {
		w = c.zw
	}
	n, err := w.Write(p)
	c.doc += int64(n)
	return n, err // the Exporter names the stage
}

// finish ends the coded stream (its last bytes go to dst) once the whole
// document is written.
func (c *coder) finish() error {
	if c.zw == nil {
		return nil
	}
	zw := c.zw
	c.zw = nil
	if err := zw.Close(); err != nil {
		if c.gate.err != nil { // dst failed, not the coding
			return stageError(StageWrite, err)
		}
		return &Error{Stage: StageCompress, Err: err}
	}
	return nil
}

// abandon releases the coding's writer after a failure without letting
// its end reach dst: a streamed response must not end well-formed.
func (c *coder) abandon() {
	c.gate.closed = true
	if c.zw != nil {
		c.zw.Close()
		c.zw = nil
	}
}

// gate passes writes through to w until closed, then drops them, and
// counts what went through.
type gate struct {
	w      io.Writer
	n      int64
	err    error // w's first error
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	if g.closed {
		return len(p), nil
	}
	n, err := g.w.Write(p)
	g.n += int64(n)
	if err != nil && g.err == nil {
		g.err = err
	}
	return n, err
}

// run is one export's deadlines: its context, canceled with errStoreIdle
// or errTotal, and the writer to the client. One allocation holds it all.
type run struct {
	ctx    context.Context
	prog   progress
	dog    watchdog
	client clientWriter
	// managed: the handler sets the connection's deadlines itself (a
	// client or total deadline is on).
	managed bool
	cancel  context.CancelCauseFunc
	stopEnd context.CancelFunc // the Total deadline's; nil without one
}

// begin arms the export's deadlines (see Timeouts).
func (h *Handler) begin(w *trackingWriter, r *http.Request) *run {
	t := h.timeouts
	ex := &run{}
	ex.ctx, ex.cancel = context.WithCancelCause(r.Context())
	var end time.Time
	if t.Total > 0 {
		end = time.Now().Add(t.Total)
		ex.ctx, ex.stopEnd = context.WithDeadlineCause(ex.ctx, end, errTotal)
	}
	if t.StoreIdle > 0 {
		ex.ctx = context.WithValue(ex.ctx, progressKey{}, &ex.prog)
		ex.dog.start(&ex.prog, t.StoreIdle, ex.cancel)
	}
	ex.client = clientWriter{w: w, rc: http.NewResponseController(w), idle: t.ClientIdle, end: end}
	ex.managed = t.ClientIdle > 0 || !end.IsZero()
	if ex.managed {
		// The export's deadlines replace the server's WriteTimeout, meant
		// for ordinary pages: each write of the body sets its own, and
		// until the first one none holds, so that an answer after a long
		// wait for the store (a 503) still reaches the client. net/http
		// clears the write deadline after each response, so the last one
		// set here bounds only the response's final bytes.
		//
		// A ResponseWriter that cannot take deadlines (a middleware's
		// wrapper without Unwrap, a recorder) says so once; its writes
		// then go without.
		if errors.Is(ex.client.rc.SetWriteDeadline(time.Time{}), http.ErrNotSupported) {
			ex.client.idle, ex.client.end = -1, time.Time{}
		}
	}
	return ex
}

func (ex *run) end() {
	ex.dog.stop()
	if ex.stopEnd != nil {
		ex.stopEnd()
	}
	ex.cancel(nil)
}

// deadlineCause reports which of the export's own deadlines ended it, if
// one did (and not the client, by going away).
func (ex *run) deadlineCause(r *http.Request) error {
	if r.Context().Err() != nil {
		return nil
	}
	if cause := context.Cause(ex.ctx); cause == errStoreIdle || cause == errTotal {
		return cause
	}
	return nil
}

// cutOutcome names why sending to the client failed: the client deadline,
// the total one, or something else (a broken connection).
func (ex *run) cutOutcome() Outcome {
	switch {
	case !ex.client.timed:
		return OutcomeAborted
	case !ex.client.end.IsZero() && !time.Now().Before(ex.client.end):
		return OutcomeTimeout
	}
	return OutcomeStalled
}

// maxDiscardedBody is how much of a request body the handler reads and
// throws away; see discardBody.
const maxDiscardedBody = 64 << 10

// discardBody reads the body of a request to its end, when it is small.
// The export never uses a body, but net/http notices a client hanging up
// (and cancels the request's context, which stops the export) only once
// the body has been read to its end: an unread body, even a few bytes on a
// GET, would let an abandoned export run to completion. It runs after the
// resolver, so only a signed-in user's body is read.
func discardBody(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	io.CopyN(io.Discard, r.Body, maxDiscardedBody+1)
}

// serveSpooled produces the whole document before the status line, so a
// failure is a clean 500 and the 200 carries Content-Length and
// Repr-Digest (RFC 9530: the SHA-256 of the body, which a user can check
// a downloaded file against). HEAD only counts and hashes the bytes.
func (h *Handler) serveSpooled(w *trackingWriter, r *http.Request, ev *Event, ex *run, req Request, enc *encoder) {
	// Content-Length and Repr-Digest are of the representation sent (RFC
	// 9530), and HEAD codes as GET: a GET codes on the spool's side
	// (codedSpool), a HEAD in line, only counting and hashing the bytes.
	sp := &spool{dir: h.spoolDir, limit: h.spoolLimit, countOnly: r.Method == http.MethodHead, digest: true}
	inline := enc
	if enc != nil && r.Method != http.MethodHead {
		var err error
		if sp, err = codedSpool(h.spoolDir, h.spoolLimit, enc); err != nil {
			h.fail(w, r, ev, err)
			return
		}
		inline = nil
	}
	defer sp.Close()
	c, err := newCoder(sp, inline)
	if err != nil {
		h.fail(w, r, ev, err)
		return
	}
	defer c.abandon()
	res, err := h.exporter.Export(ex.ctx, progressWriter{c, &ex.prog}, req)
	if err == nil {
		err = c.finish()
	}
	if err == nil {
		// Waiting for the compressor to finish is the writing side's
		// progress, not a store that stands still.
		ex.prog.writing.Add(1)
		err = sp.finish(ex.ctx)
		ex.prog.writing.Add(-1)
	}
	ev.record(res)
	// The handler's counts, not the Exporter's word: a host's Exporter
	// that misreports must not produce a wrong Content-Length.
	ev.Bytes = c.doc
	if err != nil {
		if cause := ex.deadlineCause(r); cause != nil {
			h.timedOut(w, r, ev, err, cause)
			return
		}
		h.fail(w, r, ev, err)
		return
	}
	h.setSuccessHeaders(w, req, enc)
	rep := sp.rep()
	w.Header().Set("Content-Length", strconv.FormatInt(rep.size, 10))
	w.Header().Set("Repr-Digest", rep.reprDigest())
	w.WriteHeader(http.StatusOK)
	ev.Outcome = OutcomeExported
	if r.Method == http.MethodHead {
		ev.SentBytes = rep.size
		return
	}
	ev.SentBytes, err = sp.WriteTo(&ex.client)
	if err == nil {
		err = ex.client.flush()
	}
	if err != nil {
		// The status is sent; the connection is broken or closing, and
		// Content-Length tells the client its copy is short.
		ev.Outcome, ev.Err = ex.cutOutcome(), &Error{Stage: StageWrite, Err: err}
	}
}

// serveStreaming sends the 200 with the first bytes of the document.
// A content coding's writer sits between the document and the client, so
// the coded bytes leave as they are made; after a late failure its end is
// never written (see coder.abandon), so a coded body is cut short too.
func (h *Handler) serveStreaming(w *trackingWriter, r *http.Request, ev *Event, ex *run, req Request, enc *encoder, release func()) {
	sw := &firstWrite{w: &ex.client, start: func() { h.setSuccessHeaders(w, req, enc); w.WriteHeader(http.StatusOK) }}
	c, err := newCoder(sw, enc)
	if err != nil {
		h.fail(w, r, ev, err)
		return
	}
	defer c.abandon()
	res, err := h.exporter.Export(ex.ctx, progressWriter{c, &ex.prog}, req)
	if err == nil {
		err = c.finish()
	}
	ev.record(res)
	ev.Bytes, ev.SentBytes = c.doc, c.gate.n
	if err == nil && w.wroteHeader {
		err = ex.client.flush()
	}
	if err == nil {
		ev.Outcome = OutcomeExported
		return
	}
	cause := ex.deadlineCause(r)
	if !w.wroteHeader {
		if cause != nil {
			h.timedOut(w, r, ev, err, cause)
			return
		}
		h.fail(w, r, ev, err)
		return
	}
	// Part of a 200 is out. Ending the handler normally would complete a
	// well-formed (chunked) response that is missing data; aborting makes
	// the server cut the connection so the client sees the failure.
	ev.Outcome, ev.Err, ev.Status = ex.cutOutcome(), err, http.StatusOK
	if ev.Outcome == OutcomeAborted && cause != nil {
		ev.Outcome, ev.Err = OutcomeTimeout, fmt.Errorf("%w: %w", cause, err)
	}
	h.logFailure(r, ev.Err)
	c.abandon()
	release()
	cutConnection(w)
	panic(http.ErrAbortHandler)
}

// cutConnection closes an HTTP/1 connection under a response that must
// not end well. The panic that follows does the same through net/http,
// but a recoverer middleware that swallows every panic would let the
// server finish the chunked body as if it were complete; once the
// connection is closed here, no middleware can. HTTP/2 has no hijacking:
// there the panic alone resets the stream.
func cutConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func (h *Handler) setSuccessHeaders(w http.ResponseWriter, req Request, enc *encoder) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Disposition", `attachment; filename="`+Filename(h.prefix, req.UserID, req.ExportedAt)+`"`)
	if enc != nil {
		hdr.Set("Content-Encoding", enc.name)
	}
}

// Filename returns the name of the downloaded file:
// <prefix>-<id8>-<YYYY-MM-DD>.json, where id8 is the first 8 code points
// of userID and the date is exportedAt's in UTC. Every character outside
// A-Z a-z 0-9 _ - in prefix and id8 is replaced by _, so that no user ID
// can change the meaning of the header that carries the name.
func Filename(prefix, userID string, exportedAt time.Time) string {
	return sanitize(prefix, -1) + "-" + sanitize(userID, 8) + "-" + exportedAt.UTC().Format(time.DateOnly) + ".json"
}

// sanitize keeps the first n code points of s (all when n < 0), each
// outside A-Z a-z 0-9 _ - replaced by _. An invalid UTF-8 byte counts as
// one code point.
func sanitize(s string, n int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && n != 0; n-- {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			b = append(b, c)
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b = append(b, '_')
		i += size
	}
	return string(b)
}

// fail answers a failed export: 401 for a user who no longer exists, 500
// naming the failed stage otherwise.
func (h *Handler) fail(w *trackingWriter, r *http.Request, ev *Event, err error) {
	ev.Err = err
	if errors.Is(err, ErrUserNotFound) {
		ev.Outcome = OutcomeUnauthorized
		h.writeError(w, r, ev, http.StatusUnauthorized, "")
		return
	}
	ev.Outcome = OutcomeFailed
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		ev.Outcome = OutcomeCanceled
	}
	h.logFailure(r, err)
	if w.wroteHeader {
		return // only possible after a panic late in a response
	}
	stage := StagePanic
	var e *Error
	if errors.As(err, &e) {
		stage = e.Stage
	}
	msg := "could not " + string(stage)
	if h.detailed {
		msg = err.Error()
	}
	h.writeError(w, r, ev, http.StatusInternalServerError, msg)
}

// timedOut answers an export that one of its deadlines (cause) canceled
// before anything was sent: 503 with Retry-After, naming the step the
// store was at.
func (h *Handler) timedOut(w *trackingWriter, r *http.Request, ev *Event, err, cause error) {
	ev.Outcome, ev.Err = OutcomeTimeout, fmt.Errorf("%w: %w", cause, err)
	h.logFailure(r, ev.Err)
	if w.wroteHeader {
		return
	}
	stage := StagePanic
	var e *Error
	if errors.As(err, &e) {
		stage = e.Stage
	}
	msg := "the database did not answer while " + gerund(stage)
	if cause == errTotal {
		msg = "the export ran out of time while " + gerund(stage)
	}
	if h.detailed {
		msg = ev.Err.Error()
	}
	secs := int64(math.Ceil(h.timeouts.RetryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	h.writeError(w, r, ev, http.StatusServiceUnavailable, msg)
}

func (h *Handler) logFailure(r *http.Request, err error) {
	if h.onError != nil {
		h.onError(r, err)
	}
}

// writeError sends a JSON error body: {"error":"<status text>"} plus a
// "message" for 500s and 503s.
func (h *Handler) writeError(w *trackingWriter, r *http.Request, ev *Event, status int, message string) {
	ev.Status = status
	WriteError(w, r, status, message)
}

// WriteError answers r with the contract's error: status, a JSON body
// {"error":"<status text>"} (for 500 and 503, "Export failed") with
// "message" when message is not "", Content-Type application/json,
// Cache-Control no-store and nosniff, and no body for a HEAD. It drops a
// Content-Disposition or Content-Encoding set before. Package jobs
// answers its errors with it, so that both APIs fail alike.
func WriteError(w http.ResponseWriter, r *http.Request, status int, message string) {
	b := append(make([]byte, 0, 96), `{"error":`...)
	text := http.StatusText(status)
	if status == http.StatusInternalServerError || status == http.StatusServiceUnavailable {
		text = "Export failed"
	}
	b = appendString(b, text)
	if message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, message)
	}
	b = append(b, '}')
	hdr := w.Header()
	hdr.Del("Content-Disposition")
	hdr.Del("Content-Encoding") // error bodies are never coded
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

func (h *Handler) finish(r *http.Request, ev *Event, start time.Time) {
	ev.Duration = time.Since(start)
	if h.onEvent != nil {
		h.onEvent(r, *ev)
	}
	logger := h.logger
	if logger == nil {
		logger = slog.Default()
	}
	level := slog.LevelInfo
	switch ev.Outcome {
	case OutcomeFailed, OutcomeAborted, OutcomeTimeout:
		level = slog.LevelError
	case OutcomeStalled:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("user_id", ev.UserID),
		slog.String("outcome", string(ev.Outcome)),
		slog.Int("status", ev.Status),
		slog.Int64("bytes", ev.Bytes),
		slog.Int64("sent_bytes", ev.SentBytes),
		slog.String("encoding", ev.Encoding),
		slog.Int("agents", ev.Agents),
		slog.Int("scheduled_tasks", ev.ScheduledTasks),
		slog.Int("workflows", ev.Workflows),
		slog.Duration("duration", ev.Duration),
	}
	if len(ev.Sections) > 0 {
		names := slices.Sorted(maps.Keys(ev.Sections))
		counts := make([]any, 0, len(names))
		for _, name := range names {
			counts = append(counts, slog.Int(name, ev.Sections[name]))
		}
		attrs = append(attrs, slog.Group("sections", counts...))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	logger.LogAttrs(r.Context(), level, "export", attrs...)
}

func (ev *Event) record(res Result) {
	ev.Bytes = res.Bytes // the handler then puts its own count
	ev.Agents, ev.ScheduledTasks, ev.Workflows = res.Agents, res.ScheduledTasks, res.Workflows
	ev.Sections = res.Sections
}

func panicError(p any) error {
	if err, ok := p.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", p)
}

// trackingWriter remembers whether the status line has been written.
type trackingWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *trackingWriter) WriteHeader(code int) {
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps the underlying writer's sendfile path for spooled files.
func (w *trackingWriter) ReadFrom(src io.Reader) (int64, error) {
	w.wroteHeader = true
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(w.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// firstWrite calls start before its first write goes through.
type firstWrite struct {
	w       io.Writer
	start   func()
	started bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.start()
	}
	return f.w.Write(p)
}
