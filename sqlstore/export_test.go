package sqlstore

// SetPacking turns packed reading (packed.go) on or off, so that tests
// can compare the two.
func SetPacking(s *Store, on bool) { s.noPack = !on }

// OnPack sets a function told, by Op, when a section switches to packed
// reading.
func OnPack(s *Store, f func(op string)) { s.onPack = f }

// PackAfter is how many rows of a section are read per column first.
const PackAfter = packAfter

// PackedQueries returns the packed form of each section's query, "" where
// the dialect has none.
func PackedQueries(s *Store) []string {
	return []string{s.q.agents.packed, s.q.scheduledTasks.packed, s.q.workflows.packed}
}
