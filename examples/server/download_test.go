package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbot/export"
	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// devtools is headless Chromium driven through the DevTools protocol on
// a pipe (--remote-debugging-pipe: commands in on its descriptor 3,
// answers and events out on 4, each message ended by a NUL byte), for
// what its command-line switches cannot do: save a download, and say
// when it is complete.
type devtools struct {
	t      *testing.T
	in     *os.File // Chromium's descriptor 3
	msgs   chan devtoolsMessage
	queued []devtoolsMessage // events read while waiting for an answer
	lastID int
	stderr *syncBuffer
}

type devtoolsMessage struct {
	ID     int             `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startDevtools starts headless Chromium, saving downloads into dir under
// names of their own (their GUIDs), with download events on.
func startDevtools(t *testing.T, bin, dir string) *devtools {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{inR, outW} // descriptors 3 and 4
	d := &devtools{t: t, in: inW, msgs: make(chan devtoolsMessage), stderr: &syncBuffer{}}
	cmd.Stderr = d.stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("chromium: %v", err)
	}
	inR.Close()
	outW.Close()
	done := make(chan struct{})
	go func() {
		defer close(d.msgs)
		br := bufio.NewReader(outR)
		for {
			b, err := br.ReadBytes(0)
			if err != nil {
				return
			}
			var m devtoolsMessage
			if err := json.Unmarshal(b[:len(b)-1], &m); err != nil {
				continue
			}
			select {
			case d.msgs <- m:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		d.write("Browser.close", nil) // best effort: closing the pipe ends it too
		inW.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cancel() // kills it
			<-exited
		}
		cancel()
		close(done)
		outR.Close()
	})
	d.call("Browser.setDownloadBehavior", map[string]any{"behavior": "allowAndName", "downloadPath": dir, "eventsEnabled": true})
	return d
}

func (d *devtools) write(method string, params any) int {
	d.lastID++
	b, err := json.Marshal(map[string]any{"id": d.lastID, "method": method, "params": params})
	if err != nil {
		d.t.Fatal(err)
	}
	d.in.Write(append(b, 0))
	return d.lastID
}

// next returns the next message, or fails the test after a while.
func (d *devtools) next(waitingFor string) devtoolsMessage {
	d.t.Helper()
	select {
	case m, ok := <-d.msgs:
		if !ok {
			d.t.Fatalf("chromium exited while the test waited for %s:\n%s", waitingFor, d.stderr.String())
		}
		return m
	case <-time.After(60 * time.Second):
		d.t.Fatalf("no %s from chromium within a minute:\n%s", waitingFor, d.stderr.String())
	}
	panic("unreachable")
}

// call sends a command and returns its result; events that arrive
// meanwhile are kept for event.
func (d *devtools) call(method string, params any) json.RawMessage {
	d.t.Helper()
	res, err := d.try(method, params)
	if err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
	return res
}

// try is call for a command that may fail.
func (d *devtools) try(method string, params any) (json.RawMessage, error) {
	d.t.Helper()
	id := d.write(method, params)
	for {
		m := d.next("the answer to " + method)
		switch {
		case m.ID == id && m.Error != nil:
			return nil, errors.New(m.Error.Message)
		case m.ID == id:
			return m.Result, nil
		case m.Method != "":
			d.queued = append(d.queued, m)
		}
	}
}

// event returns the first event named method whose params match.
func (d *devtools) event(method string, match func(json.RawMessage) bool) json.RawMessage {
	d.t.Helper()
	for i, m := range d.queued {
		if m.Method == method && match(m.Params) {
			d.queued = slices.Delete(d.queued, i, i+1)
			return m.Params
		}
	}
	for {
		m := d.next("the event " + method)
		if m.Method == method && match(m.Params) {
			return m.Params
		}
		if m.Method != "" {
			d.queued = append(d.queued, m)
		}
	}
}

// download opens url in a new tab, waits for the download it starts to
// complete, and returns the saved file and the name Chromium was told to
// give it (the attachment's, or the page's download attribute).
func (d *devtools) download(url, dir string) (path, suggested string) {
	d.t.Helper()
	var target struct{ TargetID string }
	json.Unmarshal(d.call("Target.createTarget", map[string]any{"url": url}), &target)
	// A tab opened only for a download closes itself.
	defer d.try("Target.closeTarget", map[string]any{"targetId": target.TargetID})
	var begin struct{ GUID, SuggestedFilename, URL string }
	json.Unmarshal(d.event("Browser.downloadWillBegin", func(json.RawMessage) bool { return true }), &begin)
	var progress struct {
		State         string
		ReceivedBytes int64
	}
	json.Unmarshal(d.event("Browser.downloadProgress", func(p json.RawMessage) bool {
		var e struct{ GUID, State string }
		json.Unmarshal(p, &e)
		return e.GUID == begin.GUID && e.State != "inProgress"
	}), &progress)
	if progress.State != "completed" {
		d.t.Fatalf("the download of %s (from %s) ended %s after %d bytes", url, begin.URL, progress.State, progress.ReceivedBytes)
	}
	return filepath.Join(dir, begin.GUID), begin.SuggestedFilename
}

// TestDemoDownloadInChromium: the demo's export downloaded by headless
// Chromium, which asks for gzip, deflate, br and zstd, both as the link
// does with no script (a navigation to the attachment) and as the page's
// script does (fetch, then a blob saved under the attachment's name), is
// saved byte for byte as Go's http.Client (transparent gzip) and
// curl --compressed save it, and as the identity body; and each of
// those requests was answered compressed (recorded as sent, so that the
// test fails if compression silently stops).
func TestDemoDownloadInChromium(t *testing.T) {
	bin := chromium(t)
	at := time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)
	b := newBrowserServer(t, func(string) bool { return true }, export.WithClock(func() time.Time { return at }))
	addAgents(t, b, 3000) // a document of many compressed blocks, not one
	const name = "agentbot-export-demo-jan-2026-04-02.json"

	// The reference: the identity body, asked for as such.
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/api/export", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := b.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("identity: %d, Content-Encoding %q, %v", resp.StatusCode, resp.Header.Get("Content-Encoding"), err)
	}
	if len(want) < 500_000 {
		t.Fatalf("the document is %d bytes; the test wants one of many blocks", len(want))
	}
	if _, err := export.Decode(bytes.NewReader(want)); err != nil {
		t.Fatalf("the identity body is not an export: %v", err)
	}

	// sent checks that every export request since n was answered 200 with
	// a content coding the request offered (the demo's preferred zstd
	// when offered), and returns the codings sent.
	sent := func(t *testing.T, n int, who string) []string {
		t.Helper()
		ex := b.exportsSince(n)
		if len(ex) == 0 {
			t.Fatalf("%s: no request for /api/export reached the server", who)
		}
		var codings []string
		for _, e := range ex {
			offered := strings.ToLower(e.acceptEncoding)
			t.Logf("%s: %q sent Accept-Encoding %q, got %d with Content-Encoding %q", who, e.userAgent, e.acceptEncoding, e.status, e.contentEncoding)
			switch {
			case e.status != http.StatusOK:
				t.Errorf("%s: the export answered %d", who, e.status)
			case e.contentEncoding == "" || e.contentEncoding == "identity":
				t.Errorf("%s: sent uncompressed although the request offered %q", who, e.acceptEncoding)
			case !strings.Contains(offered, e.contentEncoding):
				t.Errorf("%s: sent %s, which the request (%q) did not offer", who, e.contentEncoding, e.acceptEncoding)
			case strings.Contains(offered, "zstd") && e.contentEncoding != "zstd":
				t.Errorf("%s: sent %s although zstd, the demo's preference, was offered", who, e.contentEncoding)
			}
			codings = append(codings, e.contentEncoding)
		}
		return codings
	}
	same := func(t *testing.T, who string, got []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s saved %d bytes that differ from the %d-byte document at byte %d", who, len(got), len(want), i)
		}
	}

	t.Run("chromium", func(t *testing.T) {
		dir := t.TempDir()
		d := startDevtools(t, bin, dir)
		for _, c := range []struct{ how, url string }{
			{"the link followed (no script)", b.URL + "/api/export"},
			{"the page's script (fetch, then a blob)", b.URL + "/test/click"},
		} {
			n := len(b.exportsSince(0))
			path, suggested := d.download(c.url, dir)
			if suggested != name {
				t.Errorf("%s: saved as %q, want %q", c.how, suggested, name)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "Chromium, "+c.how+",", got)
			if codings := sent(t, n, "Chromium, "+c.how); !slices.Contains(codings, "zstd") {
				t.Errorf("Chromium, %s: got %q; Chromium offers zstd, which the demo prefers", c.how, codings)
			}
		}
	})

	t.Run("Go http.Client", func(t *testing.T) {
		n := len(b.exportsSince(0))
		resp, err := b.Client().Get(b.URL + "/api/export") // the Transport asks for gzip, and decodes it
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Uncompressed {
			t.Error("the Transport did not decode a gzip body")
		}
		same(t, "Go's http.Client", got)
		if codings := sent(t, n, "Go's http.Client"); !slices.Equal(codings, []string{"gzip"}) {
			t.Errorf("Go's http.Client got %q, want gzip", codings)
		}
	})

	t.Run("curl --compressed", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not in PATH: the curl --compressed comparison skipped (Debian: apt-get install curl)")
		}
		n := len(b.exportsSince(0))
		out := filepath.Join(t.TempDir(), name)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if msg, err := exec.CommandContext(ctx, curl, "--compressed", "-sS", "--fail", "-o", out, b.URL+"/api/export").CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, msg)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "curl --compressed", got)
		sent(t, n, "curl --compressed")
	})
}

// addAgents gives the demo user n more agents, in one transaction.
func addAgents(t *testing.T, b *browserServer, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	w := &sqlfixture.Writer{DB: b.db, Dialect: sqlstore.SQLite, Layout: sqlstore.PrismaLayout(), Exec: tx}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		created := start.Add(time.Duration(i) * time.Minute)
		a := export.Agent{ID: fmt.Sprintf("agent-%05d", i), Name: fmt.Sprintf("agent number %d", i), Model: []string{"gpt-4o", "claude", "llama"}[i%3],
			Status: []string{"running", "stopped", "pending"}[i%3], CreatedAt: created, UpdatedAt: created.Add(time.Duration(i%97) * time.Hour)}
		if err := w.PutAgent(ctx, demoUserID, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
