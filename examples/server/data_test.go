package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbot/export"
)

// TestDemoDefaultFile: with no flags the demo creates its SQLite file in
// the OS temp directory, says where, and on the next start reuses it
// without creating or seeding anything again.
func TestDemoDefaultFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // os.TempDir reads it
	path := filepath.Join(tmp, "export-demo.db")
	for i, wantNotes := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		out := &syncBuffer{}
		go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, out, ready) }()
		var addr string
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("start %d: %v\n%s", i, err, out.String())
		}
		text := out.String()
		for _, want := range []string{"SQLite file " + path, "open http://" + addr + "/", `sign in as "demo-jane"`} {
			if !strings.Contains(text, want) {
				t.Errorf("start %d: output lacks %q:\n%s", i, want, text)
			}
		}
		if got := strings.Contains(text, "created the prisma tables") && strings.Contains(text, "seeded the demo users"); got != wantNotes {
			t.Errorf("start %d: created and seeded = %v, want %v:\n%s", i, got, wantNotes, text)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var users int
	if err := db.QueryRow("SELECT count(*) FROM User").Scan(&users); err != nil || users != 2 {
		t.Fatalf("after two starts the file holds %d users (%v), want the 2 demo users once", users, err)
	}
}

// TestDemoServesExistingApplicationFile: an SQLite file that already has
// the application's tables (with columns the export must not read) and
// users is served as it is: nothing created, nothing seeded, and the
// download is that user's data, secrets excluded.
func TestDemoServesExistingApplicationFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE "User" ("id" TEXT NOT NULL PRIMARY KEY, "email" TEXT, "name" TEXT, "plan" TEXT NOT NULL DEFAULT 'free',
			"role" TEXT NOT NULL DEFAULT 'user', "referralCode" TEXT, "referralCredits" INTEGER NOT NULL DEFAULT 0, "passwordHash" TEXT)`,
		`CREATE TABLE "Agent" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "name" TEXT NOT NULL, "model" TEXT,
			"status" TEXT NOT NULL DEFAULT 'pending', "config" JSONB, "createdAt" DATETIME NOT NULL, "updatedAt" DATETIME NOT NULL)`,
		`CREATE TABLE "ScheduledTask" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "name" TEXT NOT NULL,
			"cronSchedule" TEXT NOT NULL, "enabled" BOOLEAN NOT NULL DEFAULT true, "createdAt" DATETIME NOT NULL)`,
		`CREATE TABLE "Workflow" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "name" TEXT NOT NULL,
			"enabled" BOOLEAN NOT NULL DEFAULT true, "createdAt" DATETIME NOT NULL)`,
		`INSERT INTO "User" VALUES ('clx0existing00000000000001', 'ada@example.com', 'Ada', 'label', 'admin', NULL, 5, 'SECRET-hash')`,
		`INSERT INTO "User" VALUES ('clx0existing00000000000002', 'bob@example.com', NULL, 'free', 'user', NULL, 0, 'SECRET-hash')`,
		`INSERT INTO "Agent" VALUES ('clx0agent', 'clx0existing00000000000001', 'scout', NULL, 'running', '{"key":"SECRET-key"}', 1772323200000, 1772409600123)`,
		`INSERT INTO "Agent" VALUES ('clx0bobagent', 'clx0existing00000000000002', 'BOB-DATA', 'm', 'running', NULL, 1772323200000, 1772323200000)`,
		`INSERT INTO "ScheduledTask" VALUES ('clx0task', 'clx0existing00000000000001', 'nightly', '0 2 * * *', 0, '2026-03-02T00:00:00.000Z')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	base, output := startServerOutput(t, "-sqlite", path)
	if strings.Contains(output, "created the ") || strings.Contains(output, "seeded the ") {
		t.Errorf("the demo altered an existing application database:\n%s", output)
	}
	if !strings.Contains(output, "warning: sqlstore: reading agents: no index serves the ordered read") {
		t.Errorf("the demo does not pass on Check's advice on a file without the export's index:\n%s", output)
	}
	if !strings.Contains(output, `sign in as "clx0existing00000000000001"`) {
		t.Errorf("output does not offer an existing user:\n%s", output)
	}
	c := newClient(t)
	if got := statusOf(t)(c.PostForm(base+"/login", url.Values{"user": {"clx0existing00000000000001"}})); got != http.StatusOK {
		t.Fatalf("login: %d", got)
	}
	resp, err := c.Get(base + "/api/export")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	doc, err := export.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	doc.ExportedAt = doc.ExportedAt.UTC()
	want := `{
  "exportedAt": "` + export.FormatTime(doc.ExportedAt) + `",
  "version": "1.0",
  "user": {
    "id": "clx0existing00000000000001",
    "email": "ada@example.com",
    "name": "Ada",
    "plan": "label",
    "role": "admin",
    "referralCode": null,
    "referralCredits": 5
  },
  "agents": [
    {
      "id": "clx0agent",
      "name": "scout",
      "model": "",
      "status": "running",
      "createdAt": "2026-03-01T00:00:00.000Z",
      "updatedAt": "2026-03-02T00:00:00.123Z"
    }
  ],
  "scheduledTasks": [
    {
      "id": "clx0task",
      "name": "nightly",
      "cronSchedule": "0 2 * * *",
      "enabled": false,
      "createdAt": "2026-03-02T00:00:00.000Z"
    }
  ],
  "workflows": []
}`
	if string(body) != want {
		t.Fatalf("export:\n%s\nwant:\n%s", body, want)
	}
	for _, leak := range []string{"SECRET", "BOB-DATA"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the export holds %q", leak)
		}
	}
}

func TestDemoSnakeCaseLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snake.db")
	base, output := startServerOutput(t, "-sqlite", path, "-layout", "snake_case")
	if !strings.Contains(output, "created the snake_case tables") {
		t.Errorf("output:\n%s", output)
	}
	c := newClient(t)
	statusOf(t)(c.PostForm(base+"/login", url.Values{"user": {demoUserID}}))
	if got := statusOf(t)(c.Get(base + "/api/export")); got != http.StatusOK {
		t.Fatalf("export: %d", got)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM scheduled_tasks").Scan(&n); err != nil || n != 2 {
		t.Fatalf("scheduled_tasks holds %d rows (%v)", n, err)
	}
}

func TestDemoFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-sqlite", filepath.Join(dir, "a.db"), "-postgres", "postgres://localhost/x"},
		{"-layout", "camelCase"},
		{"-sqlite", filepath.Join(dir, "a.db"), "extra"},
		{"-sqlite", filepath.Join(dir, "no-such-dir", "a.db")},
		{"-postgres", "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"},
		{"-nope"},
	} {
		err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, nil)
		if err == nil {
			t.Errorf("run(%q) started", args)
		}
	}
}

// TestDemoOnServers runs the demo on PostgreSQL and MySQL when their DSNs
// are set (as in CI), in the database's own schema: tables are created
// once and the demo users seeded once, then reused.
func TestDemoOnServers(t *testing.T) {
	for _, c := range []struct{ flag, env string }{
		{"-postgres", "EXPORT_TEST_POSTGRES_DSN"},
		{"-mysql", "EXPORT_TEST_MYSQL_DSN"},
	} {
		t.Run(strings.TrimPrefix(c.flag, "-"), func(t *testing.T) {
			dsn := os.Getenv(c.env)
			if dsn == "" {
				t.Skipf("skipped: set %s to run the demo on that server; .ci/run does", c.env)
			}
			// snake_case tables in the database's default schema (the
			// tests of package sqlstore work in schemas of their own);
			// the second start reuses them.
			for range 2 {
				base := startServer(t, c.flag, dsn, "-layout", "snake_case")
				cl := newClient(t)
				statusOf(t)(cl.PostForm(base+"/login", url.Values{"user": {demoUserID}}))
				resp, err := cl.Get(base + "/api/export")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				doc, err := export.Decode(bytes.NewReader(body))
				if err != nil || len(doc.Agents) != 2 || doc.Workflows[1].Name != `escalation <urgent> & "quoted"` {
					t.Fatalf("export: %d %v %s", resp.StatusCode, err, body)
				}
			}
		})
	}
}
