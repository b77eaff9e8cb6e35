package memstore_test

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
	"github.com/agentbot/export/storetest"
)

// fixture adapts memstore's context-free writers to storetest.Fixture.
type fixture struct{ s *memstore.Store }

func (f fixture) PutUser(_ context.Context, u export.User) error { f.s.PutUser(u); return nil }
func (f fixture) DeleteUser(_ context.Context, id string) error  { f.s.DeleteUser(id); return nil }
func (f fixture) PutAgent(_ context.Context, uid string, a export.Agent) error {
	return f.s.PutAgent(uid, a)
}
func (f fixture) PutScheduledTask(_ context.Context, uid string, t export.ScheduledTask) error {
	return f.s.PutScheduledTask(uid, t)
}
func (f fixture) PutWorkflow(_ context.Context, uid string, w export.Workflow) error {
	return f.s.PutWorkflow(uid, w)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s := memstore.New()
		return storetest.Harness{Store: s, Fixture: fixture{s}, Notes: notesOn(s), Owned: []storetest.OwnedSection{filesOn(s)}}
	})
}

// filesOn is an owned section on memstore: each record is an ID and its
// owner's.
func filesOn(s *memstore.Store) storetest.OwnedSection {
	var mu sync.Mutex
	files := map[string][]export.Record{}
	return storetest.OwnedSection{
		Section: memstore.Section("files"),
		Owner:   "owner",
		Put: func(_ context.Context, userID, id string) error {
			mu.Lock()
			defer mu.Unlock()
			files[userID] = append(files[userID], export.Record{{Key: "id", Value: id}, {Key: "owner", Value: userID}})
			return s.SetSection(userID, "files", files[userID])
		},
	}
}

// notesOn is the conformance suite's added section on memstore: the
// notes are kept per user, by ID, and stored whole with SetSection.
func notesOn(s *memstore.Store) *storetest.Notes {
	var mu sync.Mutex
	notes := map[string]map[string]string{} // user ID -> note ID -> body
	return &storetest.Notes{
		Section: memstore.Section("notes"),
		Put: func(_ context.Context, userID, id, body string) error {
			mu.Lock()
			defer mu.Unlock()
			if notes[userID] == nil {
				notes[userID] = map[string]string{}
			}
			notes[userID][id] = body
			var recs []export.Record
			for _, k := range slices.Sorted(maps.Keys(notes[userID])) {
				recs = append(recs, export.Record{{Key: "id", Value: k}, {Key: "body", Value: notes[userID][k]}})
			}
			return s.SetSection(userID, "notes", recs)
		},
	}
}

func TestPutRecordForMissingUser(t *testing.T) {
	s := memstore.New()
	if err := s.PutAgent("nobody", export.Agent{ID: "a"}); err != export.ErrUserNotFound {
		t.Fatalf("PutAgent for a missing user = %v, want ErrUserNotFound", err)
	}
}

func TestPutReplacesByIDAndDeletes(t *testing.T) {
	s := memstore.New()
	s.PutUser(export.User{ID: "u"})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.PutAgent("u", export.Agent{ID: "a", Name: "old", CreatedAt: t0})
	s.PutAgent("u", export.Agent{ID: "b", CreatedAt: t0.Add(time.Second)})
	// Same ID, new time: replaced and moved, not duplicated.
	s.PutAgent("u", export.Agent{ID: "a", Name: "new", CreatedAt: t0.Add(time.Hour)})
	doc, err := export.ReadDocument(context.Background(), s, "u", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Agents) != 2 || doc.Agents[0].ID != "b" || doc.Agents[1].Name != "new" {
		t.Fatalf("agents = %+v", doc.Agents)
	}
	if !s.DeleteAgent("u", "a") || s.DeleteAgent("u", "a") {
		t.Fatal("DeleteAgent should report true once, then false")
	}
	// PutUser keeps the records of an existing user.
	s.PutUser(export.User{ID: "u", Email: "changed"})
	doc, _ = export.ReadDocument(context.Background(), s, "u", t0)
	if len(doc.Agents) != 1 || doc.User.Email != "changed" {
		t.Fatalf("after PutUser: %+v", doc)
	}
}

func TestBatchIsAtomic(t *testing.T) {
	s := memstore.New()
	s.PutUser(export.User{ID: "u"})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.PutAgent("u", export.Agent{ID: "x", CreatedAt: t0})
	ctx := context.Background()
	err := s.View(ctx, "u", func(tx export.Tx) error {
		// Move x from agents to workflows while the view is open.
		s.Update("u", func(b *memstore.Batch) {
			b.DeleteAgent("x")
			b.PutWorkflow(export.Workflow{ID: "x", CreatedAt: t0})
		})
		n := 0
		for _, err := range tx.Agents(ctx) {
			if err != nil {
				return err
			}
			n++
		}
		for _, err := range tx.Workflows(ctx) {
			if err != nil {
				return err
			}
			n += 10
		}
		if n != 1 {
			t.Errorf("the open view saw the batch: n = %d, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := export.ReadDocument(ctx, s, "u", t0)
	if len(doc.Agents) != 0 || len(doc.Workflows) != 1 {
		t.Fatalf("after the batch: %d agents, %d workflows", len(doc.Agents), len(doc.Workflows))
	}
}

// TestBatchMatchesModel applies random batches of puts and deletes and
// compares the store with a plain map sorted afresh each time.
func TestBatchMatchesModel(t *testing.T) {
	s := memstore.New()
	s.PutUser(export.User{ID: "u"})
	model := map[string]export.Workflow{}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 200 {
		err := s.Update("u", func(b *memstore.Batch) {
			for range rng.IntN(20) {
				id := "w" + strconv.Itoa(rng.IntN(40))
				if rng.IntN(3) == 0 {
					_, existed := model[id]
					if got := b.DeleteWorkflow(id); got != existed {
						t.Fatalf("round %d: DeleteWorkflow(%s) = %v, want %v", round, id, got, existed)
					}
					delete(model, id)
					continue
				}
				w := export.Workflow{ID: id, Name: strconv.Itoa(round), CreatedAt: t0.Add(time.Duration(rng.IntN(10)) * time.Nanosecond)}
				b.PutWorkflow(w)
				model[id] = w
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.SortedFunc(maps.Values(model), func(a, b export.Workflow) int {
			return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID)
		})
		doc, err := export.ReadDocument(context.Background(), s, "u", t0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(doc.Workflows, want) {
			t.Fatalf("round %d:\n got %v\nwant %v", round, doc.Workflows, want)
		}
	}
}

// TestBulkLoadInOneUpdate loads 100,000 records per section in one batch: the merge is
// linear, where one Put at a time would take minutes.
func TestBulkLoadInOneUpdate(t *testing.T) {
	s := memstore.New()
	s.PutUser(export.User{ID: "u"})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	err := s.Update("u", func(b *memstore.Batch) {
		for i := n - 1; i >= 0; i-- { // newest first: the merge still sorts
			at := t0.Add(time.Duration(i) * time.Second)
			id := strconv.Itoa(i)
			b.PutAgent(export.Agent{ID: id, CreatedAt: at, UpdatedAt: at})
			b.PutScheduledTask(export.ScheduledTask{ID: id, CreatedAt: at})
			b.PutWorkflow(export.Workflow{ID: id, CreatedAt: at})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := export.ReadDocument(context.Background(), s, "u", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Agents) != n || doc.Agents[0].ID != "0" || doc.Workflows[n-1].ID != strconv.Itoa(n-1) {
		t.Fatalf("loaded %d agents, first %s", len(doc.Agents), doc.Agents[0].ID)
	}
}
