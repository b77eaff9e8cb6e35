package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
)

// Packed rows (SQLite only).
//
// With modernc.org/sqlite, each column of each row costs the driver three
// calls into SQLite (each taking the connection's mutex), a copy into Go
// memory and an allocation to box the value: for a large account pprof
// put that at a third of the export, as much as SQLite's own reading of
// the rows. So a large section goes on with a second form of its query,
// the same FROM, WHERE and ORDER BY, that selects one column instead of
// several, concat_ws(char(0), a, b, ...), split here at the NULs. On the
// 300,000-record account of benchexport's file it took about 0.92 of the
// time (median of 8 interleaved runs of 5 in-process exports;
// concat() with char(0) between the values, which keeps NULLs in place,
// gained half as much). BenchmarkExport compares the two readings.
//
// The values must come out exactly as the per-column query gives them, so
// packing is used only where it provably does:
//
//   - concat_ws writes a number the way CAST(x AS BLOB) does, so
//     timestamps read the same; a flag reads "0" or "1" for the integers 0
//     and 1, and as the text "0" or "1" would read per column;
//   - a text column (ID, name...) must have TEXT affinity, so that it holds
//     only text, blobs and NULL (SQLite converts numbers to text on the way
//     in): concat_ws gives text and blobs byte for byte, as the scan of a
//     column does. A column of another affinity may hold a REAL, which
//     SQLite and Go print differently, so that section is read per column;
//   - the table must be a table (a view's column may hold anything), the
//     database UTF-8 (in a UTF-16 one a blob would come back re-encoded)
//     and SQLite 3.44 or later (concat_ws);
//   - any row that does not split into exactly its fields (concat_ws
//     leaves out a NULL; a value may hold a NUL), whose timestamp does not
//     parse, or whose flag is not "0" or "1", is read again per column,
//     together with the rest of the section, so its value or its error is
//     the per-column one.
//
// A section starts per column and switches only when it has more than
// packAfter rows, so the checks (three small queries, once per export)
// and the switch cost an ordinary account nothing. Switching runs the
// other query in the same transaction, past the rows already read: the
// packed query with OFFSET (SQLite steps over those rows in the index
// without reading them; reading them again costs about what reading
// them did, more than packing saves on a few thousand rows), the
// per-column one, after a row it must read, by reading and dropping
// them. The same snapshot, the same ORDER BY on a
// unique key (creation time, then ID) and the same index give the same
// rows in the same order.

// packAfter is how many rows of a section are read per column before the
// rest is read packed.
const packAfter = 1024

// packSep separates the fields of a packed row.
const packSep = 0

// packedColumn returns the select expression of a packed row.
func packedColumn(d Dialect, cols ...string) string {
	for i, c := range cols {
		cols[i] = d.quote(c)
	}
	return "concat_ws(char(0), " + strings.Join(cols, ", ") + ")"
}

// sectionQuery is one built-in section's query in its two forms.
type sectionQuery struct {
	op     string // OpAgents...
	plain  string // one column per field
	packed string // one packed column; "" where there is none
	table  string
	text   []string // the text columns, which must have TEXT affinity
}

// packedArgs are the packed query's arguments: the section's, then the
// OFFSET, the rows already read.
func packedArgs(args []any, offset int) []any {
	return append(slices.Clip(args), int64(offset))
}

// packedRow scans a packed row: ok is false when the driver gave
// something other than text (with _texttotime in the DSN,
// modernc.org/sqlite tries to read an expression's text as a time), and
// the row is read per column.
type packedRow struct {
	s  string
	ok bool
}

// Scan implements sql.Scanner.
func (p *packedRow) Scan(src any) error {
	switch v := src.(type) {
	case string:
		p.s, p.ok = v, true
	case []byte: // not from modernc.org/sqlite; the driver may reuse the bytes
		p.s, p.ok = string(v), true
	default:
		p.s, p.ok = "", false
	}
	return nil
}

// split cuts the row into len(fields) fields, and reports false unless it
// holds exactly that many.
func (p *packedRow) split(fields []string) bool {
	if !p.ok {
		return false
	}
	s := p.s
	last := len(fields) - 1
	for i := range last {
		j := strings.IndexByte(s, packSep)
		if j < 0 {
			return false
		}
		fields[i], s = s[:j], s[j+1:]
	}
	if strings.IndexByte(s, packSep) >= 0 {
		return false
	}
	fields[last] = s
	return true
}

// unpackTime parses a timestamp field; false sends the row to the
// per-column query, whose scan gives the error.
func unpackTime(ts *timestamp, field string) bool {
	t, err := parseTimestamp(field)
	ts.t = t
	return err == nil
}

// unpackFlag reads a flag field; anything but "0" and "1" is read per
// column.
func unpackFlag(f *flag, field string) bool {
	switch field {
	case "0":
		*f = false
	case "1":
		*f = true
	default:
		return false
	}
	return true
}

// section reads one built-in section: per column, then, past packAfter
// rows and where packing is exact, packed. dest scans a per-column row
// into the section's variables; unpack reads a packed row into the same
// variables, or reports false; row hands the record on and reports
// whether to go on.
func (v *view) section(ctx context.Context, q *sectionQuery, dest []sql.Scanner, unpack func(*packedRow) bool, row func() bool) error {
	done := 0                               // rows handed to row
	packed := false                         // reading the packed query
	decided := q.packed == "" || v.s.noPack // packing was tried, or is not possible
	var p packedRow
	for {
		query, args, scan, skip := q.plain, v.args, dest, done
		if packed {
			query, args, scan, skip = q.packed, packedArgs(v.args, done), []sql.Scanner{&p}, 0
		}
		switchTo, stopped := packed, false
		err := v.eachFrom(ctx, query, args, scan, skip, func(*driverRows) bool {
			if !decided && done == packAfter { // there are more: the packed query reads this one again
				switchTo = true
				return false
			}
			if packed && !unpack(&p) {
				switchTo = false
				return false
			}
			done++
			if !row() {
				stopped = true
				return false
			}
			return true
		})
		if err != nil || stopped || switchTo == packed {
			return err
		}
		decided = true // switch once each way at most
		if switchTo {
			// If packing turns out not to be possible, the per-column
			// query runs again past the rows already read.
			switchTo = v.canPack(ctx, q)
			if switchTo && v.s.onPack != nil {
				v.s.onPack(q.op)
			}
		}
		packed = switchTo
	}
}

// canPack reports whether q's section may be read packed (see the top of
// this file), checking the database once per View. A check that fails
// answers no: packing is a way of reading faster, and must not fail an
// export that reading per column would not (a real fault of the database
// shows again in the per-column query).
func (v *view) canPack(ctx context.Context, q *sectionQuery) bool {
	if v.packable == nil {
		v.packable = map[string]bool{}
		ok, err := v.sqliteCanPack(ctx)
		v.packable[""] = ok && err == nil
	}
	if !v.packable[""] {
		return false
	}
	ok, seen := v.packable[q.op]
	if !seen {
		var err error
		ok, err = v.tableCanPack(ctx, q)
		ok = ok && err == nil
		v.packable[q.op] = ok
	}
	return ok
}

// sqliteCanPack checks the SQLite version and the database's encoding.
func (v *view) sqliteCanPack(ctx context.Context) (bool, error) {
	var version, encoding text
	err := v.each(ctx, "SELECT sqlite_version(), (SELECT encoding FROM pragma_encoding)", nil,
		[]sql.Scanner{&version, &encoding}, func(*driverRows) bool { return false })
	if err != nil {
		return false, err
	}
	return atLeast(string(version), 3, 44) && encoding == "UTF-8", nil
}

// tableCanPack checks that q's table is an ordinary table (whichever
// schema the unqualified name finds, all of its kind are) and that its
// text columns have TEXT affinity. Schema-qualified tables are read per
// column.
func (v *view) tableCanPack(ctx context.Context, q *sectionQuery) (bool, error) {
	if strings.Contains(q.table, ".") {
		return false, nil
	}
	var kind text
	tables, others := 0, 0
	err := v.each(ctx, "SELECT type FROM pragma_table_list WHERE name = ? COLLATE NOCASE", []any{q.table},
		[]sql.Scanner{&kind}, func(*driverRows) bool {
			if kind == "table" {
				tables++
			} else {
				others++
			}
			return true
		})
	if err != nil || tables == 0 || others > 0 {
		return false, err
	}
	var name, decl text
	declared := map[string]string{}
	err = v.each(ctx, "SELECT name, type FROM pragma_table_info(?)", []any{q.table},
		[]sql.Scanner{&name, &decl}, func(*driverRows) bool {
			declared[strings.ToLower(string(name))] = string(decl)
			return true
		})
	if err != nil {
		return false, err
	}
	for _, c := range q.text {
		decl, ok := declared[strings.ToLower(c)]
		if !ok || !textAffinity(decl) {
			return false, nil
		}
	}
	return true, nil
}

// textAffinity applies SQLite's rules for a column's affinity to its
// declared type (https://sqlite.org/datatype3.html, 3.1): TEXT if the
// type contains CHAR, CLOB or TEXT, unless it contains INT.
func textAffinity(decl string) bool {
	d := strings.ToUpper(decl)
	if strings.Contains(d, "INT") {
		return false
	}
	return strings.Contains(d, "CHAR") || strings.Contains(d, "CLOB") || strings.Contains(d, "TEXT")
}

// atLeast reports whether a version "major.minor.patch" is at least
// major.minor.
func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}
