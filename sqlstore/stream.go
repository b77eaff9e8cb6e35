package sqlstore

import (
	"context"
	"database/sql"
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
// with sorts discouraged (enable_sort off, for this transaction only).
// Where no index gives the order, the setting is left alone: the planner
// would sort anyway, at a cost it believes huge (before JIT was turned
// off, below, that cost switched on JIT compilation: 81 ms of it on that
// account). Whether the index serves is read from the plans, as Check
// reads them, at most every planCheckEvery per store.
//
// JIT compilation is turned off for the built-in sections, whatever the
// plans: their expressions are one comparison and a few columns, which
// compiled code does not speed up, and PostgreSQL compiles whenever a
// plan's cost passes jit_above_cost (100,000 by default), which a large
// account's scan and sort does, and which every plan looked at with sorts
// discouraged does (a sort is then priced at 10^10). Even an EXPLAIN then
// loads LLVM into the backend: 20 to 29 ms of a fresh connection's first
// export on benchexport's account, a tenth of the export, spent on
// nothing.
//
// The built-in sections are planned for the user being exported, every
// time (plan_cache_mode = force_custom_plan, PostgreSQL 12 and later).
// pgx prepares each query once per connection, and after five executions
// PostgreSQL may plan it once for any user, a generic plan, if that plan
// looks no dearer than the user-specific ones did. For a typical user
// it is not; for an account that holds most of a table it is: the
// generic plan reads the owner index row by row where the user's own
// plan scans the table (EXPLAIN ANALYZE on benchexport's account, its
// own indexes: 322 against 280 ms for the three sections, medians of 6),
// so a long-running server's large exports became slower than its first
// five (0.458 against 0.430 s over HTTP, medians of 45 warm exports).
// Planning a section takes a fraction of a millisecond: an ordinary
// account's export took 2.0 ms either way.
//
// Added sections are the host's queries, planned as the host planned
// them: all three settings are given back their values from before the
// export, read in the statement that changed them, not reset to the
// server's defaults (SET LOCAL ... TO DEFAULT would drop a host's own
// session setting, made in a pool's connect hook, say).

// plannerSettings reads the host's jit, enable_sort and plan_cache_mode,
// then turns JIT off and custom plans on, in one statement: the subquery
// (kept apart by OFFSET 0) is read before the outer list that sets. A
// server older than 12 has no plan_cache_mode: it reads as "" and is left
// alone. discourageSorts is the same, turning enable_sort off too.
const (
	plannerSettings = `SELECT o.jit, o.sort, o.plans, set_config('jit', 'off', true), ` + customPlans + ` FROM ` + hostPlanner
	discourageSorts = `SELECT o.jit, o.sort, o.plans, set_config('jit', 'off', true), ` + customPlans + `, set_config('enable_sort', 'off', true) FROM ` + hostPlanner
	restoreSort     = `SELECT set_config('enable_sort', $1, true)`
	restorePlanner  = `SELECT set_config('jit', $1, true), set_config('enable_sort', $2, true), ` +
		`CASE WHEN $3 <> '' THEN set_config('plan_cache_mode', $3, true) END`

	hostPlanner = `(SELECT current_setting('jit') AS jit, current_setting('enable_sort') AS sort, ` +
		`coalesce(current_setting('plan_cache_mode', true), '') AS plans OFFSET 0) o`
	customPlans = `CASE WHEN o.plans <> '' THEN set_config('plan_cache_mode', 'force_custom_plan', true) END`
)

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
// first of them: JIT off, custom plans, and sorts discouraged where an
// index serves them all.
func (v *view) preferStreaming(ctx context.Context) error {
	if v.s.dialect != Postgres || v.plannerSet || v.s.noStream {
		return nil
	}
	v.plannerSet = true
	sf := &v.s.sortFree
	sf.mu.Lock()
	fresh, ok := time.Since(sf.checked) < planCheckEvery, sf.ok
	sf.mu.Unlock()
	discourage := !fresh || ok // and look at the plans, unless fresh
	var jit, sort, plans, set text
	stmt, dest := plannerSettings, []sql.Scanner{&jit, &sort, &plans, &set, &set}
	if discourage {
		stmt, dest = discourageSorts, append(dest, &set)
	}
	err := v.each(ctx, stmt, nil, dest, func(*driverRows) bool { return false })
	if err != nil {
		return err
	}
	v.host = &[3]string{string(jit), string(sort), string(plans)}
	if !discourage {
		return nil
	}
	if !fresh {
		if ok, err = v.sortFreePlans(ctx); err != nil {
			return err
		}
		sf.mu.Lock()
		sf.checked, sf.ok = time.Now(), ok
		sf.mu.Unlock()
		if !ok {
			return v.setArgs(ctx, restoreSort, v.host[1])
		}
	}
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

// allowSorts gives the planner the host's settings back before an added
// section.
func (v *view) allowSorts(ctx context.Context) error {
	if v.host == nil {
		return nil
	}
	host := v.host
	v.host = nil
	return v.setArgs(ctx, restorePlanner, host[0], host[1], host[2])
}

func (v *view) set(ctx context.Context, stmt string) error { return v.setArgs(ctx, stmt) }

// setArgs runs a statement whose result is not needed.
func (v *view) setArgs(ctx context.Context, stmt string, args ...any) error {
	return v.each(ctx, stmt, args, nil, func(*driverRows) bool { return true })
}
