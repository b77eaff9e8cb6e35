package sqlstore

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Streaming the built-in sections on PostgreSQL.
//
// With the index Schema advises, PostgreSQL can read a user's rows in
// export order and hand over the first at once. Its planner does not
// always: where one user holds a large share of a table (the large
// accounts an export must serve well), it estimates a sequential scan and
// a sort as cheaper, and the sort holds every row (in work_mem, then in
// temporary files) before it sends the first, so nothing of the export
// overlaps the database's work. On benchexport's 300,000-record account,
// with the index, EXPLAIN ANALYZE gave 107 to 152 ms for the scan and
// sort of the agents and 62 ms for the index scan, whose rows flow from
// the first millisecond.
//
// So where the index serves every built-in section, they are planned
// with sorts discouraged (SET LOCAL enable_sort = off: this transaction
// only). Where no index gives the order, the setting is left alone: the
// planner would sort anyway, at a cost it believes huge, and that cost
// switches on JIT compilation (81 ms of it on that account). Whether the
// index serves is read from the plans, as Check reads them, at most every
// planCheckEvery per store. Added sections are the host's queries,
// planned as the host planned them: the setting is restored before them.
//
// JIT compilation is turned off for the built-in sections, whatever the
// plans: their expressions are one comparison and a few columns, which
// compiled code does not speed up, and PostgreSQL compiles whenever a
// plan's cost passes jit_above_cost (100,000 by default), which a large
// account's scan and sort does, and which every plan looked at with sorts
// discouraged does (a sort is then priced at 10^10). Even an EXPLAIN then
// loads LLVM into the backend: 20 to 29 ms of a fresh connection's first
// export on benchexport's account, a tenth of the export, spent on
// nothing. It is restored with the sort setting, before added sections.

// planCheckEvery is how long a store trusts what the plans said.
const planCheckEvery = 5 * time.Minute

// sortFree caches whether every built-in section has a plan without a
// sort when sorts are discouraged.
type sortFree struct {
	mu      sync.Mutex
	checked time.Time
	ok      bool
}

// preferStreaming sets the planner for the built-in sections before the
// first of them: JIT off, and sorts discouraged where an index serves
// them all.
func (v *view) preferStreaming(ctx context.Context) error {
	if v.s.dialect != Postgres || v.plannerSet || v.s.noStream {
		return nil
	}
	v.plannerSet = true
	if err := v.set(ctx, "SET LOCAL jit = off"); err != nil {
		return err
	}
	v.jitOff = true
	sf := &v.s.sortFree
	sf.mu.Lock()
	fresh, ok := time.Since(sf.checked) < planCheckEvery, sf.ok
	sf.mu.Unlock()
	if fresh && !ok {
		return nil
	}
	if err := v.set(ctx, "SET LOCAL enable_sort = off"); err != nil {
		return err
	}
	if !fresh {
		var err error
		if ok, err = v.sortFreePlans(ctx); err != nil {
			return err
		}
		sf.mu.Lock()
		sf.checked, sf.ok = time.Now(), ok
		sf.mu.Unlock()
		if !ok {
			return v.set(ctx, "SET LOCAL enable_sort TO DEFAULT")
		}
	}
	v.noSort = true
	return nil
}

// sortFreePlans reports whether no built-in section's plan sorts.
func (v *view) sortFreePlans(ctx context.Context) (bool, error) {
	for _, q := range v.s.q.sections() {
		plan, err := v.queryPlan(ctx, "EXPLAIN "+q.plain)
		if err != nil || strings.Contains(plan, "Sort") {
			return false, err
		}
	}
	return true, nil
}

// allowSorts restores the planner's settings before an added section.
func (v *view) allowSorts(ctx context.Context) error {
	if v.noSort {
		v.noSort = false
		if err := v.set(ctx, "SET LOCAL enable_sort TO DEFAULT"); err != nil {
			return err
		}
	}
	if v.jitOff {
		v.jitOff = false
		return v.set(ctx, "SET LOCAL jit TO DEFAULT")
	}
	return nil
}

func (v *view) set(ctx context.Context, stmt string) error {
	return v.each(ctx, stmt, nil, nil, func(*driverRows) bool { return true })
}
