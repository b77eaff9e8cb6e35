package export

import (
	"context"
	"errors"
	"fmt"
	"iter"
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
// An error it yields fails the export at stage SectionStage(Name), "read
// <Name>".
type Section struct {
	Name string
	Read func(ctx context.Context, tx Tx) iter.Seq2[Record, error]
}

// SectionStage is the Stage at which an error of the added section name
// fails the export: "read <name>", as the built-in sections' "read
// agents". Compare an Error's Stage with it.
func SectionStage(name string) Stage { return Stage("read " + name) }

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
