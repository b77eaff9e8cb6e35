package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
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
	warnings, err := store.Check(ctx) // at startup: every table and column is there
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range warnings { // a missing index, say: log it
		log.Print(w)
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

// A section of the host's own, read from its table in the export's
// transaction: the notifications follow workflows in the document.
func ExampleSection() {
	db, _ := sql.Open("sqlite", ":memory:")
	defer db.Close()
	db.SetMaxOpenConns(1) // one in-memory database
	ctx := context.Background()
	sqlstore.CreateTables(ctx, db, sqlstore.SQLite, sqlstore.PrismaLayout())
	db.Exec("INSERT INTO User (id, email, role) VALUES ('u1', 'jane@example.com', 'user')")
	db.Exec(`CREATE TABLE Notification (id TEXT PRIMARY KEY, userId TEXT NOT NULL, title TEXT NOT NULL, readAt DATETIME, createdAt DATETIME NOT NULL)`)
	db.Exec(`INSERT INTO Notification VALUES ('n1', 'u1', 'Welcome', NULL, '2026-03-01T09:00:00Z'), ('n2', 'someone-else', 'Not yours', NULL, '2026-03-01T09:00:00Z')`)

	store, _ := sqlstore.New(db, sqlstore.SQLite)
	exp := export.NewExporter(store)
	err := exp.AddSection(sqlstore.Section("notifications",
		`SELECT id, title, readAt, createdAt FROM Notification WHERE userId = ? ORDER BY createdAt, id COLLATE BINARY`))
	if err != nil {
		log.Fatal(err)
	}
	var out strings.Builder
	res, err := exp.Export(ctx, &out, export.Request{UserID: "u1", ExportedAt: time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		log.Fatal(err)
	}
	doc := out.String()
	fmt.Println(doc[strings.Index(doc, `  "notifications"`):])
	fmt.Println(res.Sections)
	// Output:
	//   "notifications": [
	//     {
	//       "id": "n1",
	//       "title": "Welcome",
	//       "readAt": null,
	//       "createdAt": "2026-03-01T09:00:00.000Z"
	//     }
	//   ]
	// }
	// map[notifications:1]
}
