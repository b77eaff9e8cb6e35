package export

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"time"
)

// Section is a part of the document that the host adds: its own data
// about the user (notifications, files, API key metadata...), written
// after workflows under Name as an array of objects, in the order Read
// yields them. Added sections keep the format at 1.0: consumers ignore
// keys they do not know.
//
// Read is called inside the store's View, with its Tx, so a store that
// reads from one consistent snapshot (sqlstore's transaction, memstore's
// snapshot) gives the added sections the same view of the user as the
// built-in ones: see sqlstore.Section and memstore.Section. Read streams,
// as the built-in sections do: nothing needs a whole section in memory.
// An error it yields fails the export at stage "read <Name>".
type Section struct {
	Name string
	Read func(ctx context.Context, tx Tx) iter.Seq2[Record, error]
}

// AsTx finds the store's own Tx of type T in tx: tx itself, or the Tx
// that a wrapper returns from an Unwrap() Tx method, and so on down. A
// store's section reader uses it to reach its transaction through Tx
// wrappers (for tracing, testing...), which should have that method.
func AsTx[T Tx](tx Tx) (T, bool) {
	for {
		if t, ok := tx.(T); ok {
			return t, true
		}
		u, ok := tx.(interface{ Unwrap() Tx })
		if !ok {
			var zero T
			return zero, false
		}
		tx = u.Unwrap()
	}
}

// Record is one object of an added section: its fields, written in this
// order.
type Record []Field

// Field is one key and value of a Record. The value is one of: nil
// (null), string, []byte (as a string), NullString, bool, int, int32,
// int64, uint32, float64, or time.Time (a timestamp in the format's form).
// Any other type fails the export, rather than guessing how JavaScript
// would have printed it.
type Field struct {
	Key   string
	Value any
}

// builtinKeys are the document's own keys, which no added section may take.
var builtinKeys = []string{"exportedAt", "version", "user", "agents", "scheduledTasks", "workflows"}

// ErrSectionName is returned (wrapped) by AddSection for a name that is
// taken or not a plain JSON key.
var ErrSectionName = errors.New("export: bad section name")

// AddSection registers a section to write after workflows, after those
// registered before it. It rejects a name that is built in or already
// registered, or that is not a plain key (a letter, then up to 63
// letters, digits and underscores), and a nil Read. Register sections
// before the first export: AddSection is not safe to call concurrently
// with Export.
func (e *StoreExporter) AddSection(s Section) error {
	if err := checkSectionName(s.Name); err != nil {
		return err
	}
	for _, t := range e.sections {
		if t.Name == s.Name {
			return fmt.Errorf("%w: %q is already registered", ErrSectionName, s.Name)
		}
	}
	if s.Read == nil {
		return fmt.Errorf("export: section %q has no Read", s.Name)
	}
	e.sections = append(e.sections, s)
	return nil
}

func checkSectionName(name string) error {
	for _, k := range builtinKeys {
		if name == k {
			return fmt.Errorf("%w: %q is a key of the format", ErrSectionName, name)
		}
	}
	ok := len(name) > 0 && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		ok = letter || i > 0 && ('0' <= c && c <= '9' || c == '_')
	}
	if !ok {
		return fmt.Errorf("%w: %q is not a plain key (a letter, then letters, digits or _; at most 64)", ErrSectionName, name)
	}
	return nil
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
		stage := Stage("read " + s.Name)
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

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case []byte:
		return appendString(b, string(v)), nil
	case NullString:
		return appendNullString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case float64:
		return appendNumber(b, v), nil
	case time.Time:
		return appendTimeString(b, v), nil
	}
	return b, fmt.Errorf("unsupported value of type %T", v)
}

// appendNumber writes f as JavaScript's Number.prototype.toString does,
// which JSON.stringify uses: NaN and infinities become null, -0 is 0,
// plain decimals from 1e-6 up to 1e21, exponent form outside that
// ("1e+21", "1.5e-7").
func appendNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0')
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	// Go writes "1.5e-07"; JavaScript "1.5e-7" and "1e+21".
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	i := len(e) - 1
	for e[i-1] != '+' && e[i-1] != '-' {
		i--
	}
	// e[i:] is the exponent's digits; drop their leading zeros.
	digits := e[i:]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	b = append(b, e[:i]...)
	return append(b, digits...)
}
