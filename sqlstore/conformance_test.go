package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
	"github.com/agentbot/export/sqlstore/pgxrows"
	"github.com/agentbot/export/storetest"
)

// TestConformance runs the store conformance suite on every database,
// with both presets, and on SQLite with every stored form of timestamp.
func TestConformance(t *testing.T) {
	type variant struct {
		name   string
		layout sqlstore.Layout
		times  sqlfixture.TimeForm
		opts   []sqlstore.Option
	}
	for _, d := range databases {
		variants := []variant{
			{"prisma", sqlstore.PrismaLayout(), sqlfixture.ISOText, nil},
			{"snake_case", sqlstore.SnakeCaseLayout(), sqlfixture.ISOText, nil},
			// Read through pgx's own rows on PostgreSQL; elsewhere the
			// reader declines the connection and database/sql reads.
			{"prisma/pgxrows", sqlstore.PrismaLayout(), sqlfixture.ISOText, []sqlstore.Option{pgxrows.Option()}},
		}
		if d == sqlstore.Postgres {
			variants = append(variants, variant{"snake_case/pgxrows", sqlstore.SnakeCaseLayout(), sqlfixture.ISOText, []sqlstore.Option{pgxrows.Option()}})
		}
		if d == sqlstore.SQLite {
			variants = append(variants,
				variant{"prisma/unix-millis", sqlstore.PrismaLayout(), sqlfixture.UnixMillis, nil},
				variant{"prisma/offset-text", sqlstore.PrismaLayout(), sqlfixture.OffsetText, nil},
				variant{"prisma/go-string", sqlstore.PrismaLayout(), sqlfixture.GoString, nil})
		}
		t.Run(d.String(), func(t *testing.T) {
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					tdb := openDB(t, d)
					s, w := tdb.setup(t, v.layout, v.times)
					if v.opts != nil {
						var err error
						if s, err = sqlstore.New(tdb.db, d, append([]sqlstore.Option{sqlstore.WithLayout(s.Layout())}, v.opts...)...); err != nil {
							t.Fatal(err)
						}
					}
					notes := notesTable(t, tdb)
					owned := ownedNotes(tdb, notes)
					storetest.Run(t, func(t *testing.T) storetest.Harness {
						return storetest.Harness{Store: s, Fixture: w, Precision: w.Precision(), Notes: notes, Owned: owned}
					})
				})
			}
		})
	}
}

// notesTable makes a table of the host's own, Note, and the conformance
// suite's added section reading it with sqlstore.Section.
func notesTable(t *testing.T, tdb *testDB) *storetest.Notes {
	table, id, text, query, insert := tdb.schema+`"Note"`, "TEXT", "TEXT", "", ""
	switch tdb.dialect {
	case sqlstore.Postgres:
		query = `SELECT id, body FROM ` + table + ` WHERE "userId" = $1 ORDER BY id COLLATE "C"`
		insert = `INSERT INTO ` + table + ` (id, "userId", body) VALUES ($1, $2, $3)`
	case sqlstore.SQLite:
		query = `SELECT id, body FROM ` + table + ` WHERE "userId" = ? ORDER BY id COLLATE BINARY`
		insert = `INSERT INTO ` + table + ` (id, "userId", body) VALUES (?, ?, ?)`
	case sqlstore.MySQL:
		// IDs are VARBINARY, as this package's DDL makes them: "=" and
		// ORDER BY then compare bytes.
		table, id = tdb.schema+"Note", "VARBINARY(255)"
		query = `SELECT id, body FROM ` + table + ` WHERE userId = ? ORDER BY id`
		insert = `INSERT INTO ` + table + ` (id, userId, body) VALUES (?, ?, ?)`
	}
	create := fmt.Sprintf(`CREATE TABLE %s (id %s PRIMARY KEY, "userId" %s NOT NULL, body %s NOT NULL)`, table, id, id, text)
	if tdb.dialect == sqlstore.MySQL {
		create = strings.ReplaceAll(create, `"`, "")
	}
	mustExec(t, tdb.db, create)
	return &storetest.Notes{
		Section: sqlstore.Section("notes", query),
		Put: func(ctx context.Context, userID, noteID, body string) error {
			_, err := tdb.db.ExecContext(ctx, insert, noteID, userID, body)
			return err
		},
	}
}

// ownedNotes reads the notes table as an owned section, with each note's
// owner.
func ownedNotes(tdb *testDB, notes *storetest.Notes) []storetest.OwnedSection {
	query := `SELECT id, "userId" AS owner FROM ` + tdb.schema + `"Note" WHERE "userId" = $1 ORDER BY id COLLATE "C"`
	switch tdb.dialect {
	case sqlstore.SQLite:
		query = `SELECT id, "userId" AS owner FROM "Note" WHERE "userId" = ? ORDER BY id COLLATE BINARY`
	case sqlstore.MySQL:
		query = `SELECT id, userId AS owner FROM ` + tdb.schema + `Note WHERE userId = ? ORDER BY id`
	}
	return []storetest.OwnedSection{{
		Section: sqlstore.Section("ownedNotes", query),
		Owner:   "owner",
		Put: func(ctx context.Context, userID, id string) error {
			return notes.Put(ctx, userID, id, "")
		},
	}}
}
