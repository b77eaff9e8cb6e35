package export

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// FormatTime returns t in the contract's timestamp form, the one
// JavaScript's Date.prototype.toISOString prints: UTC, exactly three
// fractional digits (truncated, not rounded), and Z. Years outside
// 0000-9999 get a sign and six digits, as in JavaScript.
func FormatTime(t time.Time) string { return string(appendTime(nil, t)) }

func appendTimeString(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = appendTime(b, t)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	// From the Unix time rather than t.Date and t.Clock, which each redo
	// the calendar arithmetic: a large export formats a timestamp or two
	// per record, and pprof had this at a tenth of the encoder's time.
	sec := t.Unix()
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	year, month, day := civilFromDays(days)
	switch {
	case year < 0:
		b = append(b, '-')
		b = appendDigits(b, -year, 6)
	case year > 9999:
		b = append(b, '+')
		b = appendDigits(b, year, 6)
	default:
		b = append2(b, year/100)
		b = append2(b, year%100)
	}
	b = append(b, '-')
	b = append2(b, month)
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, int(rem/3600))
	b = append(b, ':')
	b = append2(b, int(rem/60%60))
	b = append(b, ':')
	b = append2(b, int(rem%60))
	b = append(b, '.')
	ms := t.Nanosecond() / 1e6
	b = append(b, byte('0'+ms/100))
	b = append2(b, ms%100)
	return append(b, 'Z')
}

// civilFromDays returns the proleptic Gregorian date of a day counted
// from 1970-01-01 (Howard Hinnant's civil_from_days).
func civilFromDays(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if mp >= 10 {
		month = int(mp - 9)
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// append2 appends v, in [0, 99], as two digits.
func append2(b []byte, v int) []byte { return append(b, twoDigits[2*v], twoDigits[2*v+1]) }

// appendDigits appends v in decimal, zero-padded to at least width digits.
func appendDigits(b []byte, v, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 || width > 1 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	tmp[i] = byte('0' + v)
	return append(b, tmp[i:]...)
}

func appendNullString(b []byte, s NullString) []byte {
	if !s.Valid {
		return append(b, "null"...)
	}
	return appendString(b, s.String)
}

const hexDigits = "0123456789abcdef"

// safe[c] is true for the ASCII bytes JSON.stringify writes as themselves.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string the way JSON.stringify writes
// it: only '"', '\\' and control characters are escaped, with the short
// forms \b \t \n \f \r where they exist and lowercase \u00xx otherwise.
// Everything else, including <, >, &, DEL and U+2028/U+2029, is written as
// itself. Bytes that are not valid UTF-8 become U+FFFD, one per byte, as
// encoding/json reads them.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\t':
				b = append(b, '\\', 't')
			case '\n':
				b = append(b, '\\', 'n')
			case '\f':
				b = append(b, '\\', 'f')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case []byte:
		return appendString(b, string(v)), nil
	case NullString:
		return appendNullString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case float64:
		return appendNumber(b, v), nil
	case time.Time:
		return appendTimeString(b, v), nil
	}
	return b, fmt.Errorf("unsupported value of type %T", v)
}

// appendNumber writes f as JavaScript's Number.prototype.toString does,
// which JSON.stringify uses: NaN and infinities become null, -0 is 0,
// plain decimals from 1e-6 up to 1e21, exponent form outside that
// ("1e+21", "1.5e-7").
func appendNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0')
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	// Go writes "1.5e-07"; JavaScript "1.5e-7" and "1e+21".
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	i := len(e) - 1
	for e[i-1] != '+' && e[i-1] != '-' {
		i--
	}
	// e[i:] is the exponent's digits; drop their leading zeros.
	digits := e[i:]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	b = append(b, e[:i]...)
	return append(b, digits...)
}
