package sqlstore

// SetPacking turns packed reading (packed.go) on or off, so that tests
// can compare the two.
func SetPacking(s *Store, on bool) { s.noPack = !on }

// OnRead sets a function told, by Op, how each section is read: packed
// or per column.
func OnRead(s *Store, f func(op string, packed bool)) { s.onRead = f }

// OnLookup sets a function told, by Op, when an odd packed row is read
// again per column.
func OnLookup(s *Store, f func(op string)) { s.onLookup = f }

// PackedQueries returns the packed form of each section's query, "" where
// the dialect has none.
func PackedQueries(s *Store) []string {
	return []string{s.q.agents.packed, s.q.scheduledTasks.packed, s.q.workflows.packed}
}

// LookupQueries returns each section's lookup of one odd packed row, ""
// where the dialect has none.
func LookupQueries(s *Store) []string {
	return []string{s.q.agents.lookup, s.q.scheduledTasks.lookup, s.q.workflows.lookup}
}

// PlanQuery is what each export reads first on SQLite, to find the
// packing checks of its schema version.
const PlanQuery = planQuery

// IgnoreNumInput makes a section's check count its query's parameters as
// for a driver that does not report them (as modernc.org/sqlite does not),
// until the test ends. Not for parallel tests.
func IgnoreNumInput(t interface{ Cleanup(func()) }) {
	ignoreNumInput = true
	t.Cleanup(func() { ignoreNumInput = false })
}

// SetStreaming turns on or off the planner's settings for the built-in
// sections on PostgreSQL: JIT off, sorts discouraged (stream.go).
func SetStreaming(s *Store, on bool) { s.noStream = !on }

// The planner statements of stream.go.
const (
	PlannerSettings = plannerSettings
	DiscourageSorts = discourageSorts
	RestoreSort     = restoreSort
	RestorePlanner  = restorePlanner
)
