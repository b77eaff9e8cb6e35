package export_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentbot/export"
)

// asJSONReadsIt is s as encoding/json reads it back: each byte that is not
// part of valid UTF-8 becomes U+FFFD.
func asJSONReadsIt(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// FuzzStringWriter: whatever a string holds, the document stays valid JSON
// and the string reads back as itself (or its valid-UTF-8 form), through
// encoding/json and through Decode; nothing but '"', '\\' and control
// characters is escaped, as in JSON.stringify.
func FuzzStringWriter(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "<>&", "\u2028\u2029", "\xff\xfe", "\xed\xa0\x80", "🎉", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		doc := &export.Document{User: export.User{ID: "u", Name: export.Some(s)}, Workflows: []export.Workflow{{ID: s, Name: s}}}
		out := doc.Bytes()
		var generic struct {
			User struct {
				Name string `json:"name"`
			} `json:"user"`
		}
		if err := json.Unmarshal(out, &generic); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		want := asJSONReadsIt(s)
		if generic.User.Name != want {
			t.Fatalf("encoding/json reads %q back, want %q", generic.User.Name, want)
		}
		back, err := export.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if back.User.Name != export.Some(want) || back.Workflows[0].ID != want {
			t.Fatalf("Decode reads %q back, want %q", back.User.Name.String, want)
		}
		if bytes.Contains(out, []byte(`\u00`)) {
			for _, esc := range shortEscape.FindAllSubmatch(out, -1) {
				if c := string(esc[1]); c >= "20" {
					t.Fatalf("escaped a printable character: %s", esc[0])
				}
			}
		}
	})
}

var shortEscape = regexp.MustCompile(`\\u00([0-9a-f]{2})`)

var filenameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+-[A-Za-z0-9_-]*-\d{4}-\d{2}-\d{2}\.json$`)

// FuzzFilename: any user ID and prefix give a header that parses back to
// exactly the name, made only of safe characters, with at most 8 of the
// user ID's; and a real server sends that header unchanged over HTTP/1.1
// and HTTP/2 (whose header rules differ: HTTP/2 refuses some bytes that
// HTTP/1.1 lets through, so a name must be safe for both).
func FuzzFilename(f *testing.F) {
	for _, s := range []string{"user_abc123", `a"b;c`, "x\r\nSet-Cookie: a=b", "🎉", "\xff", "", "../../etc/passwd"} {
		f.Add("agentbot-export", s)
	}
	at := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	// The prefix and user ID travel to the server in a test-only header,
	// base64 so that any bytes survive; the resolver reads the ID from it,
	// which only a test may do.
	field := func(r *http.Request, name string) string {
		b, _ := base64.StdEncoding.DecodeString(r.Header.Get(name))
		return string(b)
	}
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := export.NewHandler(smallExporter{}, func(r *http.Request) (string, error) { return field(r, "X-Test-User"), nil },
			export.WithFilenamePrefix(field(r, "X-Test-Prefix")), export.WithClock(func() time.Time { return at }), export.WithLogger(quietLogger))
		h.ServeHTTP(w, r)
	})
	h1 := httptest.NewServer(serve)
	defer h1.Close()
	h2 := httptest.NewUnstartedServer(serve)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	f.Fuzz(func(t *testing.T, prefix, userID string) {
		if prefix == "" {
			prefix = export.DefaultFilenamePrefix
		}
		name := export.Filename(prefix, userID, at)
		if !filenameRE.MatchString(name) {
			t.Fatalf("unsafe name %q", name)
		}
		// Each code point of the prefix and of the first 8 of the user ID
		// becomes one byte of the name (an invalid byte counts as one).
		idLen := len(name) - utf8.RuneCountInString(prefix) - len("--2026-04-02.json")
		if want := min(utf8.RuneCountInString(userID), 8); idLen != want {
			t.Fatalf("id part of %q is %d characters, want %d", name, idLen, want)
		}
		header := `attachment; filename="` + name + `"`
		disp, params, err := mime.ParseMediaType(header)
		if err != nil || disp != "attachment" || len(params) != 1 || params["filename"] != name {
			t.Fatalf("%q parses as %q %v %v", header, disp, params, err)
		}
		if userID == "" {
			return // no session: no file
		}
		for _, srv := range []*httptest.Server{h1, h2} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("X-Test-Prefix", base64.StdEncoding.EncodeToString([]byte(prefix)))
			req.Header.Set("X-Test-User", base64.StdEncoding.EncodeToString([]byte(userID)))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP/%d: status %d", resp.ProtoMajor, resp.StatusCode)
			}
			got := resp.Header.Values("Content-Disposition")
			if len(got) != 1 || got[0] != header {
				t.Fatalf("HTTP/%d: Content-Disposition %q, want %q", resp.ProtoMajor, got, header)
			}
			if _, params, err := mime.ParseMediaType(got[0]); err != nil || params["filename"] != name {
				t.Fatalf("HTTP/%d: %q parses as %v %v", resp.ProtoMajor, got[0], params, err)
			}
		}
	})
}

// smallExporter writes a fixed tiny document: FuzzFilename is about the
// header, not the body.
type smallExporter struct{}

func (smallExporter) Export(_ context.Context, w io.Writer, _ export.Request) (export.Result, error) {
	n, err := io.WriteString(w, "{}")
	return export.Result{Bytes: int64(n)}, err
}

// FuzzDecode: Decode never panics, and whatever it accepts writes back to
// a document that decodes to the same data.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"contract-example", "nulls-and-empty"} {
		f.Add([]byte(readGolden(f, name)))
	}
	f.Add([]byte(`{"exportedAt":"2026-01-01T00:00:00.000Z","version":"1.0"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := export.Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := export.Decode(bytes.NewReader(doc.Bytes()))
		if err != nil {
			t.Fatalf("a decoded document does not decode after writing it: %v", err)
		}
		if !bytes.Equal(again.Bytes(), doc.Bytes()) {
			t.Fatal("write-decode-write is not stable")
		}
	})
}
