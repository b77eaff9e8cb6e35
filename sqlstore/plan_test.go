package sqlstore_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// TestIndexServesTheOrderedRead checks, for the tables Schema creates,
// that the database reads each section through the shipped index with no
// sort: SQLite's plan has no temporary B-tree; PostgreSQL's (with the
// alternatives to an index scan switched off, so that a small table does
// not make the planner prefer them) has no Sort node.
func TestIndexServesTheOrderedRead(t *testing.T) {
	for _, c := range sqlText {
		if c.dialect == sqlstore.MySQL {
			continue // MySQL sorts by an expression: see the package doc
		}
		t.Run(c.dialect.String()+"/"+c.layout, func(t *testing.T) {
			tdb := openDB(t, c.dialect)
			l, _ := sqlstore.LayoutByName(c.layout)
			if tdb.schema != "" {
				// sqlText names unqualified tables: find them on the
				// path, set on the pool's one connection.
				tdb.db.SetMaxOpenConns(1)
				mustExec(t, tdb.db, "SET search_path TO "+strings.TrimSuffix(tdb.schema, "."))
			}
			tdb.setup(t, l, sqlfixture.ISOText)
			for _, q := range append([]string{c.agents, c.tasks, c.workflows}, c.packed...) {
				var plan []string
				explain, arg := "EXPLAIN QUERY PLAN ", any(mockUser)
				if c.dialect == sqlstore.Postgres {
					mustExec(t, tdb.db, "SET enable_seqscan = off")
					mustExec(t, tdb.db, "SET enable_bitmapscan = off")
					explain = "EXPLAIN "
				}
				args := []any{arg}
				if strings.HasSuffix(q, "OFFSET ?") { // a packed query (packed.go)
					args = append(args, 1024)
				}
				rows, err := tdb.db.Query(explain+q, args...)
				require.NoError(t, err)
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					require.NoError(t, rows.Scan(ptrs...))
					plan = append(plan, string(toText(vals[len(vals)-1])))
				}
				require.NoError(t, rows.Err())
				text := strings.Join(plan, "\n")
				require.Contains(t, text, "_idx", "%s\nplan:\n%s", q, text)
				require.NotContains(t, text, "TEMP B-TREE", "%s\nplan:\n%s", q, text)
				require.NotContains(t, text, "Sort", "%s\nplan:\n%s", q, text)
			}
		})
	}
}

func toText(v any) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return nil
}
