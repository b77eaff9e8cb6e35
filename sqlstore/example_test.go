package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the host's driver; sqlstore imports none

	"github.com/agentbot/export"
	"github.com/agentbot/export/sqlstore"
)

// An export from an SQLite file that has the application's tables.
func Example() {
	dir, _ := os.MkdirTemp("", "sqlstore-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// A new application creates the tables (an existing one has them).
	if err := sqlstore.CreateTables(ctx, db, sqlstore.SQLite, sqlstore.PrismaLayout()); err != nil {
		log.Fatal(err)
	}
	db.Exec("INSERT INTO User (id, email, name, plan, role) VALUES ('user_abc123', 'user@example.com', 'Jane Doe', 'solo', 'user')")
	db.Exec(`INSERT INTO Agent (id, userId, name, model, status, createdAt, updatedAt)
		VALUES ('agent_xyz', 'user_abc123', 'my-agent', 'gpt-4o', 'running', '2026-03-01 00:00:00', 1775001600000)`)

	store, err := sqlstore.New(db, sqlstore.SQLite) // PrismaLayout is the default
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Check(ctx); err != nil { // at startup: every table and column is there
		log.Fatal(err)
	}
	doc, err := export.ReadDocument(ctx, store, "user_abc123", time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	a := doc.Agents[0]
	fmt.Println(doc.User.Name.String, a.Name, export.FormatTime(a.CreatedAt), export.FormatTime(a.UpdatedAt))
	// Output: Jane Doe my-agent 2026-03-01T00:00:00.000Z 2026-04-01T00:00:00.000Z
}

// A host whose tables follow its own naming describes them once.
func ExampleWithLayout() {
	db, _ := sql.Open("sqlite", ":memory:") // the host's pool
	defer db.Close()

	l := sqlstore.SnakeCaseLayout()
	l.User.Table = "accounts"
	l.User.ReferralCredits = "credits"
	l.Agent.Table = "app.ai_agents" // schema-qualified
	_, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.WithLayout(l))
	fmt.Println(err)

	// Names come from configuration: anything but a plain identifier is refused.
	l.Agent.Table = "ai_agents; DROP TABLE accounts"
	_, err = sqlstore.New(db, sqlstore.Postgres, sqlstore.WithLayout(l))
	fmt.Println(err)
	// Output:
	// <nil>
	// sqlstore: layout Agent.Table: "ai_agents; DROP TABLE accounts" is not a plain identifier (letters, digits and _, not starting with a digit, at most 63 bytes)
}
