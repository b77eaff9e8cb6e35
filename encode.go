package export

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strconv"
	"sync"
	"time"
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

// addedSections writes the registered sections, each ",\n  \"name\": [...]".
func addedSections(ctx context.Context, j *jsonWriter, tx Tx, sections []Section, res *Result) error {
	if len(sections) > 0 {
		res.Sections = make(map[string]int, len(sections))
	}
	for _, s := range sections {
		j.buf = append(j.buf, ",\n  \""...)
		j.buf = append(j.buf, s.Name...)
		j.buf = append(j.buf, "\": ["...)
		stage := SectionStage(s.Name)
		n := 0
		for rec, err := range s.Read(ctx, tx) {
			if err != nil {
				return stageError(stage, err)
			}
			if n > 0 {
				j.buf = append(j.buf, ',')
			}
			if j.buf, err = appendRecord(j.buf, rec); err != nil {
				return stageError(stage, err)
			}
			n++
			j.prog.tick()
			res.Sections[s.Name] = n // so far: a failure's event says how far it got
			if err := j.step(); err != nil {
				return stageError(StageWrite, err)
			}
		}
		if n > 0 {
			j.buf = append(j.buf, "\n  ]"...)
		} else {
			j.buf = append(j.buf, ']')
		}
		res.Sections[s.Name] = n
	}
	return nil
}

// appendRecord writes one object as JSON.stringify(…, null, 2) does at
// the depth of a section's records.
func appendRecord(b []byte, r Record) ([]byte, error) {
	if len(r) == 0 {
		return append(b, "\n    {}"...), nil
	}
	b = append(b, "\n    {"...)
	for i, f := range r {
		for _, g := range r[:i] {
			if g.Key == f.Key {
				return b, fmt.Errorf("field %q appears twice in one record", f.Key)
			}
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n      "...)
		b = appendString(b, f.Key)
		b = append(b, ": "...)
		var err error
		if b, err = appendValue(b, f.Value); err != nil {
			return b, fmt.Errorf("field %q: %w", f.Key, err)
		}
	}
	return append(b, "\n    }"...), nil
}
