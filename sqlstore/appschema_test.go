package sqlstore_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/schematest"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// secret marks every value of a column the export must not read.
const secret = "SECRET-must-not-leak"

// appTables creates the application's tables and returns a store with the
// default layout, and a writer that fills the secret columns of every row.
func appTables(t *testing.T, tdb *testDB) (*sqlstore.Store, *sqlfixture.Writer) {
	t.Helper()
	quote := `"`
	if tdb.dialect == sqlstore.MySQL {
		quote = "`"
	}
	prefix := ""
	if tdb.schema != "" {
		prefix = quote + strings.TrimSuffix(tdb.schema, ".") + quote + "."
	}
	for _, stmt := range sqlfixture.AppSchema(tdb.dialect, prefix) {
		mustExec(t, tdb.db, stmt)
	}
	l := tdb.layout(sqlstore.PrismaLayout())
	s, err := sqlstore.New(tdb.db, tdb.dialect) // the default layout is the application's
	if tdb.schema != "" {
		s, err = sqlstore.New(tdb.db, tdb.dialect, sqlstore.WithLayout(l))
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check on the application's tables: %v", err)
	}
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	w := &sqlfixture.Writer{DB: tdb.db, Dialect: tdb.dialect, Layout: l, Times: sqlfixture.UnixMillis}
	w.Extra = map[string]map[string]any{
		l.User.Table: {"passwordHash": secret + "-hash", "walletSeed": secret + " seed words", "updatedAt": w.Time(now)},
		l.Agent.Table: {"config": `{"apiKey":"` + secret + `-key","temperature":0.2}`, "apiKeyHash": secret + "-agent-hash",
			"encryptedToken": secret + "-token"},
		l.ScheduledTask.Table: {"agentId": secret + "-agent-ref", "prompt": secret + " prompt"},
		l.Workflow.Table:      {"definition": `{"webhook":"` + secret + `"}`, "webhookSecret": secret + "-whsec"},
	}
	return s, w
}

// TestApplicationTables exports from tables laid out exactly as the
// application's ORM made them, secret columns included, on every
// database: the export is the golden file byte for byte, satisfies the
// published schema, and holds none of the secrets, nor any row of
// another user.
func TestApplicationTables(t *testing.T) {
	goldens, err := filepath.Glob("../testdata/golden/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			s, w := appTables(t, tdb)
			ctx := ctxFor(t)

			// Another user with records at the same instants, and secrets.
			other := &export.Document{User: export.User{ID: "other-user", Email: "other@example.com", Plan: export.Some("free"), Role: "user"}}
			at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			other.Agents = []export.Agent{{ID: "other-agent", Name: "OTHER-USER-DATA", Model: "m", Status: "s", CreatedAt: at, UpdatedAt: at}}
			other.ScheduledTasks = []export.ScheduledTask{{ID: "other-task", Name: "OTHER-USER-DATA", CronSchedule: "* * * * *", CreatedAt: at}}
			other.Workflows = []export.Workflow{{ID: "other-wf", Name: "OTHER-USER-DATA", CreatedAt: at}}
			if err := w.PutDocument(ctx, other); err != nil {
				t.Fatal(err)
			}

			ran := 0
			for _, file := range goldens {
				if strings.HasSuffix(file, ".input.json") {
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := export.Decode(bytes.NewReader(want))
				if err != nil {
					t.Fatal(err)
				}
				if !doc.User.Plan.Valid {
					// The application's plan column is NOT NULL; a null
					// plan is covered by the conformance suite instead.
					t.Logf("%s: not storable in the application's tables (null plan)", filepath.Base(file))
					continue
				}
				if err := w.PutDocument(ctx, doc); err != nil {
					t.Fatalf("%s: %v", filepath.Base(file), err)
				}
				var got bytes.Buffer
				if _, err := export.NewExporter(s).Export(ctx, &got, export.Request{UserID: doc.User.ID, ExportedAt: doc.ExportedAt}); err != nil {
					t.Fatalf("%s: %v", filepath.Base(file), err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("%s: export differs from the golden file (-want +got):\n%s", filepath.Base(file), cmp.Diff(string(want), got.String()))
				}
				schematest.Validate(t, got.Bytes())
				for _, leak := range []string{"SECRET", "OTHER-USER-DATA", "other-"} {
					if bytes.Contains(got.Bytes(), []byte(leak)) {
						t.Errorf("%s: export contains %q", filepath.Base(file), leak)
					}
				}
				ran++
			}
			if ran < 3 {
				t.Fatalf("only %d golden files checked", ran)
			}

			if d == sqlstore.MySQL {
				// The application's MySQL keys are case-insensitive and
				// pad spaces, and without foreign keys (Prisma's
				// relationMode = "prisma") rows may name a user ID that
				// only looks like another's. They must not be exported.
				for i, lookalike := range []string{"OTHER-USER", "Other-User", "other-user ", "othér-user"} {
					a := export.Agent{ID: fmt.Sprintf("lookalike-%d", i), Name: "LOOKALIKE-DATA", Model: "m", Status: "s", CreatedAt: at, UpdatedAt: at}
					if err := w.PutAgent(ctx, lookalike, a); err != nil {
						t.Fatal(err)
					}
				}
				var buf bytes.Buffer
				if _, err := export.NewExporter(s).Export(ctx, &buf, export.Request{UserID: "other-user", ExportedAt: at}); err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(buf.String(), "LOOKALIKE-DATA"); n > 0 {
					t.Errorf("other-user's export holds %d agents of user IDs that only compare equal to theirs under the column's collation", n)
				}
			}

			// NULL in the nullable string columns the contract calls
			// strings (email, model) exports as "".
			mustExec(t, tdb.db, "UPDATE "+quoteTable(tdb, w.Layout.User.Table)+" SET "+quoteIdent(tdb, "email")+" = NULL")
			mustExec(t, tdb.db, "UPDATE "+quoteTable(tdb, w.Layout.Agent.Table)+" SET "+quoteIdent(tdb, "model")+" = NULL")
			doc, err := export.ReadDocument(ctx, s, "other-user", at)
			if err != nil {
				t.Fatal(err)
			}
			if doc.User.Email != "" || doc.Agents[0].Model != "" || doc.Agents[0].Name != "OTHER-USER-DATA" {
				t.Errorf("NULL email and model read back as %q and %q, want \"\"", doc.User.Email, doc.Agents[0].Model)
			}
		})
	}
}

// TestCheckAdvisesTheIndex: on the application's own tables, which have
// only an index on each owner column, Check warns on PostgreSQL and
// SQLite that every section's ordered read sorts, and names the index to
// create; once the named statements have run, it warns no more. (MySQL
// sorts whatever the index: no advice.)
func TestCheckAdvisesTheIndex(t *testing.T) {
	for _, d := range databases {
		t.Run(d.String(), func(t *testing.T) {
			tdb := openDB(t, d)
			s, _ := appTables(t, tdb)
			ctx := ctxFor(t)
			warnings, err := s.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d == sqlstore.MySQL {
				if len(warnings) != 0 {
					t.Fatalf("MySQL warnings: %v", warnings)
				}
				return
			}
			var ops []string
			for _, w := range warnings {
				ops = append(ops, w.Op)
				if !strings.HasPrefix(w.Fix, "CREATE INDEX IF NOT EXISTS ") || !strings.Contains(w.String(), w.Fix) {
					t.Errorf("warning %q: Fix %q is not a CREATE INDEX", w, w.Fix)
				}
				mustExec(t, tdb.db, w.Fix)
			}
			if want := []string{sqlstore.OpAgents, sqlstore.OpScheduledTasks, sqlstore.OpWorkflows}; !cmp.Equal(ops, want) {
				t.Fatalf("warnings for %q, want %q: %v", ops, want, warnings)
			}
			if d == sqlstore.Postgres {
				mustExec(t, tdb.db, "ANALYZE")
			}
			if warnings, err = s.Check(ctx); err != nil || len(warnings) != 0 {
				t.Fatalf("after creating the indexes: %v, %v", warnings, err)
			}
		})
	}
}

func quoteIdent(tdb *testDB, name string) string {
	if tdb.dialect == sqlstore.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func quoteTable(tdb *testDB, table string) string {
	if schema, name, ok := strings.Cut(table, "."); ok {
		return quoteIdent(tdb, schema) + "." + quoteIdent(tdb, name)
	}
	return quoteIdent(tdb, table)
}
