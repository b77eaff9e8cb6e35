package storetest_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
	"github.com/agentbot/export/storetest"
)

// The suite is only worth something if it fails for stores that break the
// contract. TestSuiteCatchesBrokenStores runs itself again in a child
// process for each store broken in one way, where it runs the suite on
// that store, and checks that the child fails and says why.

const brokenEnv = "STORETEST_BROKEN_KIND"

func TestSuiteCatchesBrokenStores(t *testing.T) {
	if kind := os.Getenv(brokenEnv); kind != "" {
		runBroken(t, kind) // the child process: expected to fail
		return
	}
	cases := []struct{ kind, want string }{
		{"unsorted", "agents in order"},
		{"locale-order", "agents in order"},
		{"live-reads", "is not one point in time"},
		{"ignores-context", "want an error wrapping context.Canceled"},
		{"missing-user-calls-fn", "want an error that is export.ErrUserNotFound"},
		{"single-use-iterator", "two iterations differ"},
		{"notes-of-everyone", "notes = "},
		{"notes-read-live", "want only the one written before the export began"},
		{"owned-of-everyone", "belongs to"},
		{"owned-lookalike", "belongs to"},
		{"owned-without-owner", `has no field "owner"`},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesBrokenStores$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store broken by %s:\n%s", c.kind, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("the suite failed the %s store, but without saying %q:\n%s", c.kind, c.want, out)
			}
		})
	}
}

func runBroken(t *testing.T, kind string) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s := memstore.New()
		return storetest.Harness{Store: &broken{s, kind}, Fixture: fixture{s}, Notes: brokenNotes(kind), Owned: brokenOwned(kind)}
	})
}

// brokenNotes is an added section that reads outside the view: the
// notes of every user, or the user's notes as they are when read rather
// than as they were when the view began.
func brokenNotes(kind string) *storetest.Notes {
	if !strings.HasPrefix(kind, "notes-") {
		return nil
	}
	var mu sync.Mutex
	type note struct{ user, id, body string }
	var all []note
	read := func(ctx context.Context, tx export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			u, err := tx.User(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			mu.Lock()
			notes := slices.Clone(all)
			mu.Unlock()
			slices.SortFunc(notes, func(a, b note) int { return strings.Compare(a.id, b.id) })
			for _, n := range notes {
				if kind == "notes-of-everyone" || n.user == u.ID {
					if !yield(export.Record{{Key: "id", Value: n.id}, {Key: "body", Value: n.body}}, nil) {
						return
					}
				}
			}
		}
	}
	return &storetest.Notes{
		Section: export.Section{Name: "notes", Read: read},
		Put: func(_ context.Context, userID, id, body string) error {
			mu.Lock()
			defer mu.Unlock()
			all = append(all, note{userID, id, body})
			return nil
		},
	}
}

// brokenOwned is an owned section that yields every user's records, or
// those of users whose IDs match case-insensitively, or records that do
// not say whose they are.
func brokenOwned(kind string) []storetest.OwnedSection {
	if !strings.HasPrefix(kind, "owned-") {
		return nil
	}
	var mu sync.Mutex
	type rec struct{ user, id string }
	var all []rec
	read := func(ctx context.Context, tx export.Tx) iter.Seq2[export.Record, error] {
		return func(yield func(export.Record, error) bool) {
			u, err := tx.User(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			mu.Lock()
			recs := slices.Clone(all)
			mu.Unlock()
			for _, r := range recs {
				mine := r.user == u.ID
				switch kind {
				case "owned-of-everyone":
					mine = true
				case "owned-lookalike":
					mine = strings.EqualFold(strings.TrimSpace(r.user), strings.TrimSpace(u.ID))
				}
				if !mine {
					continue
				}
				f := export.Record{{Key: "id", Value: r.id}, {Key: "owner", Value: r.user}}
				if kind == "owned-without-owner" {
					f = f[:1]
				}
				if !yield(f, nil) {
					return
				}
			}
		}
	}
	return []storetest.OwnedSection{{
		Section: export.Section{Name: "files", Read: read},
		Owner:   "owner",
		Put: func(_ context.Context, userID, id string) error {
			mu.Lock()
			defer mu.Unlock()
			all = append(all, rec{userID, id})
			return nil
		},
	}}
}

type fixture struct{ s *memstore.Store }

func (f fixture) PutUser(_ context.Context, u export.User) error { f.s.PutUser(u); return nil }
func (f fixture) DeleteUser(_ context.Context, id string) error  { f.s.DeleteUser(id); return nil }
func (f fixture) PutAgent(_ context.Context, uid string, a export.Agent) error {
	return f.s.PutAgent(uid, a)
}
func (f fixture) PutScheduledTask(_ context.Context, uid string, x export.ScheduledTask) error {
	return f.s.PutScheduledTask(uid, x)
}
func (f fixture) PutWorkflow(_ context.Context, uid string, w export.Workflow) error {
	return f.s.PutWorkflow(uid, w)
}

// broken is a memstore that breaks the contract in one way.
type broken struct {
	s    *memstore.Store
	kind string
}

func (b *broken) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	switch b.kind {
	case "ignores-context":
		ctx = context.Background()
	case "missing-user-calls-fn":
		if err := b.s.View(ctx, id, func(export.Tx) error { return nil }); errors.Is(err, export.ErrUserNotFound) {
			return fn(&brokenTx{b: b, id: id})
		}
	}
	return b.s.View(ctx, id, func(tx export.Tx) error { return fn(&brokenTx{tx, b, id}) })
}

type brokenTx struct {
	export.Tx // nil for a user that does not exist
	b         *broken
	id        string
}

func (t *brokenTx) User(ctx context.Context) (export.User, error) {
	if t.Tx == nil {
		return export.User{}, nil
	}
	if t.b.kind == "ignores-context" {
		ctx = context.Background()
	}
	return t.Tx.User(ctx)
}

func (t *brokenTx) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	if t.Tx == nil {
		return func(func(export.Agent, error) bool) {}
	}
	switch t.b.kind {
	case "ignores-context":
		return t.Tx.Agents(context.Background())
	case "unsorted", "locale-order":
		all := collect(t.Tx.Agents(ctx))
		if t.b.kind == "unsorted" {
			slices.Reverse(all)
		} else {
			slices.SortStableFunc(all, func(a, b export.Agent) int {
				if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
					return c
				}
				return strings.Compare(strings.ToLower(a.ID), strings.ToLower(b.ID))
			})
		}
		return each(all)
	case "live-reads":
		return live(ctx, t, func(tx export.Tx) iter.Seq2[export.Agent, error] { return tx.Agents(ctx) })
	case "single-use-iterator":
		used := false
		inner := t.Tx.Agents(ctx)
		return func(yield func(export.Agent, error) bool) {
			if used {
				return // a second iteration yields nothing
			}
			used = true
			for a, err := range inner {
				if !yield(a, err) {
					return
				}
			}
		}
	}
	return t.Tx.Agents(ctx)
}

func (t *brokenTx) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	switch {
	case t.Tx == nil:
		return func(func(export.ScheduledTask, error) bool) {}
	case t.b.kind == "ignores-context":
		return t.Tx.ScheduledTasks(context.Background())
	case t.b.kind == "live-reads":
		return live(ctx, t, func(tx export.Tx) iter.Seq2[export.ScheduledTask, error] { return tx.ScheduledTasks(ctx) })
	}
	return t.Tx.ScheduledTasks(ctx)
}

func (t *brokenTx) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	switch {
	case t.Tx == nil:
		return func(func(export.Workflow, error) bool) {}
	case t.b.kind == "ignores-context":
		return t.Tx.Workflows(context.Background())
	case t.b.kind == "live-reads":
		return live(ctx, t, func(tx export.Tx) iter.Seq2[export.Workflow, error] { return tx.Workflows(ctx) })
	}
	return t.Tx.Workflows(ctx)
}

// live reads a section from a new view each time, as a store that runs
// each query outside one transaction would.
func live[T any](ctx context.Context, t *brokenTx, section func(export.Tx) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var all []T
		t.b.s.View(ctx, t.id, func(tx export.Tx) error { all = collect(section(tx)); return nil })
		each(all)(yield)
	}
}

func each[T any](all []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, v := range all {
			if !yield(v, nil) {
				return
			}
		}
	}
}

func collect[T any](seq iter.Seq2[T, error]) []T {
	var out []T
	for v, err := range seq {
		if err != nil {
			break
		}
		out = append(out, v)
	}
	return out
}
