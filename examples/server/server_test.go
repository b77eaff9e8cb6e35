package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/agentbot/export"
)

// startServer runs the demo on a free port, on a fresh SQLite file
// unless args name a database, and stops it at the end of the test,
// checking that it shuts down cleanly.
func startServer(t *testing.T, args ...string) (base string) {
	base, _ = startServerOutput(t, args...)
	return base
}

// startServerOutput is startServer, also returning what the server
// printed up to the moment it was ready.
func startServerOutput(t *testing.T, args ...string) (base, output string) {
	t.Helper()
	base, out := startServerLog(t, args...)
	return base, out.String()
}

// startServerLog is startServer, also returning everything the server
// prints (its log included) as it goes.
func startServerLog(t *testing.T, args ...string) (base string, out *syncBuffer) {
	t.Helper()
	base, out, _ = runDemo(t, args...)
	return base, out
}

// runDemo runs the demo (as startServer does) and returns, besides, a
// func that stops it then and there, checking a clean shutdown; the test's
// end stops it otherwise.
func runDemo(t *testing.T, args ...string) (base string, out *syncBuffer, stop func()) {
	t.Helper()
	if len(args) == 0 {
		args = []string{"-sqlite", filepath.Join(t.TempDir(), "demo.db")}
	}
	if !slices.Contains(args, "-sqlite") {
		// A server database: the archives' jobs and files in the test's
		// own directory, not the shared default in the temp directory.
		dir := t.TempDir()
		args = append(args, "-jobs-db", filepath.Join(dir, "jobs.db"), "-files", filepath.Join(dir, "files"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	out = &syncBuffer{}
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), out, ready) }()
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, out.String())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("shutdown: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("server did not shut down")
			}
		})
	}
	t.Cleanup(stop)
	return base, out, stop
}

// syncBuffer is a bytes.Buffer the server and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func TestDemoSignInDownloadSignOut(t *testing.T) {
	base := startServer(t)
	c := newClient(t)

	// Not signed in: the page offers the demo user, the export says 401.
	page := get(t, c, base+"/")
	if !strings.Contains(page, `value="demo-jane"`) || !strings.Contains(page, "Demo only") || !strings.Contains(page, "Not signed in") {
		t.Fatalf("page before sign-in:\n%s", page)
	}
	if got := statusOf(t)(c.Get(base + "/api/export")); got != http.StatusUnauthorized {
		t.Fatalf("export without a session: %d", got)
	}

	// Sign in: 303 to / with an HttpOnly, SameSite=Lax cookie.
	noRedirect := *c
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"user": {"demo-jane"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"demo_session=", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "demo-jane") {
		t.Errorf("the cookie holds the user ID, not a random token: %q", setCookie)
	}

	if strings.Contains(page, "/api/export") {
		t.Fatalf("the page offers the download before sign-in:\n%s", page)
	}
	page = get(t, c, base+"/")
	if !strings.Contains(page, `<strong id="who">demo-jane</strong>`) || !strings.Contains(page, `href="/api/export"`) {
		t.Fatalf("page after sign-in:\n%s", page)
	}
	for _, want := range []string{`<li id="count-agents"><strong>2</strong> agents</li>`, `<li id="count-scheduledTasks"><strong>2</strong> scheduled tasks</li>`, `<li id="count-workflows"><strong>2</strong> workflows</li>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not say what the export holds: no %s", want)
		}
	}

	// Download: a document of the format, for this user only.
	resp, err = c.Get(base + "/api/export")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="agentbot-export-demo-jan-`) {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	doc, err := export.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the download is not a valid export: %v", err)
	}
	if doc.User.ID != "demo-jane" || len(doc.Agents) != 2 || len(doc.ScheduledTasks) != 2 || len(doc.Workflows) != 2 {
		t.Fatalf("unexpected document: %+v", doc)
	}
	if bytes.Contains(body, []byte("demo-sam")) || bytes.Contains(body, []byte("agent_sam")) {
		t.Fatal("the export holds another user's data")
	}

	// Sign out: the session is gone server-side too.
	statusOf(t)(c.PostForm(base+"/logout", nil))
	if got := statusOf(t)(c.Get(base + "/api/export")); got != http.StatusUnauthorized {
		t.Fatalf("export after sign-out: %d", got)
	}
}

func TestDemoRejectsUnknownUserAndStolenCookie(t *testing.T) {
	base := startServer(t)
	c := newClient(t)
	resp, err := c.PostForm(base+"/login", url.Values{"user": {"nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("login as an unknown user: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The sign-in page again, saying why, with the form to try again.
	for _, want := range []string{"There is no user &#34;nobody&#34; in this database", `action="/login"`, `value="nobody"`, "demo-jane"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the refused sign-in's page lacks %q:\n%s", want, page)
		}
	}
	// A forged cookie naming a user is not a session.
	req, _ := http.NewRequest(http.MethodGet, base+"/api/export", nil)
	req.AddCookie(&http.Cookie{Name: "demo_session", Value: "demo-jane"})
	if got := statusOf(t)(http.DefaultClient.Do(req)); got != http.StatusUnauthorized {
		t.Fatalf("forged cookie: %d", got)
	}
}

func TestDemoFavicon(t *testing.T) {
	base := startServer(t)
	for _, path := range []string{"/favicon.ico", "/favicon.svg"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !bytes.HasPrefix(body, []byte("<svg ")) {
			t.Errorf("%s: %d %s %.40q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if page := get(t, newClient(t), base+"/"); !strings.Contains(page, `<link rel="icon" href="/favicon.svg" type="image/svg+xml">`) {
		t.Error("the page links no icon")
	}
}

func TestDemoExportRoutes(t *testing.T) {
	base := startServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/api/export", http.StatusMethodNotAllowed},
		{http.MethodHead, "/api/export", http.StatusUnauthorized},
		{http.MethodGet, "/api/export/x.css", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status != http.StatusNotFound && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: no Cache-Control: no-store", tc.method, tc.path)
		}
	}
}

// statusOf returns a func that checks a request went through, closes its
// body and returns the status: statusOf(t)(c.Get(url)).
func statusOf(t *testing.T) func(*http.Response, error) int {
	return func(resp *http.Response, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDemoCompressedDownloads: the demo offers zstd and gzip; each
// decodes to the identity download, and zstd is preferred among equals.
func TestDemoCompressedDownloads(t *testing.T) {
	base := startServer(t)
	c := newClient(t)
	if got := statusOf(t)(c.PostForm(base+"/login", url.Values{"user": {"demo-jane"}})); got != http.StatusOK {
		t.Fatalf("login: %d", got)
	}
	// DisableCompression: the body as sent, decoded here.
	c.Transport = &http.Transport{DisableCompression: true}
	fetch := func(accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/export", nil)
		req.Header.Set("Accept-Encoding", accept)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: %d %v", accept, resp.StatusCode, err)
		}
		if resp.ContentLength != int64(len(body)) || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%q: Content-Length %d for %d bytes, Vary %q", accept, resp.ContentLength, len(body), resp.Header.Get("Vary"))
		}
		return resp, body
	}
	_, plain := fetch("identity")
	for accept, coding := range map[string]string{"gzip, deflate, br, zstd": "zstd", "gzip": "gzip", "zstd;q=0.5, gzip": "gzip"} {
		resp, body := fetch(accept)
		if got := resp.Header.Get("Content-Encoding"); got != coding {
			t.Fatalf("%q: Content-Encoding %q, want %s", accept, got, coding)
		}
		var decoded []byte
		var err error
		switch coding {
		case "zstd":
			zr, zerr := zstd.NewReader(bytes.NewReader(body))
			if zerr != nil {
				t.Fatal(zerr)
			}
			decoded, err = io.ReadAll(zr)
			zr.Close()
		case "gzip":
			zr, zerr := gzip.NewReader(bytes.NewReader(body))
			if zerr != nil {
				t.Fatal(zerr)
			}
			decoded, err = io.ReadAll(zr)
		}
		// The same document but for exportedAt: each request is an export.
		if err != nil || !bytes.Equal(withoutExportedAt(decoded), withoutExportedAt(plain)) {
			t.Fatalf("%q: the decoded %s body is not the identity one (%v)", accept, coding, err)
		}
	}
}

var exportedAt = regexp.MustCompile(`"exportedAt": "[^"]*"`)

func withoutExportedAt(doc []byte) []byte { return exportedAt.ReplaceAll(doc, nil) }

// TestDemoHeadMatchesGet: with the export's clock fixed, HEAD answers
// with GET's Content-Length and Repr-Digest in every coding the demo
// serves, its gzip (klauspost/compress) and the built-in one included:
// the compressed bytes do not depend on how the document was cut into
// writes (GET compresses from the spool's file, HEAD as it is written).
func TestDemoHeadMatchesGet(t *testing.T) {
	for _, builtin := range []bool{false, true} {
		t.Run(fmt.Sprintf("builtin-gzip=%v", builtin), func(t *testing.T) {
			data, err := openData(context.Background(), dataConfig{sqlite: filepath.Join(t.TempDir(), "demo.db"), layout: "prisma"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { data.db.Close() })
			at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			// A spool threshold of one byte: GET compresses from the file.
			a := newApp(data.store, data.users, slog.New(slog.NewTextHandler(io.Discard, nil)),
				export.WithClock(func() time.Time { return at }), export.WithSpool(1, t.TempDir()))
			a.builtinGzip = builtin
			a.sessions["head-test"] = "demo-jane"
			srv := httptest.NewServer(a.routes())
			t.Cleanup(srv.Close)
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			for _, coding := range []string{"identity", "gzip", "zstd"} {
				var got [2]http.Header
				for i, method := range []string{http.MethodGet, http.MethodHead} {
					req, _ := http.NewRequest(method, srv.URL+"/api/export", nil)
					req.Header.Set("Accept-Encoding", coding)
					req.AddCookie(&http.Cookie{Name: cookieName, Value: "head-test"})
					resp, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Fatalf("%s %s: %d %v", method, coding, resp.StatusCode, err)
					}
					if method == http.MethodGet && strconv.Itoa(len(body)) != resp.Header.Get("Content-Length") {
						t.Fatalf("GET %s: %d bytes, Content-Length %s", coding, len(body), resp.Header.Get("Content-Length"))
					}
					got[i] = resp.Header
				}
				for _, h := range []string{"Content-Length", "Repr-Digest", "Content-Encoding"} {
					if g, hd := got[0].Get(h), got[1].Get(h); g != hd || (h != "Content-Encoding" && g == "") {
						t.Errorf("%s: GET's %s %q, HEAD's %q", coding, h, g, hd)
					}
				}
				if want := strings.TrimPrefix(coding, "identity"); got[0].Get("Content-Encoding") != want {
					t.Errorf("%s: Content-Encoding %q", coding, got[0].Get("Content-Encoding"))
				}
			}
		})
	}
}
