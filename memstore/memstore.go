// Package memstore is an in-memory export.Store, for tests, demos and
// hosts that keep their data in memory.
//
// Every write replaces the user's data with a new immutable snapshot
// (copy on write), and a view holds on to the snapshot it started with, so
// a view is consistent however much other goroutines write meanwhile, and
// reading never blocks writing. Writes cost O(records of that user); that
// is the price of cheap, consistent reads.
package memstore

import (
	"context"
	"iter"
	"slices"
	"sync"

	"github.com/agentbot/export"
)

// Store is an in-memory export.Store. The zero value is not usable; call
// New. It is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	users map[string]*snapshot
}

var _ export.Store = (*Store)(nil)

// snapshot is one user's data at one moment. It is never modified after
// it is published; writers build a new one.
type snapshot struct {
	user           export.User
	agents         []export.Agent
	scheduledTasks []export.ScheduledTask
	workflows      []export.Workflow
}

// New returns an empty Store.
func New() *Store { return &Store{users: make(map[string]*snapshot)} }

// PutUser adds the user, or replaces the user's fields and keeps the
// records of an existing one.
func (s *Store) PutUser(u export.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := &snapshot{user: u}
	if old := s.users[u.ID]; old != nil {
		next.agents, next.scheduledTasks, next.workflows = old.agents, old.scheduledTasks, old.workflows
	}
	s.users[u.ID] = next
}

// DeleteUser removes the user and all the user's records. It reports
// whether the user existed.
func (s *Store) DeleteUser(userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.users[userID]
	delete(s.users, userID)
	return ok
}

// PutAgent adds the agent to the user's, or replaces the one with the
// same ID. It returns export.ErrUserNotFound if the user does not exist.
func (s *Store) PutAgent(userID string, a export.Agent) error {
	return s.Update(userID, func(b *Batch) { b.PutAgent(a) })
}

// PutScheduledTask adds or replaces one of the user's scheduled tasks.
func (s *Store) PutScheduledTask(userID string, t export.ScheduledTask) error {
	return s.Update(userID, func(b *Batch) { b.PutScheduledTask(t) })
}

// PutWorkflow adds or replaces one of the user's workflows.
func (s *Store) PutWorkflow(userID string, w export.Workflow) error {
	return s.Update(userID, func(b *Batch) { b.PutWorkflow(w) })
}

// DeleteAgent removes one of the user's agents; it reports whether it existed.
func (s *Store) DeleteAgent(userID, id string) (found bool) {
	s.Update(userID, func(b *Batch) { found = b.DeleteAgent(id) })
	return found
}

// DeleteScheduledTask removes one of the user's scheduled tasks; it
// reports whether it existed.
func (s *Store) DeleteScheduledTask(userID, id string) (found bool) {
	s.Update(userID, func(b *Batch) { found = b.DeleteScheduledTask(id) })
	return found
}

// DeleteWorkflow removes one of the user's workflows; it reports whether
// it existed.
func (s *Store) DeleteWorkflow(userID, id string) (found bool) {
	s.Update(userID, func(b *Batch) { found = b.DeleteWorkflow(id) })
	return found
}

// Update runs fn on a private copy of the user's data, inside which the
// methods of the Batch change that copy, and publishes the result
// at once: a view sees all of fn's changes or none. It returns
// export.ErrUserNotFound if the user does not exist.
func (s *Store) Update(userID string, fn func(tx *Batch)) error {
	return s.update(userID, func(n *snapshot) { fn(&Batch{n: n}) })
}

// Batch is a set of changes to one user's records that Update publishes
// together.
type Batch struct{ n *snapshot }

// PutAgent is Store.PutAgent within a batch.
func (b *Batch) PutAgent(a export.Agent) {
	b.n.agents = put(b.n.agents, a, func(a export.Agent) string { return a.ID }, agentCmp)
}

// PutScheduledTask is Store.PutScheduledTask within a batch.
func (b *Batch) PutScheduledTask(t export.ScheduledTask) {
	b.n.scheduledTasks = put(b.n.scheduledTasks, t, func(t export.ScheduledTask) string { return t.ID }, taskCmp)
}

// PutWorkflow is Store.PutWorkflow within a batch.
func (b *Batch) PutWorkflow(w export.Workflow) {
	b.n.workflows = put(b.n.workflows, w, func(w export.Workflow) string { return w.ID }, workflowCmp)
}

// DeleteAgent is Store.DeleteAgent within a batch.
func (b *Batch) DeleteAgent(id string) bool {
	var ok bool
	b.n.agents, ok = remove(b.n.agents, func(a export.Agent) bool { return a.ID == id })
	return ok
}

// DeleteScheduledTask is Store.DeleteScheduledTask within a batch.
func (b *Batch) DeleteScheduledTask(id string) bool {
	var ok bool
	b.n.scheduledTasks, ok = remove(b.n.scheduledTasks, func(t export.ScheduledTask) bool { return t.ID == id })
	return ok
}

// DeleteWorkflow is Store.DeleteWorkflow within a batch.
func (b *Batch) DeleteWorkflow(id string) bool {
	var ok bool
	b.n.workflows, ok = remove(b.n.workflows, func(w export.Workflow) bool { return w.ID == id })
	return ok
}

// update publishes a changed copy of the user's snapshot. The slices of
// the copy are shared with the old snapshot until put or remove replaces
// them with new ones, so published snapshots are never written.
func (s *Store) update(userID string, fn func(*snapshot)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[userID]
	if old == nil {
		return export.ErrUserNotFound
	}
	next := *old
	fn(&next)
	s.users[userID] = &next
	return nil
}

// put returns a new slice: s without any element of v's ID, plus v in
// its sorted place. It never writes into s.
func put[T any](s []T, v T, id func(T) string, cmp func(a, b T) int) []T {
	out := make([]T, 0, len(s)+1)
	for _, e := range s {
		if id(e) != id(v) {
			out = append(out, e)
		}
	}
	i, _ := slices.BinarySearchFunc(out, v, cmp)
	return slices.Insert(out, i, v)
}

// remove returns a new slice without the elements match selects.
func remove[T any](s []T, match func(T) bool) ([]T, bool) {
	i := slices.IndexFunc(s, match)
	if i < 0 {
		return s, false
	}
	out := make([]T, 0, len(s)-1)
	out = append(out, s[:i]...)
	for _, e := range s[i+1:] {
		if !match(e) {
			out = append(out, e)
		}
	}
	return out, true
}

func agentCmp(a, b export.Agent) int { return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID) }
func taskCmp(a, b export.ScheduledTask) int {
	return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID)
}
func workflowCmp(a, b export.Workflow) int {
	return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID)
}

// View implements export.Store.
func (s *Store) View(ctx context.Context, userID string, fn func(export.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	snap := s.users[userID]
	s.mu.RUnlock()
	if snap == nil {
		return export.ErrUserNotFound
	}
	v := &view{snap: snap}
	defer func() { v.snap = nil }() // a Tx used after View returns fails
	return fn(v)
}

// view is the export.Tx of one snapshot.
type view struct{ snap *snapshot }

func (v *view) User(ctx context.Context) (export.User, error) {
	if v.snap == nil {
		return export.User{}, errReleased
	}
	if err := ctx.Err(); err != nil {
		return export.User{}, err
	}
	return v.snap.user, nil
}

func (v *view) Agents(ctx context.Context) iter.Seq2[export.Agent, error] {
	return records(ctx, v, func(s *snapshot) []export.Agent { return s.agents })
}

func (v *view) ScheduledTasks(ctx context.Context) iter.Seq2[export.ScheduledTask, error] {
	return records(ctx, v, func(s *snapshot) []export.ScheduledTask { return s.scheduledTasks })
}

func (v *view) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	return records(ctx, v, func(s *snapshot) []export.Workflow { return s.workflows })
}

// checkEvery is how many records an iterator yields between looks at its
// context: often enough to stop promptly, rarely enough to cost nothing.
const checkEvery = 64

func records[T any](ctx context.Context, v *view, section func(*snapshot) []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if v.snap == nil {
			yield(zero, errReleased)
			return
		}
		for i, rec := range section(v.snap) {
			if i%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					yield(zero, err)
					return
				}
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
}

var errReleased = errorString("memstore: view used after View returned")

type errorString string

func (e errorString) Error() string { return string(e) }
