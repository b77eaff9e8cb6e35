package sqlstore

import (
	"context"
	"strings"
)

// A Warning is something Check found that does not stop an export but
// costs it. Op names the section (OpAgents...); Fix, where there is one,
// is the statement that mends it, for the host's DBA or migration.
type Warning struct {
	Op      string
	Message string
	Fix     string
}

func (w Warning) String() string {
	s := "sqlstore: " + w.Op + ": " + w.Message
	if w.Fix != "" {
		s += "; to fix: " + w.Fix
	}
	return s
}

// adviseIndexes reports each section whose ordered read no index serves,
// from the plan of the query a View runs (used, in section order):
// SQLite's plan then uses a temporary B-tree, PostgreSQL's sorts. On
// PostgreSQL the alternatives to an index scan are switched off for the
// plans (SET LOCAL, undone by Check's rollback), so that a table that is
// still small, where a scan and a sort are cheapest, does not hide a
// missing index. MySQL sorts by its byte-order expression whatever the
// index (see the package doc), so it gets no advice. A plan that cannot
// be read is a warning too: advice must not fail Check.
func (v *view) adviseIndexes(ctx context.Context, used []string) []Warning {
	var explain string
	switch v.s.dialect {
	case SQLite:
		explain = "EXPLAIN QUERY PLAN "
	case Postgres:
		explain = "EXPLAIN "
		for _, set := range []string{"SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"} {
			if err := v.each(ctx, set, nil, nil, func(*driverRows) bool { return true }); err != nil {
				return []Warning{{Op: OpBegin, Message: "could not prepare to read the query plans: " + err.Error()}}
			}
		}
	default:
		return nil
	}
	var warnings []Warning
	for i, q := range v.s.q.sections() {
		var lines []string
		err := v.each(ctx, explain+used[i], v.args, nil, func(r *driverRows) bool {
			// The plan's text is the last column: SQLite's detail,
			// PostgreSQL's one QUERY PLAN column.
			var detail text
			if err := detail.Scan(r.value(r.width() - 1)); err == nil {
				lines = append(lines, string(detail))
			}
			return true
		})
		if err != nil {
			warnings = append(warnings, Warning{Op: q.op, Message: "could not read the query plan: " + err.Error()})
			continue
		}
		plan := strings.Join(lines, "\n")
		sorts := strings.Contains(plan, "TEMP B-TREE") // SQLite: USE TEMP B-TREE FOR ORDER BY
		if v.s.dialect == Postgres {
			sorts = strings.Contains(plan, "Sort")
		}
		if sorts {
			warnings = append(warnings, Warning{
				Op: q.op,
				Message: "no index serves the ordered read of " + q.table + ": the database sorts all of a user's rows " +
					"before it hands over the first (the export is right, but slower, and the sort takes memory or a temporary file)",
				Fix: q.createIndex,
			})
		}
	}
	return warnings
}
