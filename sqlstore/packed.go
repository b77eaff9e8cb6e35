package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Packed rows (SQLite only).
//
// With modernc.org/sqlite, each column of each row costs the driver three
// calls into SQLite (each taking the connection's mutex), a copy into Go
// memory and an allocation to box the value: for a large account pprof
// put that at a third of the export, as much as SQLite's own reading of
// the rows. So on SQLite a section is read by a second form of its query,
// the same FROM, WHERE and ORDER BY, that selects one column instead of
// several:
//
//	concat_ws(char(0), rowid, a, ifnull(b, ''), ...)
//
// split here at the NULs. BenchmarkExport compares it with the
// per-column form.
//
// Each section is read by one execution of one query, whichever form,
// decided before it runs: no query is run again to resume, skip or re-read
// rows, whatever the data holds. (An earlier version started per column
// and switched to packed past 1,024 rows with OFFSET, and back to per
// column at the first odd row: without the composite index each switch
// made SQLite sort the whole section again, and a NULL model, common in
// real data, caused the second switch. It ran up to three times slower
// than reading the rows.)
//
// The values must come out exactly as the per-column query gives them, so
// the packed form is used only where it provably does:
//
//   - every field that may be NULL (not declared NOT NULL, which SQLite
//     enforces) is wrapped in ifnull(x, ''), so no NULL is left out of
//     the row (concat_ws skips NULLs, which would shift the fields). A
//     NULL text reads "", as per column; a NULL flag or timestamp reads
//     "", which is no valid flag or timestamp, so the row is odd (below);
//   - concat_ws writes a number the way CAST(x AS BLOB) does, so
//     timestamps read the same; a flag reads "0" or "1" for the integers 0
//     and 1, and as the text "0" or "1" would read per column;
//   - a text column (ID, name...) must have TEXT affinity, so that it holds
//     only text, blobs and NULL (SQLite converts numbers to text on the way
//     in): concat_ws gives text and blobs byte for byte, as the scan of a
//     column does. A column of another affinity may hold a REAL, which
//     SQLite and Go print differently, so that section is read per column;
//   - the table must be an ordinary table with a rowid (a view's column
//     may hold anything, and the odd rows are found again by rowid), with
//     no column of its own named rowid; the database UTF-8 (in a UTF-16 one
//     a blob would come back re-encoded) and SQLite 3.44 or later
//     (concat_ws).
//
// An odd row is one that does not split into exactly its fields (only a
// NUL inside a value adds fields, since no NULL is left out), whose
// timestamp does not parse, or whose flag is not "0" or "1". It is read
// again on its own, per column, by one keyed lookup (lookup: rowid and
// owner) in the same transaction, so its value or its error is the
// per-column one. The rowid leads the packed row and is an integer, so it
// is read even from a row that does not split.
//
// The checks are small queries, run when a store first reads a section
// and again whenever the database's schema version changes: each export
// reads the version (with the SQLite version and the encoding) in one
// statement, and reuses the checks made for that version.

// packSep separates the fields of a packed row.
const packSep = 0

// packedColumn returns the select expression of a packed row. Columns
// declared NOT NULL, which SQLite keeps free of NULLs, go without ifnull
// (each ifnull cost about 1% of a section's reading, measured on a large
// section without the export's index).
func packedColumn(d Dialect, cols []string, notNull map[string]bool) string {
	parts := []string{"rowid"}
	for _, c := range cols {
		if notNull[strings.ToLower(c)] {
			parts = append(parts, d.quote(c))
		} else {
			parts = append(parts, "ifnull("+d.quote(c)+", '')")
		}
	}
	return "concat_ws(char(0), " + strings.Join(parts, ", ") + ")"
}

// sectionQuery is one built-in section's query in its forms.
type sectionQuery struct {
	pos    int    // 0, 1, 2: agents, scheduled tasks, workflows
	op     string // OpAgents...
	plain  string // one column per field
	packed string // one packed column, every field in ifnull; "" where there is none
	lookup string // the per-column row of one rowid, for an odd packed row
	// packCols and packRest make the packed query for a table's NOT NULL
	// columns (packedColumn).
	packCols []string
	packRest string
	table    string
	text     []string // the text columns, which must have TEXT affinity
	// createIndex creates the index that serves the ordered read, for
	// Check's advice; "" on MySQL, which sorts whatever the index.
	createIndex string
}

// packedRow scans a packed row: ok is false when the driver gave
// something other than text.
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

// rowid reads the row's rowid, the first field, which is an integer and
// so holds no NUL.
func (p *packedRow) rowid() (int64, error) {
	if !p.ok {
		return 0, errors.New("the driver returned a packed row that is not text")
	}
	s, _, _ := strings.Cut(p.s, "\x00")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("packed row with rowid %q: %w", shorten(s), err)
	}
	return id, nil
}

// split cuts the row, past its rowid, into len(fields) fields, and
// reports false unless it holds exactly that many.
func (p *packedRow) split(fields []string) bool {
	if !p.ok {
		return false
	}
	_, s, ok := strings.Cut(p.s, "\x00")
	if !ok {
		return false
	}
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

// unpackTime parses a timestamp field; false makes the row odd, and its
// per-column scan gives the error.
func unpackTime(ts *timestamp, field string) bool {
	t, err := parseTimestamp(field)
	ts.t = t
	return err == nil
}

// unpackFlag reads a flag field; anything but "0" and "1" makes the row
// odd.
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

// section reads one built-in section in one query: packed where packing
// is exact, per column otherwise. dest scans a per-column row into the
// section's variables; unpack reads a packed row into the same
// variables, or reports false for an odd row, which is then looked up
// per column; row hands the record on and reports whether to go on.
func (v *view) section(ctx context.Context, q *sectionQuery, dest []sql.Scanner, unpack func(*packedRow) bool, row func() bool) error {
	if err := v.preferStreaming(ctx); err != nil {
		return err
	}
	packed := v.packedQuery(ctx, q)
	if v.s.onRead != nil {
		v.s.onRead(q.op, packed != "")
	}
	if packed == "" {
		return v.each(ctx, q.plain, v.args, dest, func(*driverRows) bool { return row() })
	}
	var p packedRow
	var lookupErr error
	err := v.each(ctx, packed, v.args, []sql.Scanner{&p}, func(*driverRows) bool {
		if !unpack(&p) {
			if lookupErr = v.lookup(ctx, q, &p, dest); lookupErr != nil {
				return false
			}
		}
		return row()
	})
	if err == nil {
		err = lookupErr
	}
	return err
}

// lookup reads an odd packed row again, per column, by its rowid and
// owner, while the section's rows are still open (SQLite runs several
// statements on one connection).
func (v *view) lookup(ctx context.Context, q *sectionQuery, p *packedRow, dest []sql.Scanner) (err error) {
	id, err := p.rowid()
	if err != nil {
		return err
	}
	if v.s.onLookup != nil {
		v.s.onLookup(q.op)
	}
	rows, err := v.c.query(ctx, q.lookup, append([]any{id}, v.args...))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rows.close(); err == nil {
			err = cerr
		}
	}()
	more, err := rows.next(dest)
	if err == nil && !more {
		err = fmt.Errorf("the row with rowid %d is gone from the transaction's snapshot", id)
	}
	return err
}

// packPlan is what the checks found for one schema version: the packed
// query of each section, "" for one read per column.
type packPlan struct {
	key    string // SQLite version, encoding and schema version, as read
	packed [3]string
}

// planQuery reads what a packPlan depends on, once per export.
const planQuery = "SELECT sqlite_version(), (SELECT encoding FROM pragma_encoding), (SELECT schema_version FROM pragma_schema_version)"

// packedQuery returns the packed query of q's section, or "" if it is
// read per column. The first section of a View reads the schema version;
// the checks run only when the store has none for that version. A check
// that fails answers per column: packing is a way of reading faster, and
// must not fail an export that reading per column would not (a real fault
// of the database shows in the section's query).
func (v *view) packedQuery(ctx context.Context, q *sectionQuery) string {
	if q.packed == "" || v.s.noPack {
		return ""
	}
	if v.plan == nil {
		v.plan = v.readPlan(ctx)
	}
	return v.plan.packed[q.pos]
}

// readPlan returns the packPlan of the view's snapshot.
func (v *view) readPlan(ctx context.Context) *packPlan {
	none := &packPlan{}
	var version, encoding, schema text
	err := v.each(ctx, planQuery, nil, []sql.Scanner{&version, &encoding, &schema}, func(*driverRows) bool { return false })
	if err != nil || !atLeast(string(version), 3, 44) || encoding != "UTF-8" {
		return none
	}
	key := string(version) + " " + string(encoding) + " " + string(schema)
	if p := v.s.plan.Load(); p != nil && p.key == key {
		return p
	}
	p := &packPlan{key: key}
	for _, q := range v.s.q.sections() {
		notNull, ok, err := v.tableCanPack(ctx, q)
		if ok && err == nil {
			p.packed[q.pos] = "SELECT " + packedColumn(v.s.dialect, q.packCols, notNull) + q.packRest
		}
	}
	v.s.plan.Store(p)
	return p
}

// tableCanPack checks that q's table is an ordinary table with a rowid
// (whichever schema the unqualified name finds, all of its kind are),
// that no column of its own is named rowid, and that its text columns
// have TEXT affinity. Schema-qualified tables are read per column. It
// returns the columns declared NOT NULL, by lower-case name.
func (v *view) tableCanPack(ctx context.Context, q *sectionQuery) (map[string]bool, bool, error) {
	if strings.Contains(q.table, ".") {
		return nil, false, nil
	}
	var kind text
	var withoutRowid flag
	tables, others := 0, 0
	err := v.each(ctx, "SELECT type, wr FROM pragma_table_list WHERE name = ? COLLATE NOCASE", []any{q.table},
		[]sql.Scanner{&kind, &withoutRowid}, func(*driverRows) bool {
			if kind == "table" && !withoutRowid {
				tables++
			} else {
				others++
			}
			return true
		})
	if err != nil || tables == 0 || others > 0 {
		return nil, false, err
	}
	var name, decl text
	var notNullFlag flag
	declared := map[string]string{}
	notNull := map[string]bool{}
	err = v.each(ctx, "SELECT name, type, \"notnull\" FROM pragma_table_info(?)", []any{q.table},
		[]sql.Scanner{&name, &decl, &notNullFlag}, func(*driverRows) bool {
			n := strings.ToLower(string(name))
			declared[n] = string(decl)
			notNull[n] = bool(notNullFlag)
			return true
		})
	if err != nil {
		return nil, false, err
	}
	if _, shadowed := declared["rowid"]; shadowed {
		return nil, false, nil
	}
	for _, c := range q.text {
		decl, ok := declared[strings.ToLower(c)]
		if !ok || !textAffinity(decl) {
			return nil, false, nil
		}
	}
	return notNull, true, nil
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
