package pgxrows_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
	"github.com/agentbot/export/sqlstore/pgxrows"
)

func openPostgres(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := os.Getenv("EXPORT_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("PostgreSQL tests skipped: set EXPORT_TEST_POSTGRES_DSN to a DSN (postgres://user@host:port/db?sslmode=disable) whose user may create schemas; .ci/run does")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "pgxrows_test_" + hex.EncodeToString(b)
	exec := func(s string) {
		t.Helper()
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	return db, schema
}

// TestSameDocumentAsDatabaseSQL: for columns of every type a host's
// tables may use for the fields (text, varchar, uuid, timestamp with and
// without zone and precision, date, ISO text, booleans and integer flags,
// NULLs), the export read through pgx's rows is byte for byte the one read
// through database/sql, and a value that fails one fails the other with
// the same error.
func TestSameDocumentAsDatabaseSQL(t *testing.T) {
	cases := []struct {
		name        string
		agentTypes  [4]string // model, name, createdAt, updatedAt
		taskEnabled string
		taskCreated string
		flowCreated string
		rows        []string // extra statements, with {S} for the schema
		fails       bool
	}{
		{name: "the application's types", agentTypes: [4]string{"TEXT", "TEXT", "TIMESTAMP(3)", "TIMESTAMP(3)"},
			taskEnabled: "BOOLEAN", taskCreated: "TIMESTAMP(3)", flowCreated: "TIMESTAMP(3)"},
		{name: "other types", agentTypes: [4]string{"UUID", "VARCHAR(200)", "TIMESTAMPTZ", "DATE"},
			taskEnabled: "INTEGER", taskCreated: "TEXT", flowCreated: "TIMESTAMP(6)"},
		{name: "an infinite timestamp", agentTypes: [4]string{"TEXT", "TEXT", "TIMESTAMP(3)", "TIMESTAMP(3)"},
			taskEnabled: "BOOLEAN", taskCreated: "TIMESTAMP(3)", flowCreated: "TIMESTAMP(3)",
			rows: []string{`UPDATE {S}."Agent" SET "updatedAt" = 'infinity' WHERE id = 'a000007' AND "userId" = 'u1'`}, fails: true},
		{name: "a flag of 2", agentTypes: [4]string{"TEXT", "TEXT", "TIMESTAMP(3)", "TIMESTAMP(3)"},
			taskEnabled: "INTEGER", taskCreated: "TIMESTAMP(3)", flowCreated: "TIMESTAMP(3)",
			rows: []string{`UPDATE {S}."ScheduledTask" SET enabled = 2 WHERE name LIKE '%5'`}, fails: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, schema := openPostgres(t)
			ddl := []string{
				`CREATE TABLE {S}."User" (id TEXT PRIMARY KEY, email TEXT, name TEXT, plan TEXT, role TEXT NOT NULL, "referralCode" TEXT, "referralCredits" INTEGER NOT NULL)`,
				`CREATE TABLE {S}."Agent" (id VARCHAR(40), "userId" TEXT, name ` + c.agentTypes[1] + `, model ` + c.agentTypes[0] + `, status TEXT, "createdAt" ` + c.agentTypes[2] + `, "updatedAt" ` + c.agentTypes[3] + `)`,
				`CREATE TABLE {S}."ScheduledTask" (id TEXT, "userId" TEXT, name TEXT, "cronSchedule" TEXT, enabled ` + c.taskEnabled + `, "createdAt" ` + c.taskCreated + `)`,
				`CREATE TABLE {S}."Workflow" (id TEXT, "userId" TEXT, name TEXT, enabled BOOLEAN, "createdAt" ` + c.flowCreated + `)`,
				`INSERT INTO {S}."User" VALUES ('u1', NULL, 'Ünïcode "name"', NULL, 'user', 'REF', 3), ('u2', 'u2@example.com', NULL, 'free', 'user', NULL, 0)`,
			}
			agentID, model := "'a' || lpad(i::text, 6, '0')", "'gpt-4o'"
			if c.agentTypes[0] == "UUID" {
				model = "('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid"
			}
			created := "timestamp '2026-03-01 09:00:00.123456' + i * interval '1 minute 1.001 second'"
			if c.taskCreated == "TEXT" {
				created = "to_char(" + created + ", 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
			}
			flag := "i % 2 = 0"
			if c.taskEnabled == "INTEGER" {
				flag = "i % 2"
			}
			ddl = append(ddl,
				`INSERT INTO {S}."Agent" SELECT `+agentID+`, u, 'agent <'||i||'> \ "q"'||chr(10)||'é', CASE WHEN i % 4 = 1 THEN NULL ELSE `+model+` END, 'running', `+
					`timestamp '2026-03-01 09:00:00.123456' + (i / 3) * interval '1 second', timestamp '2026-03-02 10:00:00.999999' + i * interval '1 hour' `+
					`FROM generate_series(1, 3000) i, unnest(ARRAY['u1', 'u2']) u`,
				`INSERT INTO {S}."ScheduledTask" SELECT 't' || i, u, 'task ' || i, '0 9 * * *', `+flag+`, `+created+` FROM generate_series(1, 3000) i, unnest(ARRAY['u1', 'u2']) u`,
				`INSERT INTO {S}."Workflow" SELECT 'w' || i, u, CASE WHEN i % 5 = 0 THEN NULL ELSE 'flow ' || i END, i % 3 = 0, `+
					`timestamp '2026-03-01 09:00:00.123456' + i * interval '1 second' FROM generate_series(1, 3000) i, unnest(ARRAY['u1', 'u2']) u`,
			)
			for _, s := range append(ddl, c.rows...) {
				if _, err := db.Exec(strings.ReplaceAll(s, "{S}.", schema+".")); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			l := sqlstore.PrismaLayout()
			for _, tbl := range []*string{&l.User.Table, &l.Agent.Table, &l.ScheduledTask.Table, &l.Workflow.Table} {
				*tbl = schema + "." + *tbl
			}
			export1 := func(opts ...sqlstore.Option) (string, error) {
				s, err := sqlstore.New(db, sqlstore.Postgres, append([]sqlstore.Option{sqlstore.WithLayout(l)}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				_, err = export.NewExporter(s).Export(context.Background(), &buf, export.Request{UserID: "u1", ExportedAt: time.Unix(0, 0)})
				return buf.String(), err
			}
			want, wantErr := export1()
			got, gotErr := export1(pgxrows.Option())
			if c.fails {
				if wantErr == nil || gotErr == nil || wantErr.Error() != gotErr.Error() {
					t.Fatalf("errors differ:\ndatabase/sql: %v\npgxrows:      %v", wantErr, gotErr)
				}
				return
			}
			if wantErr != nil || gotErr != nil {
				t.Fatalf("database/sql: %v; pgxrows: %v", wantErr, gotErr)
			}
			if got != want {
				t.Fatalf("the documents differ (%d and %d bytes)", len(want), len(got))
			}
			doc, err := export.Decode(strings.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			nulls := 0
			for _, a := range doc.Agents {
				if a.Model == "" {
					nulls++
				}
			}
			if len(doc.Agents) != 3000 || nulls != 750 {
				t.Fatalf("%d agents, %d of them with a NULL model; want 3000 and 750", len(doc.Agents), nulls)
			}
		})
	}
}

// TestOtherDriversReadAsBefore: on a connection of another driver the
// reader declines, and the store reads through database/sql.
func TestOtherDriversReadAsBefore(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := sqlstore.CreateTables(ctx, db, sqlstore.SQLite, sqlstore.PrismaLayout()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO User (id, email, role) VALUES ('u1', 'a@b', 'user')"); err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.New(db, sqlstore.SQLite, pgxrows.Option())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := export.ReadDocument(ctx, s, "u1", time.Unix(0, 0))
	if err != nil || doc.User.Email != "a@b" {
		t.Fatalf("%+v, %v", doc, err)
	}
}

// TestImportsOnlyPgx: the package brings a host pgx and nothing else.
func TestImportsOnlyPgx(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/agentbot/export/sqlstore/pgxrows").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "github.com/agentbot/export") && !strings.Contains(p, "/internal/") && !strings.Contains(p, "/examples/"):
		case strings.HasPrefix(p, "github.com/jackc/"), strings.HasPrefix(p, "golang.org/x/text/"):
		default:
			t.Errorf("pgxrows depends on %s", p)
		}
	}
}
