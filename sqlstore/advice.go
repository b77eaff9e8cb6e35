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
			if err := v.set(ctx, set); err != nil {
				return []Warning{{Op: OpBegin, Message: "could not prepare to read the query plans: " + err.Error()}}
			}
		}
	default:
		return nil
	}
	var warnings []Warning
	for i, q := range v.s.q.sections() {
		plan, err := v.queryPlan(ctx, explain+used[i])
		if err != nil {
			warnings = append(warnings, Warning{Op: q.op, Message: "could not read the query plan: " + err.Error()})
			continue
		}
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

// queryPlan runs an EXPLAIN (with the view's arguments) and returns the
// plan's text, a line per row: the last column, SQLite's detail or
// PostgreSQL's one QUERY PLAN column.
func (v *view) queryPlan(ctx context.Context, explain string) (string, error) {
	var lines []string
	err := v.each(ctx, explain, v.args, nil, func(r *driverRows) bool {
		var line text
		if err := line.Scan(r.value(r.width() - 1)); err == nil {
			lines = append(lines, string(line))
		}
		return true
	})
	return strings.Join(lines, "\n"), err
}
