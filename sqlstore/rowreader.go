package sqlstore

import (
	"context"
	"database/sql/driver"
	"time"
)

// A RowReader reads the export's queries from a driver's own connection,
// for a driver whose values cost more to hand over as driver.Value than
// to read: each string and time.Time put in an interface is an allocation
// (pprof put boxing and its garbage at a third of a large PostgreSQL
// export through pgx's database/sql driver). The values must be the ones
// the driver's database/sql side would give, and are read by the same
// Scanners, so the document does not change. Package sqlstore/pgxrows is
// the one for pgx; a RowReader is optional, and the store works without.
type RowReader interface {
	// Query runs query with args on conn, the driver connection that
	// database/sql lent the View (sql.Conn.Raw), inside its transaction.
	// ok is false, with nothing run, if conn is not of the reader's
	// driver: the store then queries through database/sql's driver
	// interface.
	Query(ctx context.Context, conn any, query string, args []any) (rows Rows, ok bool, err error)
}

// Rows are the rows of a RowReader's query.
type Rows interface {
	// Columns returns the names of the columns.
	Columns() []string
	// Next reads the next row into dest, one Value per column, and
	// reports false at the end of the rows (or on an error).
	Next(dest []Value) (bool, error)
	// Close closes the rows; an error the result held at its end
	// comes back here if Next did not return it.
	Close() error
}

// A Kind is the type of a Value.
type Kind uint8

// The kinds of Value: the types a driver.Value holds.
const (
	KindNull   Kind = iota // NULL
	KindString             // Value.String
	KindBytes              // Value.Bytes
	KindTime               // Value.Time
	KindInt64              // Value.Int
	KindBool               // Value.Bool
	KindOther              // Value.Other: any other driver.Value (float64...)
)

// A Value is one column of a row, as the driver would hand it to
// database/sql, held by type instead of in an interface.
type Value struct {
	Kind   Kind
	String string
	Bytes  []byte // valid until the next call to Next
	Time   time.Time
	Int    int64
	Bool   bool
	Other  driver.Value
}

// DriverValue returns v as the driver.Value it stands for.
func (v *Value) DriverValue() driver.Value {
	switch v.Kind {
	case KindString:
		return v.String
	case KindBytes:
		return v.Bytes
	case KindTime:
		return v.Time
	case KindInt64:
		return v.Int
	case KindBool:
		return v.Bool
	case KindOther:
		return v.Other
	}
	return nil
}

// WithRowReader has the store read its queries through r where r takes
// the connection (see RowReader).
func WithRowReader(r RowReader) Option { return func(s *Store) { s.reader = r } }

// valueScanner is a scan destination of this package that reads a Value
// without putting it in an interface.
type valueScanner interface {
	scanValue(v *Value) error
}

func (t *text) scanValue(v *Value) error {
	switch v.Kind {
	case KindString:
		*t = text(v.String)
		return nil
	case KindNull:
		*t = ""
		return nil
	}
	return t.Scan(v.DriverValue())
}

func (f *flag) scanValue(v *Value) error {
	if v.Kind == KindBool {
		*f = flag(v.Bool)
		return nil
	}
	return f.Scan(v.DriverValue())
}

func (ts *timestamp) scanValue(v *Value) error {
	if v.Kind == KindTime {
		ts.t = v.Time
		return nil
	}
	return ts.Scan(v.DriverValue())
}
