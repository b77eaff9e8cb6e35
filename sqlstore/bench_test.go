package sqlstore_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// BenchmarkExport exports one user with 1,000 records per section from
// each database (PostgreSQL and MySQL when their DSNs are set), through
// the streaming exporter into io.Discard, and, from SQLite, one with
// 20,000 per section read packed past 1,024 rows (packed.go) and read per
// column throughout, to compare:
//
//	go test ./sqlstore -run '^$' -bench Export -benchmem
func BenchmarkExport(b *testing.B) {
	for _, d := range databases {
		b.Run(d.String(), func(b *testing.B) {
			benchExport(b, d, 1000, true)
		})
	}
	for _, packed := range []bool{true, false} {
		name := "sqlite/20000/packed"
		if !packed {
			name = "sqlite/20000/per-column"
		}
		b.Run(name, func(b *testing.B) {
			benchExport(b, sqlstore.SQLite, 20000, packed)
		})
	}
}

func benchExport(b *testing.B, d sqlstore.Dialect, perSection int, packed bool) {
	tdb := openDB(b, d)
	s, w := tdb.setup(b, sqlstore.PrismaLayout(), sqlfixture.ISOText)
	sqlstore.SetPacking(s, packed)
	seed(b, tdb, w, "bench", perSection)
	exp := export.NewExporter(s)
	ctx := context.Background()
	req := export.Request{UserID: "bench", ExportedAt: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		res, err := exp.Export(ctx, io.Discard, req)
		if err != nil {
			b.Fatal(err)
		}
		bytes = res.Bytes
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(3*perSection*b.N)/b.Elapsed().Seconds(), "records/s")
}

// seed writes a user with n records per section in one transaction.
func seed(b *testing.B, tdb *testDB, w *sqlfixture.Writer, userID string, n int) {
	b.Helper()
	ctx := ctxFor(b)
	tx, err := tdb.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	in := *w
	in.Exec = tx
	if err := in.PutUser(ctx, export.User{ID: userID, Email: "bench@example.com", Name: export.Some("Bench"), Role: "user"}); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		c := at.Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("c%024d", i)
		if err := in.PutAgent(ctx, userID, export.Agent{ID: "a" + id, Name: "agent name", Model: "gpt-4o", Status: "running", CreatedAt: c, UpdatedAt: c}); err != nil {
			b.Fatal(err)
		}
		if err := in.PutScheduledTask(ctx, userID, export.ScheduledTask{ID: "t" + id, Name: "daily report", CronSchedule: "0 9 * * *", Enabled: true, CreatedAt: c}); err != nil {
			b.Fatal(err)
		}
		if err := in.PutWorkflow(ctx, userID, export.Workflow{ID: "w" + id, Name: "onboarding flow", Enabled: i%2 == 0, CreatedAt: c}); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
