package export

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAppendTime formats one timestamp as the contract writes it.
func BenchmarkAppendTime(b *testing.B) {
	t := time.Date(2026, 3, 1, 9, 30, 15, 123456789, time.UTC)
	var buf []byte
	for b.Loop() {
		buf = appendTime(buf[:0], t)
	}
}

// TestAppendTimeMatchesTimeFormat: the hand-written formatter agrees with
// time.Format for instants from year 0000 to 9999, given in any zone,
// including the days around leap years and the epoch. (Years outside
// that range, which JavaScript writes with a sign and six digits, are in
// the golden files.)
func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -8*3600)}
	first := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	last := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	check := func(at time.Time) {
		t.Helper()
		want := at.UTC().Format("2006-01-02T15:04:05.000Z")
		if got := string(appendTime(nil, at)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", at, got, want)
		}
	}
	for i := range 300000 {
		check(time.Unix(first+rng.Int64N(last-first+1), rng.Int64N(1e9)).In(zones[i%len(zones)]))
	}
	for _, y := range []int{0, 1, 1600, 1900, 1969, 1970, 2000, 2024, 2100, 9999} {
		for _, d := range []time.Time{time.Date(y, 2, 28, 23, 59, 59, 999999999, time.UTC), time.Date(y, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 31, 12, 0, 0, 1e6, time.UTC)} {
			check(d)
			check(d.Add(-time.Nanosecond))
		}
	}
}
