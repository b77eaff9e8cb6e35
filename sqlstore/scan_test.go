package sqlstore

import (
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// TestScannersMatchTheStandardTypes: text and flag give what
// sql.NullString and sql.NullBool give (with NULL as "" and false) for
// every kind of value a driver may hand over, errors included.
func TestScannersMatchTheStandardTypes(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 123, time.UTC)
	for _, src := range []any{
		"abc", "", "ünï\x00code", []byte("bytes"), []byte{}, nil,
		int64(0), int64(1), int64(2), int64(-7), 1.5, true, false, at,
		"true", "0", "yes", []byte("1"), []byte("false"),
	} {
		t.Run(fmt.Sprintf("%T(%v)", src, src), func(t *testing.T) {
			var ns sql.NullString
			wantErr := ns.Scan(src)
			var got text
			err := got.Scan(src)
			if (err != nil) != (wantErr != nil) || string(got) != ns.String {
				t.Errorf("text: %q, %v; sql.NullString: %q, %v", got, err, ns.String, wantErr)
			}

			var nb sql.NullBool
			wantErr = nb.Scan(src)
			var f flag
			err = f.Scan(src)
			if (err != nil) != (wantErr != nil) || bool(f) != nb.Bool {
				t.Errorf("flag: %v, %v; sql.NullBool: %v, %v", f, err, nb.Bool, wantErr)
			}
		})
	}
}

// TestTextKeepsNoDriverBytes: a driver may reuse the bytes it handed
// over for the next row; text must not point into them.
func TestTextKeepsNoDriverBytes(t *testing.T) {
	b := []byte("first")
	var got text
	if err := got.Scan(b); err != nil {
		t.Fatal(err)
	}
	copy(b, "XXXXX")
	if got != "first" {
		t.Fatalf("text changed with the driver's buffer: %q", got)
	}
}
