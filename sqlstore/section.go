package sqlstore

import (
	"context"
	"database/sql/driver"
	"fmt"
	"iter"

	"github.com/agentbot/export"
)

// Section returns a section of the host's own (see export.Section) read
// by query inside the export's transaction, so it sees the same snapshot
// as the built-in sections. Register it with the exporter:
//
//	exp := export.NewExporter(store)
//	err := exp.AddSection(sqlstore.Section("notifications",
//		`SELECT id, title, "readAt", "createdAt" FROM "Notification"
//		 WHERE "userId" = $1 ORDER BY "createdAt", id COLLATE "C"`))
//
// query takes the user's ID as its one argument ($1 on PostgreSQL, ?
// elsewhere) and selects only that user's rows, in the order to write
// them; each row becomes one object whose keys are the column names (use
// AS to name them) and whose values are the driver's: text, numbers,
// booleans, NULL and timestamps (time.Time, written in the format's
// form; select a timestamp stored as text or a number in the form it
// should have). On MySQL, make the owner comparison exact, as the
// built-in queries are: with a VARBINARY owner column (as this package's
// DDL declares IDs) "col = ?" is exact; with a text column, compare
// CAST(col AS BINARY) = CAST(? AS BINARY), or a look-alike ID ("Alice",
// "alice ") would match.
//
// Select only the columns the user should receive: whatever the query
// returns is exported.
func Section(name, query string) export.Section {
	op := "reading " + name
	return export.Section{Name: name, Read: func(ctx context.Context, tx export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			v, ok := export.AsTx[*view](tx)
			if !ok {
				yield(nil, &Error{Op: op, Err: fmt.Errorf("section read from a %T, not an sqlstore Tx", tx)})
				return
			}
			err := v.each(ctx, query, v.args[:1], nil, func(r *driverRows) bool {
				return yield(record(r.columns(), r.values()), nil)
			})
			if err != nil {
				yield(nil, &Error{Op: op, Err: err})
			}
		}
	}}
}

// record copies one row into a Record: the driver may reuse its values'
// memory for the next row.
func record(cols []string, vals []driver.Value) export.Record {
	rec := make(export.Record, len(cols))
	for i, c := range cols {
		v := vals[i]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		rec[i] = export.Field{Key: c, Value: v}
	}
	return rec
}
