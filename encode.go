package export

import (
	"bytes"
	"context"
	"io"
	"iter"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The document is written by hand rather than with encoding/json: the
// contract is JavaScript's JSON.stringify(doc, null, 2) byte for byte
// (which encoding/json does not produce: it escapes <, >, & and U+2028),
// and appending into one reused buffer keeps the cost per record to a few
// copies, with no reflection and no allocation.

// flushAt is the buffered size at which the writer hands bytes on. Large
// enough to amortise Write calls, small enough to be a rounding error in
// the memory an export holds.
const flushAt = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, flushAt+4<<10); return &b }}

// jsonWriter appends into a buffer and writes it out in large chunks. Its
// first write error sticks, so the encoder checks once per record.
type jsonWriter struct {
	ctx       context.Context // checked at each flush, so a store that ignores it still stops
	w         io.Writer
	buf       []byte
	n         int64
	err       error
	pipelined bool      // large sections are written on a second goroutine
	prog      *progress // told of each record read, for the handler's store deadline; may be nil
}

func newJSONWriter(ctx context.Context, w io.Writer) *jsonWriter {
	return &jsonWriter{ctx: ctx, w: w, buf: (*bufPool.Get().(*[]byte))[:0]}
}

// release returns the buffer to the pool; j must not be used after it.
func (j *jsonWriter) release() {
	if cap(j.buf) <= 4*flushAt { // a giant record grew it: let it go
		b := j.buf[:0]
		bufPool.Put(&b)
	}
	j.buf = nil
}

func (j *jsonWriter) flush() error {
	if j.err == nil {
		j.err = j.ctx.Err()
	}
	if j.err == nil && len(j.buf) > 0 {
		m, err := j.w.Write(j.buf)
		j.n += int64(m)
		if err == nil && m < len(j.buf) {
			err = io.ErrShortWrite
		}
		j.err = err
	}
	j.buf = j.buf[:0]
	return j.err
}

// step flushes when the buffer is full and reports the sticky error.
func (j *jsonWriter) step() error {
	if len(j.buf) >= flushAt {
		return j.flush()
	}
	return j.err
}

// encode writes the document for tx up to the end of workflows; added
// sections and end complete it. Section failures are returned as *Error
// with the section's stage.
func encode(ctx context.Context, j *jsonWriter, tx Tx, at time.Time, res *Result) error {
	u, err := tx.User(ctx)
	if err != nil {
		return stageError(StageUser, err)
	}
	j.prog.tick()
	b := append(j.buf, "{\n  \"exportedAt\": "...)
	b = appendTimeString(b, at)
	b = append(b, ",\n  \"version\": \""+Version+"\",\n  \"user\": {\n    \"id\": "...)
	b = appendString(b, u.ID)
	b = append(b, ",\n    \"email\": "...)
	b = appendString(b, u.Email)
	b = append(b, ",\n    \"name\": "...)
	b = appendNullString(b, u.Name)
	b = append(b, ",\n    \"plan\": "...)
	b = appendNullString(b, u.Plan)
	b = append(b, ",\n    \"role\": "...)
	b = appendString(b, u.Role)
	b = append(b, ",\n    \"referralCode\": "...)
	b = appendNullString(b, u.ReferralCode)
	b = append(b, ",\n    \"referralCredits\": "...)
	b = strconv.AppendInt(b, u.ReferralCredits, 10)
	j.buf = append(b, "\n  },\n  \"agents\": ["...)

	res.Agents, err = section(j, tx.Agents(ctx), StageAgents, func(b []byte, a Agent) []byte {
		b = append(b, "\n    {\n      \"id\": "...)
		b = appendString(b, a.ID)
		b = append(b, ",\n      \"name\": "...)
		b = appendString(b, a.Name)
		b = append(b, ",\n      \"model\": "...)
		b = appendString(b, a.Model)
		b = append(b, ",\n      \"status\": "...)
		b = appendString(b, a.Status)
		b = append(b, ",\n      \"createdAt\": "...)
		b = appendTimeString(b, a.CreatedAt)
		b = append(b, ",\n      \"updatedAt\": "...)
		b = appendTimeString(b, a.UpdatedAt)
		return append(b, "\n    }"...)
	})
	if err != nil {
		return err
	}
	j.buf = append(j.buf, ",\n  \"scheduledTasks\": ["...)
	res.ScheduledTasks, err = section(j, tx.ScheduledTasks(ctx), StageScheduledTasks, func(b []byte, t ScheduledTask) []byte {
		b = append(b, "\n    {\n      \"id\": "...)
		b = appendString(b, t.ID)
		b = append(b, ",\n      \"name\": "...)
		b = appendString(b, t.Name)
		b = append(b, ",\n      \"cronSchedule\": "...)
		b = appendString(b, t.CronSchedule)
		b = append(b, ",\n      \"enabled\": "...)
		b = strconv.AppendBool(b, t.Enabled)
		b = append(b, ",\n      \"createdAt\": "...)
		b = appendTimeString(b, t.CreatedAt)
		return append(b, "\n    }"...)
	})
	if err != nil {
		return err
	}
	j.buf = append(j.buf, ",\n  \"workflows\": ["...)
	res.Workflows, err = section(j, tx.Workflows(ctx), StageWorkflows, func(b []byte, w Workflow) []byte {
		b = append(b, "\n    {\n      \"id\": "...)
		b = appendString(b, w.ID)
		b = append(b, ",\n      \"name\": "...)
		b = appendString(b, w.Name)
		b = append(b, ",\n      \"enabled\": "...)
		b = strconv.AppendBool(b, w.Enabled)
		b = append(b, ",\n      \"createdAt\": "...)
		b = appendTimeString(b, w.CreatedAt)
		return append(b, "\n    }"...)
	})
	if err != nil {
		return err
	}
	return nil
}

// end closes the document and writes out what is buffered.
func end(j *jsonWriter) error {
	j.buf = append(j.buf, "\n}"...)
	if err := j.flush(); err != nil {
		return stageError(StageWrite, err)
	}
	return nil
}

// section writes the records of one array, separated by commas, and closes
// it: "[]" when empty, as JSON.stringify does, otherwise "\n  ]". A large
// section is written on a second goroutine while the store reads on this
// one (see pipe).
func section[T any](j *jsonWriter, seq iter.Seq2[T, error], stage Stage, record func([]byte, T) []byte) (int, error) {
	p := &pipe[T]{j: j, record: record, allow: j.pipelined}
	closed := false
	defer func() {
		if !closed {
			// The store's iterator panicked: end the writing goroutine
			// before the panic goes on up.
			p.close(false)
		}
	}()
	for rec, err := range seq {
		if err != nil {
			closed = true
			p.close(false) // the store's error is the one to report
			return p.n, stageError(stage, err)
		}
		j.prog.tick()
		if !p.add(rec) {
			break // writing failed: stop reading; close says why
		}
	}
	closed = true
	if err := p.close(true); err != nil {
		return p.n, stageError(StageWrite, err)
	}
	if p.n > 0 {
		j.buf = append(j.buf, "\n  ]"...)
	} else {
		j.buf = append(j.buf, ']')
	}
	return p.n, nil
}

// StoreExporter is the Exporter over a Store. It streams: records go from
// the store's iterators into w through one small buffer (and, for a large
// section, a few batches of records handed to a second goroutine that
// writes while the store reads), so the memory an export holds does not
// depend on the size of the account.
type StoreExporter struct {
	store    Store
	sections []Section // added by the host, in order
}

var _ Exporter = (*StoreExporter)(nil)

// NewExporter returns an Exporter that reads from store.
func NewExporter(store Store) *StoreExporter { return &StoreExporter{store: store} }

// Export writes the document for req.UserID, stamped req.ExportedAt.
func (e *StoreExporter) Export(ctx context.Context, w io.Writer, req Request) (Result, error) {
	var res Result
	j := newJSONWriter(ctx, w)
	j.pipelined = pipelined()
	j.prog = progressFrom(ctx)
	defer j.release()
	encoded := false
	err := e.store.View(ctx, req.UserID, func(tx Tx) error {
		j.prog.tick() // the view is open
		err := encode(ctx, j, tx, req.ExportedAt, &res)
		if err == nil {
			// Separate from encode, whose Tx would otherwise escape to
			// the heap for Document.WriteTo too (an allocation per call).
			err = addedSections(ctx, j, tx, e.sections, &res)
		}
		if err == nil {
			err = end(j)
		}
		encoded = err == nil
		return err
	})
	res.Bytes = j.n
	switch {
	case err == nil:
		return res, nil
	case encoded:
		// The document was written, but releasing the view failed (an
		// SQL commit): the store could not vouch for what it gave.
		return res, stageError(StageClose, err)
	default:
		return res, stageError(StageOpen, err)
	}
}

// WriteTo writes d in the format of the contract. d.Version is not
// consulted: the writer only knows how to write Version.
func (d *Document) WriteTo(w io.Writer) (int64, error) {
	j := newJSONWriter(context.Background(), w)
	defer j.release()
	var res Result
	err := encode(context.Background(), j, docTx{d}, d.ExportedAt, &res)
	if err == nil {
		err = end(j)
	}
	return j.n, err
}

// Bytes returns d in the format of the contract.
func (d *Document) Bytes() []byte {
	var buf bytes.Buffer
	d.WriteTo(&buf) // a bytes.Buffer never fails a write
	return buf.Bytes()
}

// ReadDocument reads one user's whole export into memory. It is meant for
// small accounts and tests; serve large ones with an Exporter.
func ReadDocument(ctx context.Context, store Store, userID string, exportedAt time.Time) (*Document, error) {
	d := &Document{ExportedAt: exportedAt, Version: Version}
	err := store.View(ctx, userID, func(tx Tx) error {
		u, err := tx.User(ctx)
		if err != nil {
			return stageError(StageUser, err)
		}
		d.User = u
		if d.Agents, err = collect(tx.Agents(ctx), StageAgents); err != nil {
			return err
		}
		if d.ScheduledTasks, err = collect(tx.ScheduledTasks(ctx), StageScheduledTasks); err != nil {
			return err
		}
		d.Workflows, err = collect(tx.Workflows(ctx), StageWorkflows)
		return err
	})
	if err != nil {
		return nil, stageError(StageOpen, err)
	}
	return d, nil
}

func collect[T any](seq iter.Seq2[T, error], stage Stage) ([]T, error) {
	out := []T{}
	for v, err := range seq {
		if err != nil {
			return nil, stageError(stage, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// docTx serves a Document through the Tx interface, so that a document in
// memory and a streamed export share one encoder.
type docTx struct{ d *Document }

func (t docTx) User(context.Context) (User, error) { return t.d.User, nil }
func (t docTx) Agents(context.Context) iter.Seq2[Agent, error] {
	return sliceSeq(t.d.Agents)
}
func (t docTx) ScheduledTasks(context.Context) iter.Seq2[ScheduledTask, error] {
	return sliceSeq(t.d.ScheduledTasks)
}
func (t docTx) Workflows(context.Context) iter.Seq2[Workflow, error] {
	return sliceSeq(t.d.Workflows)
}

func sliceSeq[T any](s []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, v := range slices.All(s) {
			if !yield(v, nil) {
				return
			}
		}
	}
}

// FormatTime returns t in the contract's timestamp form, the one
// JavaScript's Date.prototype.toISOString prints: UTC, exactly three
// fractional digits (truncated, not rounded), and Z. Years outside
// 0000-9999 get a sign and six digits, as in JavaScript.
func FormatTime(t time.Time) string { return string(appendTime(nil, t)) }

func appendTimeString(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = appendTime(b, t)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	// From the Unix time rather than t.Date and t.Clock, which each redo
	// the calendar arithmetic: a large export formats a timestamp or two
	// per record, and pprof had this at a tenth of the encoder's time.
	sec := t.Unix()
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	year, month, day := civilFromDays(days)
	switch {
	case year < 0:
		b = append(b, '-')
		b = appendDigits(b, -year, 6)
	case year > 9999:
		b = append(b, '+')
		b = appendDigits(b, year, 6)
	default:
		b = append2(b, year/100)
		b = append2(b, year%100)
	}
	b = append(b, '-')
	b = append2(b, month)
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, int(rem/3600))
	b = append(b, ':')
	b = append2(b, int(rem/60%60))
	b = append(b, ':')
	b = append2(b, int(rem%60))
	b = append(b, '.')
	ms := t.Nanosecond() / 1e6
	b = append(b, byte('0'+ms/100))
	b = append2(b, ms%100)
	return append(b, 'Z')
}

// civilFromDays returns the proleptic Gregorian date of a day counted
// from 1970-01-01 (Howard Hinnant's civil_from_days).
func civilFromDays(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if mp >= 10 {
		month = int(mp - 9)
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// append2 appends v, in [0, 99], as two digits.
func append2(b []byte, v int) []byte { return append(b, twoDigits[2*v], twoDigits[2*v+1]) }

// appendDigits appends v in decimal, zero-padded to at least width digits.
func appendDigits(b []byte, v, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 || width > 1 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	tmp[i] = byte('0' + v)
	return append(b, tmp[i:]...)
}

func appendNullString(b []byte, s NullString) []byte {
	if !s.Valid {
		return append(b, "null"...)
	}
	return appendString(b, s.String)
}

const hexDigits = "0123456789abcdef"

// safe[c] is true for the ASCII bytes JSON.stringify writes as themselves.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string the way JSON.stringify writes
// it: only '"', '\\' and control characters are escaped, with the short
// forms \b \t \n \f \r where they exist and lowercase \u00xx otherwise.
// Everything else, including <, >, &, DEL and U+2028/U+2029, is written as
// itself. Bytes that are not valid UTF-8 become U+FFFD, one per byte, as
// encoding/json reads them.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\t':
				b = append(b, '\\', 't')
			case '\n':
				b = append(b, '\\', 'n')
			case '\f':
				b = append(b, '\\', 'f')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
