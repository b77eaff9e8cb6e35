package sqlstore

import "database/sql"

// The scan destinations of the section queries. Each is handed the
// driver's value as it is (driverRows.next in conn.go, as database/sql
// would hand a Scanner), so these keep the driver's string without
// copying it (modernc.org/sqlite and pgx return text as string) and skip
// the second conversion that sql.NullString and sql.NullBool make for
// every value; pprof put that conversion at a tenth of the time of
// reading a large account. Values of any other type take the standard
// types' path, so the results are the same as theirs.

// text scans a text column; NULL reads as "", as the contract has it for
// the string fields of records.
type text string

// Scan implements sql.Scanner.
func (t *text) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*t = text(v)
	case []byte: // go-sql-driver/mysql; the driver may reuse the bytes
		*t = text(v)
	case nil:
		*t = ""
	default:
		var ns sql.NullString
		if err := ns.Scan(src); err != nil {
			return err
		}
		*t = text(ns.String)
	}
	return nil
}

// flag scans a boolean column: a bool, or 0 and 1 (SQLite, MySQL).
type flag bool

// Scan implements sql.Scanner.
func (f *flag) Scan(src any) error {
	switch v := src.(type) {
	case bool:
		*f = flag(v)
		return nil
	case int64:
		if v == 0 || v == 1 {
			*f = v == 1
			return nil
		}
	}
	// NULL, text, and integers other than 0 and 1: as sql.NullBool has
	// it (NULL is false; other integers are an error).
	var nb sql.NullBool
	if err := nb.Scan(src); err != nil {
		return err
	}
	*f = flag(nb.Bool)
	return nil
}
