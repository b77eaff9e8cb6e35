package sqlstore

import (
	"strings"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	cases := []struct {
		in   string
		want time.Time
	}{
		{"2026-03-01", utc(2026, 3, 1, 0, 0, 0, 0)},
		{"2026-03-01 09:05", utc(2026, 3, 1, 9, 5, 0, 0)},
		{"2026-03-01T09:05", utc(2026, 3, 1, 9, 5, 0, 0)},
		{"2026-03-01t09:05:07", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01 09:05:07", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01 09:05:07.1", utc(2026, 3, 1, 9, 5, 7, 100000000)},
		{"2026-03-01 09:05:07.123", utc(2026, 3, 1, 9, 5, 7, 123000000)},
		{"2026-03-01 09:05:07.123456", utc(2026, 3, 1, 9, 5, 7, 123456000)},
		{"2026-03-01 09:05:07.123456789", utc(2026, 3, 1, 9, 5, 7, 123456789)},
		{"2026-03-01 09:05:07.1234567891234", utc(2026, 3, 1, 9, 5, 7, 123456789)}, // beyond ns: dropped
		{"2026-03-01T09:05:07Z", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01T09:05:07.999z", utc(2026, 3, 1, 9, 5, 7, 999000000)},
		{"2026-03-01T11:05:07+02:00", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01T11:05:07+0200", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01T11:05:07+02", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01 04:05:07.5-05:00", utc(2026, 3, 1, 9, 5, 7, 500000000)},
		{"2026-03-01 14:35:07 +05:30", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01 00:30:00-09:30", utc(2026, 3, 1, 10, 0, 0, 0)},
		{"2026-03-01 00:30:00+14:00", utc(2026, 2, 28, 10, 30, 0, 0)}, // crosses the date
		// Go's time.Time.String, as modernc.org/sqlite writes by default.
		{"2026-03-01 11:05:07.123456789 +0200 CEST", utc(2026, 3, 1, 9, 5, 7, 123456789)},
		{"2026-03-01 09:05:07 +0000 UTC", utc(2026, 3, 1, 9, 5, 7, 0)},
		{"2026-03-01 09:05:07.5 +0000 UTC m=+0.000012345", utc(2026, 3, 1, 9, 5, 7, 500000000)},
		{"2026-03-01 06:05:07 -0300 -03", utc(2026, 3, 1, 9, 5, 7, 0)},
		// Unix milliseconds, as digits (so a bare year is not a date).
		{"0", utc(1970, 1, 1, 0, 0, 0, 0)},
		{"2026", utc(1970, 1, 1, 0, 0, 2, 26000000)},
		{"1772355907123", utc(2026, 3, 1, 9, 5, 7, 123000000)},
		{"-86400001", utc(1969, 12, 30, 23, 59, 59, 999000000)},
		// Edges of the calendar.
		{"2024-02-29 23:59:59.999", utc(2024, 2, 29, 23, 59, 59, 999000000)},
		{"2000-02-29", utc(2000, 2, 29, 0, 0, 0, 0)},
		{"0001-01-01 00:00:00", utc(1, 1, 1, 0, 0, 0, 0)},
		{"1969-12-31 23:59:59.999", utc(1969, 12, 31, 23, 59, 59, 999000000)},
		{"9999-12-31 23:59:59.999", utc(9999, 12, 31, 23, 59, 59, 999000000)},
	}
	for _, c := range cases {
		got, err := parseTimestamp(c.in)
		if err != nil {
			t.Errorf("parseTimestamp(%q): %v", c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("parseTimestamp(%q) = %v, want %v", c.in, got.UTC(), c.want)
		}
		if b, err := parseTimestamp([]byte(c.in)); err != nil || !b.Equal(got) {
			t.Errorf("parseTimestamp([]byte(%q)) = %v, %v; differs from the string's", c.in, b, err)
		}
	}
}

func TestParseTimestampRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "-", "2026-3-01", "2026-03-1", "2026/03/01", "2026-00-01", "2026-13-01", "2026-02-30",
		"2025-02-29", "1900-02-29", "2026-04-31", "2026-03-01 ", "2026-03-01 9:05", "2026-03-01 24:00", "2026-03-01 09:60",
		"2026-03-01 09:05:60", "2026-03-01 09:05:07.", "2026-03-01T09:05:07+2", "2026-03-01T09:05:07+24:00",
		"2026-03-01T09:05:07+02:60", "2026-03-01T09:05:07ZZ", "2026-03-01T09:05:07 Z", "2026-03-01T09:05:07+02:00 junk!",
		"2026-03-01T09:05:07 +0000 UTC m=", "1772355907123.5", "1e12", "+1772355907123", "1234567890123456789",
		"٢٠٢٦-03-01", "2026-03-01\x00", "2026-03-01 09:05:07 UTC",
	} {
		if got, err := parseTimestamp(in); err == nil {
			t.Errorf("parseTimestamp(%q) = %v, want an error", in, got)
		}
	}
	// The error names the value, bounded in length (it reaches logs).
	_, err := parseTimestamp(strings.Repeat("x", 1000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error for a long value: %v", err)
	}
}

func TestTimestampScan(t *testing.T) {
	want := time.Date(2026, 3, 1, 9, 5, 7, 123000000, time.UTC)
	for _, src := range []any{
		want, want.In(time.FixedZone("X", 3600)), int64(1772355907123), "2026-03-01 09:05:07.123",
		[]byte("2026-03-01T09:05:07.123Z"), []byte("1772355907123"),
	} {
		var ts timestamp
		if err := ts.Scan(src); err != nil || !ts.t.Equal(want) {
			t.Errorf("Scan(%#v) = %v, %v; want %v", src, ts.t, err, want)
		}
	}
	for _, src := range []any{nil, 1.5, true, "tomorrow"} {
		var ts timestamp
		if err := ts.Scan(src); err == nil {
			t.Errorf("Scan(%#v) = %v, want an error", src, ts.t)
		}
	}
}

func TestParseTimestampAllocates(t *testing.T) {
	b := []byte("2026-03-01 11:05:07.123456789 +0200 CEST")
	if n := testing.AllocsPerRun(100, func() { parseTimestamp(b) }); n != 0 {
		t.Errorf("parseTimestamp allocates %v times per call, want 0", n)
	}
}

// referenceLayouts are time.Parse layouts for the forms parseTimestamp
// reads; whatever one of them accepts, parseTimestamp must read alike.
var referenceLayouts = []string{
	"2006-01-02",
	"2006-01-02 15:04", "2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02T15:04Z07:00", "2006-01-02 15:04-07:00",
}

// FuzzParseTimestamp: no input panics; whatever the standard library's
// parser reads in one of the supported layouts, parseTimestamp reads as
// the same instant; and whatever parseTimestamp accepts formats back to
// a valid instant that, written in a canonical form, parses identically.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2026-03-01", "2026-03-01 09:05", "2026-03-01T09:05:07.123Z", "2026-03-01 11:05:07.123456789 +0200 CEST",
		"2026-03-01T11:05:07+0200", "1772355907123", "-1", "2024-02-29 23:59:59.999-09:30",
		"2026-03-01 09:05:07.5 +0000 UTC m=+0.000012345",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTimestamp(s)
		for _, layout := range referenceLayouts {
			ref, rerr := time.Parse(layout, s)
			if rerr != nil || strings.ContainsAny(s, "tz") || ref.Year() < 1 {
				continue
			}
			if len(s) > 12 && (s[12] < '0' || s[12] > '9') {
				continue // time.Parse takes a one-digit hour; ISO-8601 does not
			}
			if strings.Contains(s, "  ") {
				continue // time.Parse lets a run of spaces match one space of the layout
			}
			if offsetMinutesPast59(s) {
				continue // time.Parse reads "+00:60" as an hour; ISO-8601 minutes end at 59
			}
			if err != nil {
				t.Fatalf("time.Parse(%q, %q) = %v, but parseTimestamp fails: %v", layout, s, ref, err)
			}
			if !got.Equal(ref) {
				t.Fatalf("parseTimestamp(%q) = %v, time.Parse(%q) = %v", s, got, layout, ref)
			}
		}
		if err != nil {
			return
		}
		canonical := got.UTC().Format("2006-01-02T15:04:05.999999999Z")
		if got.UTC().Year() < 1 || got.UTC().Year() > 9999 {
			return // outside what four-digit years can write back
		}
		again, err := parseTimestamp(canonical)
		if err != nil || !again.Equal(got) {
			t.Fatalf("parseTimestamp(%q) = %v; its canonical form %q reads back as %v, %v", s, got, canonical, again, err)
		}
	})
}

// BenchmarkParseTimestamp reads each stored form once per iteration.
//
//	go test ./sqlstore -run '^$' -bench ParseTimestamp -benchmem
func BenchmarkParseTimestamp(b *testing.B) {
	for _, in := range []string{
		"2026-03-01T09:00:00.123Z",
		"2026-03-01 09:00:00.123",
		"2026-03-01 11:00:00.123456+02:00",
		"2026-03-01 09:00:00.123456789 +0000 UTC",
		"1772355600123",
	} {
		s := []byte(in)
		b.Run(in, func(b *testing.B) {
			for b.Loop() {
				if _, err := parseTimestamp(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// offsetMinutesPast59 reports whether s ends in a zone offset (+hh:mm,
// +hhmm, possibly followed by a zone name) whose minutes are 60 or more.
func offsetMinutesPast59(s string) bool {
	i := strings.LastIndexAny(s, "+-")
	if i <= 10 { // a date's own hyphens, or no offset
		return false
	}
	digits := strings.Replace(s[i+1:], ":", "", 1)
	if len(digits) < 4 || digits[2] < '0' || digits[2] > '9' || digits[3] < '0' || digits[3] > '9' {
		return false
	}
	return digits[2] >= '6'
}
