package sqlstore

import (
	"errors"
	"fmt"
	"time"
)

// timestamp scans a timestamp column in any of the forms the supported
// drivers hand over, so one scan destination serves every dialect and
// every way an application may have stored its times:
//
//   - time.Time: pgx for timestamp and timestamptz, go-sql-driver/mysql
//     with parseTime=true, modernc.org/sqlite when it parsed text itself;
//   - int64: Unix milliseconds (SQLite INTEGER, a BIGINT column);
//   - []byte or string: ISO-8601 text (SQLite TEXT, MySQL DATETIME without
//     parseTime), or Unix milliseconds written as decimal digits.
//
// NULL is an error: the contract has no null timestamps, and inventing an
// instant would put false data in a user's export.
type timestamp struct{ t time.Time }

var errNullTimestamp = errors.New("timestamp is NULL")

// Scan implements sql.Scanner.
func (ts *timestamp) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		ts.t = v
		return nil
	case int64:
		ts.t = time.UnixMilli(v)
		return nil
	case []byte:
		var err error
		ts.t, err = parseTimestamp(v)
		return err
	case string:
		var err error
		ts.t, err = parseTimestamp(v)
		return err
	case nil:
		return errNullTimestamp
	default:
		return fmt.Errorf("timestamp of unsupported type %T", src)
	}
}

// parseTimestamp reads the text forms a timestamp column may hold:
//
//	1772323200000                        Unix milliseconds (may be negative)
//	2026-03-01                           a date: midnight UTC
//	2026-03-01 09:00                     'T' or 't' may replace the space
//	2026-03-01 09:00:00
//	2026-03-01 09:00:00.123456789        any number of fraction digits,
//	                                     after '.' or ','
//	2026-03-01T09:00:00.123Z             zone: Z, ±hh:mm, ±hhmm or ±hh,
//	2026-03-01 09:00:00.123 +02:00       optionally after one space
//	2026-03-01 09:00:00.123 +0200 CEST   Go's time.Time.String form, as
//	                                     modernc.org/sqlite writes by default
//
// Text without a zone is UTC; a bare run of digits is milliseconds, never
// a year. Fraction digits beyond nanoseconds are
// dropped (the export keeps milliseconds anyway). It allocates nothing.
func parseTimestamp[S ~string | ~[]byte](s S) (time.Time, error) {
	p := tsParser[S]{s: s}
	t, ok := p.parse()
	if !ok {
		return time.Time{}, fmt.Errorf("timestamp %q is not ISO-8601 text or Unix milliseconds", shorten(string(s)))
	}
	return t, nil
}

// shorten keeps error text (which reaches logs, never clients) bounded.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type tsParser[S ~string | ~[]byte] struct {
	s S
	i int
}

func (p *tsParser[S]) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// digits reads exactly n decimal digits.
func (p *tsParser[S]) digits(n int) (int, bool) {
	if p.i+n > len(p.s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, true
}

func (p *tsParser[S]) expect(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *tsParser[S]) parse() (time.Time, bool) {
	if t, ok, fixed := p.common(); fixed {
		return t, ok
	}
	if t, ok := p.millis(); ok {
		return t, true
	}
	year, ok1 := p.digits(4)
	ok2 := p.expect('-')
	month, ok3 := p.digits(2)
	ok4 := p.expect('-')
	day, ok5 := p.digits(2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	var hour, minute, sec, nsec int
	if c := p.peek(); c == ' ' || c == 'T' || c == 't' {
		p.i++
		var ok bool
		if hour, ok = p.digits(2); !ok || hour > 23 || !p.expect(':') {
			return time.Time{}, false
		}
		if minute, ok = p.digits(2); !ok || minute > 59 {
			return time.Time{}, false
		}
		if p.expect(':') {
			if sec, ok = p.digits(2); !ok || sec > 59 {
				return time.Time{}, false
			}
			if p.expect('.') || p.expect(',') { // ISO-8601 allows either
				if nsec, ok = p.fraction(); !ok {
					return time.Time{}, false
				}
			}
		}
	}
	return p.finish(year, month, day, hour, minute, sec, nsec)
}

// common reads the form nearly every stored timestamp has, a date and a
// time to the second at fixed positions ("2006-01-02T15:04:05" or with a
// space), with plain indexing; the general parser's step by step reading
// cost twice as much per timestamp. fixed is false when s does not start
// that way, and the general parser decides.
func (p *tsParser[S]) common() (t time.Time, ok, fixed bool) {
	s := p.s
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' || (s[10] != 'T' && s[10] != ' ' && s[10] != 't') {
		return time.Time{}, false, false
	}
	// Each digit minus '0' as an unsigned byte: a non-digit is above 9.
	d := func(i int) uint { return uint(s[i] - '0') }
	y0, y1, y2, y3 := d(0), d(1), d(2), d(3)
	mo0, mo1, d0, d1 := d(5), d(6), d(8), d(9)
	h0, h1, mi0, mi1, s0, s1 := d(11), d(12), d(14), d(15), d(17), d(18)
	if y0 > 9 || y1 > 9 || y2 > 9 || y3 > 9 || mo0 > 9 || mo1 > 9 || d0 > 9 || d1 > 9 || h0 > 9 || h1 > 9 || mi0 > 9 || mi1 > 9 || s0 > 9 || s1 > 9 {
		return time.Time{}, false, true
	}
	year := int(y0*1000 + y1*100 + y2*10 + y3)
	month, day := int(mo0*10+mo1), int(d0*10+d1)
	hour, minute, sec := int(h0*10+h1), int(mi0*10+mi1), int(s0*10+s1)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false, true
	}
	p.i = 19
	nsec := 0
	if p.expect('.') || p.expect(',') {
		if nsec, ok = p.fraction(); !ok {
			return time.Time{}, false, true
		}
	}
	t, ok = p.finish(year, month, day, hour, minute, sec, nsec)
	return t, ok, true
}

// finish reads the zone and the end of the text, and makes the instant.
func (p *tsParser[S]) finish(year, month, day, hour, minute, sec, nsec int) (time.Time, bool) {
	offset, ok := p.zone()
	if !ok || p.i != len(p.s) {
		return time.Time{}, false
	}
	secs := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(secs, int64(nsec)).UTC(), true
}

// daysSinceEpoch counts the days from 1970-01-01 to a date of the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil). It is
// what time.Date computes, without time.Date's normalisation of
// out-of-range fields, which the parser has already ruled out; that makes
// it a few times cheaper, and a large account has one or two timestamps
// per record.
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400 // [0, 399]
	m := int64(month)
	if m > 2 {
		m -= 3
	} else {
		m += 9
	}
	doy := (153*m+2)/5 + int64(day) - 1    // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return era*146097 + doe - 719468
}

// millis reads an optionally negative run of digits that is the whole
// text. Eighteen digits at most: enough for any date, and no overflow.
func (p *tsParser[S]) millis() (time.Time, bool) {
	s := p.s
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return time.Time{}, false
	}
	var v int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return time.UnixMilli(v), true
}

// fraction reads one or more digits after the decimal point.
func (p *tsParser[S]) fraction() (int, bool) {
	start, nsec, scale := p.i, 0, 100000000
	for ; p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9'; p.i++ {
		nsec += int(p.s[p.i]-'0') * scale
		scale /= 10
	}
	return nsec, p.i > start
}

// zone reads what follows the time: nothing (UTC), Z, or an offset, the
// latter optionally after a space and followed by a zone abbreviation and
// Go's monotonic clock reading, which carry nothing the offset does not.
func (p *tsParser[S]) zone() (offsetSeconds int, ok bool) {
	if p.i == len(p.s) {
		return 0, true
	}
	if p.expect('Z') || p.expect('z') {
		return 0, true
	}
	p.expect(' ')
	sign := 1
	switch {
	case p.expect('+'):
	case p.expect('-'):
		sign = -1
	default:
		return 0, false
	}
	hh, ok := p.digits(2)
	if !ok || hh > 23 {
		return 0, false
	}
	mm := 0
	if p.expect(':') {
		if mm, ok = p.digits(2); !ok {
			return 0, false
		}
	} else if c := p.peek(); c >= '0' && c <= '9' {
		if mm, ok = p.digits(2); !ok {
			return 0, false
		}
	}
	if mm > 59 {
		return 0, false
	}
	if p.expect(' ') && !p.abbreviation() {
		return 0, false
	}
	return sign * (hh*3600 + mm*60), true
}

// abbreviation skips Go's " MST" and " m=+0.000000001" tails.
func (p *tsParser[S]) abbreviation() bool {
	for p.i < len(p.s) && p.s[p.i] != ' ' {
		c := p.s[p.i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-') {
			return false
		}
		p.i++
	}
	if p.i+3 <= len(p.s) && string(p.s[p.i:p.i+3]) == " m=" {
		p.i += 3
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.') {
			p.i++
		}
		return p.i > start
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
