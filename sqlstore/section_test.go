package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// TestSectionQueryMustBindTheUser: a section's query that takes no
// parameter (and so reads every user's notes) or more than the one, the
// user's ID, fails the export before a row is written, on every database,
// both from the driver's count and from the database's own where the
// driver gives none.
func TestSectionQueryMustBindTheUser(t *testing.T) {
	for _, d := range databases {
		for _, fromDB := range []bool{false, true} {
			name := d.String() + "/driver-count"
			if fromDB {
				name = d.String() + "/database-count"
			}
			t.Run(name, func(t *testing.T) {
				tdb := openDB(t, d)
				s, w := tdb.setup(t, sqlstore.PrismaLayout(), sqlfixture.ISOText)
				notes := notesTable(t, tdb)
				ctx := ctxFor(t)
				for _, u := range []string{"jane", "sam"} {
					require.NoError(t, w.PutUser(ctx, export.User{ID: u, Email: u + "@example.com", Role: "user"}))
					require.NoError(t, notes.Put(ctx, u, "note-of-"+u, "private to "+u))
				}
				if fromDB {
					if d == sqlstore.MySQL {
						// go-sql-driver/mysql reports the server's count;
						// without it there is nothing to ask.
						sqlstore.IgnoreNumInput(t)
						_, err := exportSection(t, s, "SELECT id, body FROM "+noteTable(tdb)+" WHERE userId = ?")
						require.ErrorContains(t, err, "does not say how many parameters")
						return
					}
					sqlstore.IgnoreNumInput(t)
				}
				p, p2, again := "?", "?", "?1"
				switch d {
				case sqlstore.Postgres:
					p, p2, again = "$1", "$2", "$1"
				case sqlstore.MySQL:
					again = "?"
				}
				owner := `"userId"`
				if d == sqlstore.MySQL {
					owner = "userId"
				}
				from := " FROM " + noteTable(tdb)
				refused := []struct{ query, want string }{
					{"SELECT id, " + owner + from, "takes none"},
					{"SELECT id, body" + from + " ORDER BY id", "takes none"},
					{"SELECT id, body" + from + " WHERE " + owner + " = " + p + " OR " + owner + " = " + p2, "takes 2"},
				}
				if d == sqlstore.SQLite {
					// The planner drops the comparison: nothing reads the ID.
					refused = append(refused, struct{ query, want string }{"SELECT id, body" + from + " WHERE 1 OR " + owner + " = ?", "takes none"})
				}
				for _, c := range refused {
					out, err := exportSection(t, s, c.query)
					require.ErrorIs(t, err, sqlstore.ErrSectionQuery, c.query)
					require.ErrorContains(t, err, c.want, c.query)
					var ee *export.Error
					require.True(t, errors.As(err, &ee), "%T", err)
					require.Equal(t, export.SectionStage("notes"), ee.Stage)
					require.NotContains(t, out, "note-of-sam", c.query)
				}
				accepted := []string{"SELECT id, body" + from + " WHERE " + owner + " = " + p + " ORDER BY id"}
				if d != sqlstore.MySQL {
					accepted = append(accepted, "SELECT id, body"+from+" WHERE "+owner+" = "+p+" AND "+owner+" = "+again)
				}
				for _, q := range accepted {
					out, err := exportSection(t, s, q)
					require.NoError(t, err, q)
					require.Contains(t, out, "note-of-jane", q)
					require.NotContains(t, out, "note-of-sam", q)
				}
			})
		}
	}
}

func noteTable(tdb *testDB) string {
	if tdb.dialect == sqlstore.MySQL {
		return tdb.schema + "Note"
	}
	return tdb.schema + `"Note"`
}

// exportSection exports jane with one added section, notes, read by query.
func exportSection(t *testing.T, s *sqlstore.Store, query string) (string, error) {
	t.Helper()
	exp := export.NewExporter(s)
	require.NoError(t, exp.AddSection(sqlstore.Section("notes", query)))
	var b strings.Builder
	_, err := exp.Export(ctxFor(t), &b, export.Request{UserID: "jane", ExportedAt: time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)})
	return b.String(), err
}
