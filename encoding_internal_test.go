package export

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func nopWriter(w io.Writer) (io.WriteCloser, error) { return nil, nil }

// offered is a handler's codings in its order of preference: zstd
// registered, then the built-in gzip.
var offered = []encoder{{name: "zstd", newWriter: nopWriter}, {name: "gzip", newWriter: nopWriter}}

func negotiated(fields ...string) string {
	r := &http.Request{Header: http.Header{}}
	if fields != nil {
		r.Header["Accept-Encoding"] = fields
	}
	if e := negotiate(r, offered); e != nil {
		return e.name
	}
	return "identity"
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept []string // nil: no Accept-Encoding field
		want   string
	}{
		{nil, "identity"},
		{[]string{""}, "identity"},
		{[]string{"gzip"}, "gzip"},
		{[]string{"GZIP"}, "gzip"},
		{[]string{"x-gzip"}, "gzip"},
		{[]string{"zstd"}, "zstd"},
		{[]string{"gzip, zstd"}, "zstd"}, // equals: the server's preference
		{[]string{"zstd, gzip"}, "zstd"},
		{[]string{"gzip, deflate, br, zstd"}, "zstd"}, // Chromium
		{[]string{"gzip;q=1.0, zstd;q=0.5"}, "gzip"},
		{[]string{"gzip;q=0.5, zstd;q=0.501"}, "zstd"},
		{[]string{"  gzip ; q=0.8 ,zstd;Q=0.7  "}, "gzip"},
		{[]string{"gzip\t;\tq=1"}, "gzip"},
		{[]string{"br"}, "identity"},
		{[]string{"br, deflate"}, "identity"},
		{[]string{"*"}, "zstd"},
		{[]string{"*;q=0"}, "identity"}, // nothing acceptable: identity anyway, never 406
		{[]string{"*, zstd;q=0"}, "gzip"},
		{[]string{"*;q=0.3, gzip;q=0.4"}, "gzip"},
		{[]string{"identity"}, "identity"},
		{[]string{"identity;q=0"}, "identity"},
		{[]string{"gzip, identity;q=0"}, "gzip"},
		{[]string{"gzip;q=0.5, identity"}, "identity"}, // the client prefers identity
		{[]string{"gzip;q=0.5, identity;q=0.5"}, "gzip"},
		{[]string{"gzip;q=0.5"}, "gzip"}, // identity unnamed: not preferred
		{[]string{"gzip;q=0"}, "identity"},
		{[]string{"gzip;q=0.000"}, "identity"},
		{[]string{"gzip;q=0.001"}, "gzip"},
		{[]string{"gzip", "zstd"}, "zstd"}, // two field lines make one list
		{[]string{"br", "gzip"}, "gzip"},
		{[]string{"gzip,,, ,"}, "gzip"},
		{[]string{"gzip;q=0, gzip"}, "identity"}, // the first weight counts
		// Malformed: identity, never an error.
		{[]string{"gzip;q=2"}, "identity"},
		{[]string{"gzip;q=1.5"}, "identity"},
		{[]string{"gzip;q=1.0001"}, "identity"},
		{[]string{"gzip;q="}, "identity"},
		{[]string{"gzip;q=-1"}, "identity"},
		{[]string{"gzip;q=0.5x"}, "identity"},
		{[]string{"gzip;level=9"}, "identity"},
		{[]string{"gzip;"}, "identity"},
		{[]string{"gz ip"}, "identity"},
		{[]string{"gzip\x00"}, "identity"},
		{[]string{";q=1"}, "identity"},
		{[]string{"gzip, \"zstd\""}, "identity"},
		{[]string{"gzip, zstd;q=0.5;q=1"}, "identity"},
		{[]string{"gzïp"}, "identity"},
	}
	for _, c := range cases {
		if got := negotiated(c.accept...); got != c.want {
			t.Errorf("Accept-Encoding %q: %s, want %s", c.accept, got, c.want)
		}
	}
	if e := negotiate(&http.Request{Header: http.Header{"Accept-Encoding": {"gzip"}}}, nil); e != nil {
		t.Errorf("no codings offered, yet %s was chosen", e.name)
	}
}

// FuzzAcceptEncoding checks that any field value gives identity or one of
// the codings offered, without a panic.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip;q=0.5, zstd", "*;q=0", "identity;q=0", "gzip;q=1.000", "x-gzip;Q=0.1, *"} {
		f.Add(s, "")
	}
	f.Add("gzip", "zstd;q=0.9")
	f.Fuzz(func(t *testing.T, a, b string) {
		got := negotiated(a, b)
		switch got {
		case "identity", "zstd", "gzip":
		default:
			t.Fatalf("Accept-Encoding %q, %q: %q is not offered", a, b, got)
		}
		if prefs, ok := parseAcceptEncoding([]string{a, b}); ok {
			for name, q := range prefs {
				if q < 0 || q > 1000 {
					t.Fatalf("%q: q=%d for %s", a, q, name)
				}
			}
		}
	})
}

func TestNegotiateEncoding(t *testing.T) {
	for _, c := range []struct {
		accept []string // nil: no Accept-Encoding field
		want   string
	}{
		{nil, ""},
		{[]string{"gzip"}, "gzip"},
		{[]string{"GZIP;q=0.5, identity;q=0.4"}, "gzip"},
		{[]string{"gzip;q=0, *;q=0.1"}, ""},
		{[]string{"identity;q=1, gzip;q=0.5"}, ""},
		{[]string{"br"}, ""},
		{[]string{"x-gzip"}, "gzip"},
		{[]string{"gzip;q=2"}, ""}, // malformed: identity
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.accept != nil {
			r.Header["Accept-Encoding"] = c.accept
		}
		if got := NegotiateEncoding(r, "gzip"); got != c.want {
			t.Errorf("Accept-Encoding %q: %q, want %q", c.accept, got, c.want)
		}
	}
}
