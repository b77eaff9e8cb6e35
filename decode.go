package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DecodeError says where and how a file departs from the format.
type DecodeError struct {
	Path string // where, as a JSON path such as agents[3].createdAt; "" for the whole file
	Msg  string // what is wrong
}

func (e *DecodeError) Error() string {
	if e.Path == "" {
		return "export: invalid document: " + e.Msg
	}
	return "export: invalid document: " + e.Path + ": " + e.Msg
}

// Decode reads an export document back and checks it strictly against the
// format: the version, every required key with its type, no unknown key
// inside the built-in sections (an unknown key there would mean data that
// should never have been exported), timestamps in exactly the contract's
// form, sections in creation order, no duplicate keys and nothing after
// the document. Unknown top-level keys are host-registered sections: they
// must be arrays of objects, and are skipped.
//
// The error is a *DecodeError naming the path of the first problem.
func Decode(r io.Reader) (*Document, error) {
	d := &decoder{dec: json.NewDecoder(r)}
	d.dec.UseNumber()
	doc := &Document{}
	err := d.object("", map[string]field{
		"exportedAt": {true, func(p string) (err error) { doc.ExportedAt, err = d.timestamp(p); return }},
		"version": {true, func(p string) error {
			v, err := d.str(p)
			if err == nil && v != Version {
				err = d.fail(p, fmt.Sprintf("unsupported version %q (this reader knows %q)", v, Version))
			}
			doc.Version = v
			return err
		}},
		"user": {true, func(p string) error { return d.user(p, &doc.User) }},
		"agents": {true, func(p string) (err error) {
			doc.Agents, err = records(d, p, func(p string, a *Agent) error {
				return d.object(p, map[string]field{
					"id":        {true, d.strTo(&a.ID)},
					"name":      {true, d.strTo(&a.Name)},
					"model":     {true, d.strTo(&a.Model)},
					"status":    {true, d.strTo(&a.Status)},
					"createdAt": {true, d.timeTo(&a.CreatedAt)},
					"updatedAt": {true, d.timeTo(&a.UpdatedAt)},
				}, nil)
			}, func(a *Agent) time.Time { return a.CreatedAt })
			return
		}},
		"scheduledTasks": {true, func(p string) (err error) {
			doc.ScheduledTasks, err = records(d, p, func(p string, t *ScheduledTask) error {
				return d.object(p, map[string]field{
					"id":           {true, d.strTo(&t.ID)},
					"name":         {true, d.strTo(&t.Name)},
					"cronSchedule": {true, d.strTo(&t.CronSchedule)},
					"enabled":      {true, d.boolTo(&t.Enabled)},
					"createdAt":    {true, d.timeTo(&t.CreatedAt)},
				}, nil)
			}, func(t *ScheduledTask) time.Time { return t.CreatedAt })
			return
		}},
		"workflows": {true, func(p string) (err error) {
			doc.Workflows, err = records(d, p, func(p string, w *Workflow) error {
				return d.object(p, map[string]field{
					"id":        {true, d.strTo(&w.ID)},
					"name":      {true, d.strTo(&w.Name)},
					"enabled":   {true, d.boolTo(&w.Enabled)},
					"createdAt": {true, d.timeTo(&w.CreatedAt)},
				}, nil)
			}, func(w *Workflow) time.Time { return w.CreatedAt })
			return
		}},
	}, d.extraSection)
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, d.fail("", "unexpected data after the document")
	}
	return doc, nil
}

type field struct {
	required bool
	read     func(path string) error
}

type decoder struct {
	dec *json.Decoder
}

func (d *decoder) fail(path, msg string) error { return &DecodeError{Path: path, Msg: msg} }

// token reads the next token, turning syntax errors into DecodeErrors.
func (d *decoder) token(path string) (json.Token, error) {
	t, err := d.dec.Token()
	if err == nil {
		return t, nil
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, d.fail(path, "unexpected end of input: the file is truncated")
	}
	if errors.Is(err, io.EOF) {
		if path == "" {
			return nil, d.fail(path, "empty input, not a document")
		}
		return nil, d.fail(path, "unexpected end of input: the file is truncated")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, d.fail(path, fmt.Sprintf("not valid JSON at byte %d: %v", se.Offset, se))
	}
	return nil, d.fail(path, "reading: "+err.Error())
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return "'" + v.String() + "'"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object reads an object whose keys are fields. A key not among fields is
// passed to unknown, or is an error when unknown is nil.
func (d *decoder) object(path string, fields map[string]field, unknown func(path string) error) error {
	t, err := d.token(path)
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return d.fail(path, "want an object, got "+describe(t))
	}
	seen := make(map[string]bool, len(fields))
	for d.dec.More() {
		t, err := d.token(path)
		if err != nil {
			return err
		}
		key := t.(string) // the decoder only returns string keys inside objects
		p := join(path, key)
		if seen[key] {
			return d.fail(p, "duplicate key")
		}
		seen[key] = true
		f, ok := fields[key]
		switch {
		case ok:
			err = f.read(p)
		case unknown != nil:
			err = unknown(p)
		default:
			err = d.fail(p, "unexpected key: the format has no such field here")
		}
		if err != nil {
			return err
		}
	}
	if _, err := d.token(path); err != nil {
		return err
	}
	var missing []string
	for k, f := range fields {
		if f.required && !seen[k] {
			missing = append(missing, strconv.Quote(k))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return d.fail(path, "missing required key "+strings.Join(missing, ", "))
	}
	return nil
}

// records reads an array of objects in creation order.
func records[T any](d *decoder, path string, read func(string, *T) error, created func(*T) time.Time) ([]T, error) {
	t, err := d.token(path)
	if err != nil {
		return nil, err
	}
	if t != json.Delim('[') {
		return nil, d.fail(path, "want an array, got "+describe(t))
	}
	out := []T{}
	for i := 0; d.dec.More(); i++ {
		p := path + "[" + strconv.Itoa(i) + "]"
		var v T
		if err := read(p, &v); err != nil {
			return nil, err
		}
		// Milliseconds are all the file keeps, so only a step back in
		// time is provably out of order; equal stamps may be in any ID
		// order (the store sorted them at full precision).
		if i > 0 && created(&v).Before(created(&out[i-1])) {
			return nil, d.fail(p+".createdAt", "earlier than the record before it: sections are in creation order")
		}
		out = append(out, v)
	}
	_, err = d.token(path)
	return out, err
}

// extraSection checks a host-registered section: an array of objects.
func (d *decoder) extraSection(path string) error {
	t, err := d.token(path)
	if err != nil {
		return err
	}
	if t != json.Delim('[') {
		return d.fail(path, "want an array (an added section), got "+describe(t))
	}
	for i := 0; d.dec.More(); i++ {
		var raw json.RawMessage
		p := path + "[" + strconv.Itoa(i) + "]"
		if err := d.dec.Decode(&raw); err != nil {
			return d.fail(p, "not valid JSON: "+err.Error())
		}
		if len(raw) == 0 || raw[0] != '{' {
			return d.fail(p, "want an object in an added section")
		}
	}
	_, err = d.token(path)
	return err
}

func (d *decoder) user(path string, u *User) error {
	return d.object(path, map[string]field{
		"id":           {true, d.strTo(&u.ID)},
		"email":        {true, d.strTo(&u.Email)},
		"name":         {true, d.nullStrTo(&u.Name)},
		"plan":         {true, d.nullStrTo(&u.Plan)},
		"role":         {true, d.strTo(&u.Role)},
		"referralCode": {true, d.nullStrTo(&u.ReferralCode)},
		"referralCredits": {true, func(p string) error {
			t, err := d.token(p)
			if err != nil {
				return err
			}
			n, ok := t.(json.Number)
			if !ok {
				return d.fail(p, "want an integer, got "+describe(t))
			}
			v, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return d.fail(p, "want an integer, got "+string(n))
			}
			u.ReferralCredits = v
			return nil
		}},
	}, nil)
}

func (d *decoder) str(path string) (string, error) {
	t, err := d.token(path)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", d.fail(path, "want a string, got "+describe(t))
	}
	return s, nil
}

func (d *decoder) strTo(dst *string) func(string) error {
	return func(p string) (err error) { *dst, err = d.str(p); return }
}

func (d *decoder) nullStrTo(dst *NullString) func(string) error {
	return func(p string) error {
		t, err := d.token(p)
		if err != nil {
			return err
		}
		switch v := t.(type) {
		case nil:
			*dst = NullString{}
		case string:
			*dst = Some(v)
		default:
			return d.fail(p, "want a string or null, got "+describe(t))
		}
		return nil
	}
}

func (d *decoder) boolTo(dst *bool) func(string) error {
	return func(p string) error {
		t, err := d.token(p)
		if err != nil {
			return err
		}
		v, ok := t.(bool)
		if !ok {
			return d.fail(p, "want a boolean, got "+describe(t))
		}
		*dst = v
		return nil
	}
}

func (d *decoder) timeTo(dst *time.Time) func(string) error {
	return func(p string) (err error) { *dst, err = d.timestamp(p); return }
}

func (d *decoder) timestamp(path string) (time.Time, error) {
	s, err := d.str(path)
	if err != nil {
		return time.Time{}, err
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, d.fail(path, err.Error())
	}
	return t, nil
}

// ParseTime reads a timestamp in exactly the form FormatTime writes
// (2026-03-01T00:00:00.000Z, or a signed six-digit year) and nothing else.
func ParseTime(s string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is not a timestamp of the form 2006-01-02T15:04:05.000Z", s)
	}
	var rest string
	var year int
	switch {
	case len(s) == 24:
		y, ok := digits(s[:4])
		if !ok {
			return bad()
		}
		rest, year = s[4:], y
	case len(s) == 27 && (s[0] == '+' || s[0] == '-'):
		y, ok := digits(s[1:7])
		if !ok || (s[0] == '-' && y == 0) || (s[0] == '+' && y <= 9999) {
			return bad() // JavaScript writes year 0 and 0-9999 with four digits
		}
		if s[0] == '-' {
			y = -y
		}
		rest, year = s[7:], y
	default:
		return bad()
	}
	// rest is -MM-DDTHH:MM:SS.mmmZ
	if rest[0] != '-' || rest[3] != '-' || rest[6] != 'T' || rest[9] != ':' || rest[12] != ':' || rest[15] != '.' || rest[19] != 'Z' {
		return bad()
	}
	mo, ok1 := digits(rest[1:3])
	dd, ok2 := digits(rest[4:6])
	hh, ok3 := digits(rest[7:9])
	mi, ok4 := digits(rest[10:12])
	ss, ok5 := digits(rest[13:15])
	ms, ok6 := digits(rest[16:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || dd < 1 || hh > 23 || mi > 59 || ss > 59 {
		return bad()
	}
	t := time.Date(year, time.Month(mo), dd, hh, mi, ss, ms*1e6, time.UTC)
	if t.Day() != dd { // February 30th and the like normalise into another month
		return bad()
	}
	return t, nil
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
