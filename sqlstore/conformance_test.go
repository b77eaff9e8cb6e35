package sqlstore_test

import (
	"testing"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
	"github.com/agentbot/export/storetest"
)

// TestConformance runs the store conformance suite on every database,
// with both presets, and on SQLite with every stored form of timestamp.
func TestConformance(t *testing.T) {
	type variant struct {
		name   string
		layout sqlstore.Layout
		times  sqlfixture.TimeForm
	}
	for _, d := range databases {
		variants := []variant{
			{"prisma", sqlstore.PrismaLayout(), sqlfixture.ISOText},
			{"snake_case", sqlstore.SnakeCaseLayout(), sqlfixture.ISOText},
		}
		if d == sqlstore.SQLite {
			variants = append(variants,
				variant{"prisma/unix-millis", sqlstore.PrismaLayout(), sqlfixture.UnixMillis},
				variant{"prisma/offset-text", sqlstore.PrismaLayout(), sqlfixture.OffsetText},
				variant{"prisma/go-string", sqlstore.PrismaLayout(), sqlfixture.GoString})
		}
		t.Run(d.String(), func(t *testing.T) {
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					tdb := openDB(t, d)
					s, w := tdb.setup(t, v.layout, v.times)
					storetest.Run(t, func(t *testing.T) storetest.Harness {
						return storetest.Harness{Store: s, Fixture: w, Precision: w.Precision()}
					})
				})
			}
		})
	}
}
