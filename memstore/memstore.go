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
	"fmt"
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
	sections       map[string][]export.Record // added by the host, by name
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
		next.agents, next.scheduledTasks, next.workflows, next.sections = old.agents, old.scheduledTasks, old.workflows, old.sections
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

// Update runs fn, whose calls on the Batch are published together when
// it returns: a view sees all of them or none. Changes are merged in one
// pass, O(records + changes·log changes), so loading many records is
// cheap in one Update and quadratic one Put at a time. fn runs under the
// store's write lock and must not call the Store's methods. Update
// returns export.ErrUserNotFound if the user does not exist.
func (s *Store) Update(userID string, fn func(b *Batch)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[userID]
	if old == nil {
		return export.ErrUserNotFound
	}
	b := &Batch{old: old}
	fn(b)
	next := *old
	next.agents = b.agents.apply(old.agents, agentID, agentCmp)
	next.scheduledTasks = b.tasks.apply(old.scheduledTasks, taskID, taskCmp)
	next.workflows = b.workflows.apply(old.workflows, workflowID, workflowCmp)
	s.users[userID] = &next
	return nil
}

// Batch collects changes to one user's records for Update.
type Batch struct {
	old       *snapshot
	agents    changes[export.Agent]
	tasks     changes[export.ScheduledTask]
	workflows changes[export.Workflow]
}

// PutAgent adds the agent, or replaces the one with the same ID.
func (b *Batch) PutAgent(a export.Agent) { b.agents.put(a.ID, a) }

// PutScheduledTask adds the task, or replaces the one with the same ID.
func (b *Batch) PutScheduledTask(t export.ScheduledTask) { b.tasks.put(t.ID, t) }

// PutWorkflow adds the workflow, or replaces the one with the same ID.
func (b *Batch) PutWorkflow(w export.Workflow) { b.workflows.put(w.ID, w) }

// DeleteAgent removes an agent; it reports whether it existed.
func (b *Batch) DeleteAgent(id string) bool { return b.agents.remove(id, b.old.agents, agentID) }

// DeleteScheduledTask removes a scheduled task; it reports whether it existed.
func (b *Batch) DeleteScheduledTask(id string) bool {
	return b.tasks.remove(id, b.old.scheduledTasks, taskID)
}

// DeleteWorkflow removes a workflow; it reports whether it existed.
func (b *Batch) DeleteWorkflow(id string) bool {
	return b.workflows.remove(id, b.old.workflows, workflowID)
}

// changes is the latest change per ID within one batch: a record to put,
// or a deletion.
type changes[T any] struct {
	byID map[string]change[T]
}

type change[T any] struct {
	rec     T
	deleted bool
}

func (c *changes[T]) put(id string, rec T) {
	if c.byID == nil {
		c.byID = make(map[string]change[T])
	}
	c.byID[id] = change[T]{rec: rec}
}

func (c *changes[T]) remove(id string, base []T, idOf func(T) string) bool {
	existed := false
	if ch, ok := c.byID[id]; ok {
		existed = !ch.deleted
	} else {
		existed = slices.ContainsFunc(base, func(e T) bool { return idOf(e) == id })
	}
	if c.byID == nil {
		c.byID = make(map[string]change[T])
	}
	c.byID[id] = change[T]{deleted: true}
	return existed
}

// apply returns a new sorted slice: base without the records of changed
// IDs, merged with the records put. It never writes into base, which a
// published snapshot may still be reading.
func (c *changes[T]) apply(base []T, idOf func(T) string, cmp func(a, b T) int) []T {
	if len(c.byID) == 0 {
		return base
	}
	added := make([]T, 0, len(c.byID))
	for _, ch := range c.byID {
		if !ch.deleted {
			added = append(added, ch.rec)
		}
	}
	slices.SortFunc(added, cmp)
	out := make([]T, 0, len(base)+len(added))
	i := 0
	for _, e := range base {
		if _, changed := c.byID[idOf(e)]; changed {
			continue
		}
		for i < len(added) && cmp(added[i], e) < 0 {
			out = append(out, added[i])
			i++
		}
		out = append(out, e)
	}
	return append(out, added[i:]...)
}

func agentID(a export.Agent) string        { return a.ID }
func taskID(t export.ScheduledTask) string { return t.ID }
func workflowID(w export.Workflow) string  { return w.ID }
func agentCmp(a, b export.Agent) int       { return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID) }
func taskCmp(a, b export.ScheduledTask) int {
	return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID)
}
func workflowCmp(a, b export.Workflow) int {
	return export.Compare(a.CreatedAt, a.ID, b.CreatedAt, b.ID)
}

// SetSection replaces the user's records of the added section name (see
// Section) with a copy of records, kept in their order. It returns
// export.ErrUserNotFound if the user does not exist.
func (s *Store) SetSection(userID, name string, records []export.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[userID]
	if old == nil {
		return export.ErrUserNotFound
	}
	next := *old
	next.sections = make(map[string][]export.Record, len(old.sections)+1)
	for k, v := range old.sections {
		next.sections[k] = v
	}
	cp := make([]export.Record, len(records))
	for i, r := range records {
		cp[i] = slices.Clone(r)
	}
	next.sections[name] = cp
	s.users[userID] = &next
	return nil
}

// Section returns an added section (see export.Section) that reads the
// records SetSection stored under name, from the same snapshot as the
// rest of the export. Register it with the exporter:
//
//	exp := export.NewExporter(store)
//	err := exp.AddSection(memstore.Section("notifications"))
func Section(name string) export.Section {
	return export.Section{Name: name, Read: func(ctx context.Context, tx export.Tx) iter.Seq2[export.Record, error] {
		v, ok := export.AsTx[*view](tx)
		if !ok {
			return func(yield func(export.Record, error) bool) {
				yield(nil, fmt.Errorf("memstore: section %q read from a %T, not a memstore view", name, tx))
			}
		}
		return records(ctx, v, func(s *snapshot) []export.Record { return s.sections[name] })
	}}
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
