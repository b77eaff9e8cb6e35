// Package pgxrows reads a sqlstore export's queries through pgx's own
// interface, for hosts on PostgreSQL that use pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib), as most Go hosts on PostgreSQL do:
//
//	db, _ := sql.Open("pgx", dsn)
//	store, err := sqlstore.New(db, sqlstore.Postgres, pgxrows.Option())
//
// The store, its transaction and its SQL do not change; only the rows are
// read from the *pgx.Conn under the pool's connection rather than through
// database/sql's driver interface, whose driver.Value puts every string
// and time.Time of every row in an interface (an allocation each: a third
// of a large export's CPU in pprof, more than the rest of the reading).
// Each column is decoded by pgx exactly as its database/sql driver
// decodes it, so the values, and the document, are the same; the
// conformance suite runs on both.
//
// It imports pgx, which a host on pgx has already; package sqlstore
// itself imports no driver. A connection of another driver is read
// through database/sql as before.
package pgxrows

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/agentbot/export/sqlstore"
)

// Option returns the sqlstore option that reads through pgx.
func Option() sqlstore.Option { return sqlstore.WithRowReader(Reader{}) }

// Reader is a sqlstore.RowReader for connections of pgx's database/sql
// driver.
type Reader struct{}

var _ sqlstore.RowReader = Reader{}

// pgxConn is what pgx's database/sql connection (*stdlib.Conn) offers.
type pgxConn interface{ Conn() *pgx.Conn }

// Query implements sqlstore.RowReader.
func (Reader) Query(ctx context.Context, conn any, query string, args []any) (sqlstore.Rows, bool, error) {
	c, ok := conn.(pgxConn)
	if !ok {
		return nil, false, nil
	}
	pc := c.Conn()
	rows, err := pc.Query(ctx, query, args...)
	if err != nil {
		return nil, true, err
	}
	return &rowsOf{rows: rows, m: pc.TypeMap()}, true, nil
}

// rowsOf reads pgx.Rows into sqlstore.Values.
type rowsOf struct {
	rows   pgx.Rows
	m      *pgtype.Map
	cols   []string
	decode []func(src []byte, v *sqlstore.Value) error // nil for a column of text
	buf    []byte
}

func (r *rowsOf) Columns() []string {
	if r.cols == nil {
		for _, fd := range r.rows.FieldDescriptions() {
			r.cols = append(r.cols, fd.Name)
		}
	}
	return r.cols
}

func (r *rowsOf) Next(dest []sqlstore.Value) (bool, error) {
	if !r.rows.Next() {
		return false, r.rows.Err()
	}
	if r.decode == nil {
		for _, fd := range r.rows.FieldDescriptions() {
			var d func([]byte, *sqlstore.Value) error
			if fd.DataTypeOID != pgtype.TextOID && fd.DataTypeOID != pgtype.VarcharOID {
				d = decoder(r.m, fd.DataTypeOID, fd.Format)
			}
			r.decode = append(r.decode, d)
		}
	}
	// The row's text columns (IDs, names) become one string, which each
	// value is a part of: one allocation a row instead of one a value.
	// Text and varchar are their bytes in either format, the string
	// stdlib makes of them.
	raw := r.rows.RawValues()
	r.buf = r.buf[:0]
	for i, src := range raw {
		if r.decode[i] == nil {
			r.buf = append(r.buf, src...)
		}
	}
	texts := string(r.buf)
	for i, src := range raw {
		v := &dest[i]
		switch {
		case src == nil:
			*v = sqlstore.Value{}
		case r.decode[i] == nil:
			*v = sqlstore.Value{Kind: sqlstore.KindString, String: texts[:len(src)]}
			texts = texts[len(src):]
		default:
			if err := r.decode[i](src, v); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

func (r *rowsOf) Close() error {
	r.rows.Close()
	return r.rows.Err()
}

// decoder returns the decoding of one column, type by type as pgx's
// database/sql driver decodes it (stdlib's Rows.Next), into the Value it
// would hand database/sql. NULL is decoded by Next.
func decoder(m *pgtype.Map, oid uint32, format int16) func([]byte, *sqlstore.Value) error {
	switch oid {
	case pgtype.BoolOID:
		var d bool
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindBool, Bool: d}
			return err
		}
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		var d int64
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindInt64, Int: d}
			return err
		}
	case pgtype.TimestampOID:
		var d pgtype.Timestamp
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			if err := plan.Scan(src, &d); err != nil {
				return err
			}
			if d.Valid && d.InfinityModifier == pgtype.Finite {
				*v = sqlstore.Value{Kind: sqlstore.KindTime, Time: d.Time}
				return nil
			}
			return other(d.Value())(v)
		}
	case pgtype.TimestamptzOID:
		var d pgtype.Timestamptz
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			if err := plan.Scan(src, &d); err != nil {
				return err
			}
			if d.Valid && d.InfinityModifier == pgtype.Finite {
				*v = sqlstore.Value{Kind: sqlstore.KindTime, Time: d.Time}
				return nil
			}
			return other(d.Value())(v)
		}
	case pgtype.DateOID:
		var d pgtype.Date
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			if err := plan.Scan(src, &d); err != nil {
				return err
			}
			return other(d.Value())(v)
		}
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		var d []byte
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindBytes, Bytes: d}
			return err
		}
	case pgtype.Float4OID:
		var d float32
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindOther, Other: float64(d)}
			return err
		}
	case pgtype.Float8OID:
		var d float64
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindOther, Other: d}
			return err
		}
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		var d pgtype.Uint32
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			if err := plan.Scan(src, &d); err != nil {
				return err
			}
			return other(d.Value())(v)
		}
	default: // text, varchar, uuid... : as a string, as stdlib does
		var d string
		plan := m.PlanScan(oid, format, &d)
		return func(src []byte, v *sqlstore.Value) error {
			err := plan.Scan(src, &d)
			*v = sqlstore.Value{Kind: sqlstore.KindString, String: d}
			return err
		}
	}
}

// other stores a driver.Value that has no Kind of its own (an infinite
// timestamp's text, a date) as stdlib's Value method returns it.
func other(dv any, err error) func(*sqlstore.Value) error {
	return func(v *sqlstore.Value) error {
		if err != nil {
			return err
		}
		*v = sqlstore.Value{Kind: sqlstore.KindOther, Other: dv}
		return nil
	}
}
