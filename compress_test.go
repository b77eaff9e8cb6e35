package export_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbot/export"
	"github.com/agentbot/export/memstore"
)

// decodeBody undoes the content coding of a body, as a client would.
func decodeBody(t testing.TB, coding string, body []byte) string {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return string(body)
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		zr.Multistream(false)
		r = zr
	case "deflate":
		r = flate.NewReader(bytes.NewReader(body))
	default:
		t.Fatalf("unexpected Content-Encoding %q", coding)
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err, "decoding %s", coding)
	return string(b)
}

// withDeflate registers a second coding (raw DEFLATE, from the standard
// library) through WithEncoder, as a host registers zstd.
var withDeflate = export.WithEncoder("deflate", func(w io.Writer) (io.WriteCloser, error) {
	return flate.NewWriter(w, flate.BestSpeed)
})

// rawClient sends Accept-Encoding as given and never decodes.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func getRaw(t testing.TB, url, method, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	resp, err := rawClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// bigStore is a memstore account of a few MB of JSON, past the spool
// threshold, with the varied IDs and times of a real one.
func bigStore(t testing.TB, n int) *memstore.Store {
	t.Helper()
	s := memstore.New()
	s.PutUser(export.User{ID: "big_user", Email: "big@example.com", Role: "user", Plan: export.Some("solo")})
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Update("big_user", func(b *memstore.Batch) {
		for i := range n {
			ts := at.Add(time.Duration(i*7919) * time.Millisecond)
			id := fmt.Sprintf("c%024x", uint64(i)*0x9e3779b97f4a7c15)
			b.PutAgent(export.Agent{ID: "a" + id, Name: "agent-" + strconv.Itoa(i), Model: "gpt-4o", Status: "running", CreatedAt: ts, UpdatedAt: ts.Add(time.Hour)})
			b.PutScheduledTask(export.ScheduledTask{ID: "t" + id, Name: "task " + strconv.Itoa(i), CronSchedule: "0 9 * * *", Enabled: i%3 == 0, CreatedAt: ts})
			b.PutWorkflow(export.Workflow{ID: "w" + id, Name: "flow", Enabled: i%2 == 0, CreatedAt: ts})
		}
	}))
	return s
}

// TestCompressedBodies: for every golden document and a large generated
// one, spooled in memory, spooled to a file and streamed, each coding's
// body decodes to the identity body byte for byte; the 200 keeps every
// header of the contract and adds Content-Encoding; Content-Length and
// Repr-Digest are those of the bytes received; HEAD answers as GET.
func TestCompressedBodies(t *testing.T) {
	type account struct {
		store  export.Store
		userID string
		at     time.Time
	}
	accounts := map[string]account{}
	for name, doc := range goldenCases(t) {
		accounts[name] = account{storeOf(t, doc), doc.User.ID, doc.ExportedAt}
	}
	accounts["generated-large"] = account{bigStore(t, 20_000), "big_user", exportTime}
	modes := map[string][]export.Option{
		"in memory": nil,
		"spooled":   {export.WithSpool(4096, t.TempDir())},
		"streaming": {export.WithStreaming(true)},
	}
	for name, acc := range accounts {
		for mode, opts := range modes {
			t.Run(name+"/"+mode, func(t *testing.T) {
				h := newTestHandler(t, acc.store, fixedUser(acc.userID), append(slices.Clone(opts), clockAt(acc.at), withDeflate)...)
				srv := httptest.NewServer(h)
				defer srv.Close()
				identity, plain := getRaw(t, srv.URL, http.MethodGet, "")
				require.Equal(t, http.StatusOK, identity.StatusCode)
				require.Empty(t, identity.Header.Get("Content-Encoding"))
				if name != "generated-large" {
					requireSameText(t, readGolden(t, name), string(plain))
				}
				for _, c := range []struct{ accept, coding string }{
					{"gzip", "gzip"},
					{"deflate, gzip", "deflate"}, // a registered coding comes first among equals
					{"gzip;q=1, deflate;q=0.5", "gzip"},
					{"br", ""},
					{"gzip;q=0.5, identity", ""},
				} {
					resp, body := getRaw(t, srv.URL, http.MethodGet, c.accept)
					require.Equal(t, http.StatusOK, resp.StatusCode, c.accept)
					require.Equal(t, c.coding, resp.Header.Get("Content-Encoding"), c.accept)
					for _, h := range []string{"Content-Type", "Content-Disposition", "Cache-Control", "X-Content-Type-Options"} {
						require.Equal(t, identity.Header.Values(h), resp.Header.Values(h), "%s with %q", h, c.accept)
					}
					require.Equal(t, []string{"application/json"}, resp.Header.Values("Content-Type"))
					require.Equal(t, []string{"Accept-Encoding"}, resp.Header.Values("Vary"))
					require.Equal(t, string(plain), decodeBody(t, c.coding, body), "decoded body, %q", c.accept)
					if mode == "streaming" {
						require.Equal(t, int64(-1), resp.ContentLength)
						continue
					}
					require.Equal(t, int64(len(body)), resp.ContentLength, "Content-Length, %q", c.accept)
					require.Equal(t, sha256Field(string(body)), resp.Header.Get("Repr-Digest"), "Repr-Digest is of the bytes sent")
					head, hbody := getRaw(t, srv.URL, http.MethodHead, c.accept)
					require.Empty(t, hbody)
					require.Equal(t, resp.Header.Get("Content-Length"), head.Header.Get("Content-Length"), "HEAD, %q", c.accept)
					resp.Header.Del("Date")
					head.Header.Del("Date")
					require.Equal(t, resp.Header, head.Header, "HEAD must answer with GET's headers, %q", c.accept)
				}
			})
		}
	}
}

// TestCompressionOff: WithoutCompression, or withdrawing gzip, answers
// identity whatever the client asks, still with Vary.
func TestCompressionOff(t *testing.T) {
	for name, opt := range map[string]export.Option{
		"WithoutCompression": export.WithoutCompression(),
		"gzip withdrawn":     export.WithEncoder("GZIP", nil),
		"deflate then off":   func(h *export.Handler) { withDeflate(h); export.WithoutCompression()(h) },
		"registered withdrawn": func(h *export.Handler) {
			withDeflate(h)
			export.WithEncoder("deflate", nil)(h)
			export.WithEncoder("gzip", nil)(h)
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), opt)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
			req.Header.Set("Accept-Encoding", "gzip, deflate, *")
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Empty(t, rec.Header().Get("Content-Encoding"))
			require.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
			require.Equal(t, readGolden(t, "contract-example"), rec.Body.String())
		})
	}
	for _, bad := range []string{"", "identity", "*", "x-gzip", "g zip", "zstd;q=1"} {
		require.Panics(t, func() {
			newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithEncoder(bad, func(w io.Writer) (io.WriteCloser, error) { return nil, nil }))
		}, "WithEncoder(%q)", bad)
	}
}

// TestErrorsAreNotCompressed: every error answer carries Vary, no
// Content-Encoding, and its plain JSON body, whatever the client accepts.
func TestErrorsAreNotCompressed(t *testing.T) {
	doc := goldenCases(t)["contract-example"]
	busy := export.NewLimiter(export.Limits{})
	release, err := busy.Acquire(context.Background(), doc.User.ID)
	require.NoError(t, err)
	defer release()
	cases := []struct {
		name   string
		h      http.Handler
		method string
		status int
		body   string
	}{
		{"405", newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID)), http.MethodPost, 405, `{"error":"Method Not Allowed"}`},
		{"401", newTestHandler(t, storeOf(t, doc), fixedUser("")), http.MethodGet, 401, `{"error":"Unauthorized"}`},
		{"429", newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithLimiter(busy)), http.MethodGet, 429, `{"error":"Too Many Requests"}`},
		{"500", newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows}, fixedUser(doc.User.ID)), http.MethodGet, 500,
			`{"error":"Export failed","message":"could not read workflows"}`},
		{"500 streaming", newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageUser}, fixedUser(doc.User.ID), export.WithStreaming(true)), http.MethodGet, 500,
			`{"error":"Export failed","message":"could not read user"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(c.method, "/api/export", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			c.h.ServeHTTP(rec, req)
			requireErrorResponse(t, rec, c.status, c.body)
			require.Empty(t, rec.Header().Get("Content-Encoding"))
			require.Equal(t, []string{"Accept-Encoding"}, rec.Header().Values("Vary"))
		})
	}
}

// TestStreamingGzipAbortsOnLateFailure: a store failing after the first
// bytes of a gzip-coded stream went out reaches Go's http.Client (which
// decodes gzip itself) as an error reading the body, never a clean end.
func TestStreamingGzipAbortsOnLateFailure(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	var events []export.Event
	var mu sync.Mutex
	h := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 200}, fixedUser(doc.User.ID),
		export.WithStreaming(true),
		export.WithAuditHook(func(_ *http.Request, ev export.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL) // the Transport asks for gzip and decodes it
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, resp.Uncompressed, "the response was not gzip-coded")
	body, err := io.ReadAll(resp.Body)
	require.Error(t, err, "the client must see the transfer fail")
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NotEmpty(t, body, "part of the document had come through")
	require.False(t, strings.HasSuffix(string(body), "\n}"), "the body must not look complete")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 1 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, export.OutcomeAborted, events[0].Outcome)
	require.Equal(t, "gzip", events[0].Encoding)
	require.Positive(t, events[0].SentBytes)
}

// TestCompressedAuditEvent: the event has the document's size, the size
// sent and the coding.
func TestCompressedAuditEvent(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	want := readGolden(t, "many-records")
	for _, streaming := range []bool{false, true} {
		var ev export.Event
		h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), clockAt(doc.ExportedAt), export.WithStreaming(streaming),
			export.WithAuditHook(func(_ *http.Request, e export.Event) { ev = e }))
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if streaming && method == http.MethodHead {
				continue
			}
			for _, accept := range []string{"", "gzip"} {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(method, "/api/export", nil)
				if accept != "" {
					req.Header.Set("Accept-Encoding", accept)
				}
				h.ServeHTTP(rec, req)
				require.Equal(t, http.StatusOK, rec.Code)
				label := fmt.Sprintf("streaming=%v %s %q", streaming, method, accept)
				require.Equal(t, int64(len(want)), ev.Bytes, label)
				if accept == "" {
					require.Equal(t, "identity", ev.Encoding, label)
					require.Equal(t, ev.Bytes, ev.SentBytes, label)
					continue
				}
				require.Equal(t, "gzip", ev.Encoding, label)
				require.Less(t, ev.SentBytes, ev.Bytes/5, label)
				if method == http.MethodGet {
					require.Equal(t, int64(rec.Body.Len()), ev.SentBytes, label)
				} else {
					require.Equal(t, rec.Header().Get("Content-Length"), strconv.FormatInt(ev.SentBytes, 10), label)
				}
			}
		}
	}
	var ev export.Event
	h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), export.WithAuditHook(func(_ *http.Request, e export.Event) { ev = e }))
	do(h, http.MethodPost)
	require.Empty(t, ev.Encoding, "no export began")
	require.Zero(t, ev.SentBytes)
}

// TestCurlCompressed downloads with curl --compressed, as a user would:
// the saved file is the document, and a late failure of a streamed
// export is a failed transfer for curl too.
func TestCurlCompressed(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl tests skipped: no curl on PATH")
	}
	doc := goldenCases(t)["many-records"]
	want := readGolden(t, "many-records")
	dir := t.TempDir()
	for _, streaming := range []bool{false, true} {
		h := newTestHandler(t, storeOf(t, doc), fixedUser(doc.User.ID), clockAt(doc.ExportedAt), export.WithStreaming(streaming))
		srv := httptest.NewServer(h)
		out := filepath.Join(dir, fmt.Sprintf("export-%v.json", streaming))
		cmd := exec.Command(curl, "--silent", "--show-error", "--fail", "--compressed", "-o", out, "-w", "%{size_download} %{content_type}", srv.URL)
		got, err := cmd.CombinedOutput()
		srv.Close()
		require.NoError(t, err, "curl: %s", got)
		saved, err := os.ReadFile(out)
		require.NoError(t, err)
		requireSameText(t, want, string(saved))
		var size int
		var ctype string
		_, err = fmt.Sscan(string(got), &size, &ctype)
		require.NoError(t, err)
		require.Less(t, size, len(want)/5, "curl received the compressed body")
		require.Equal(t, "application/json", ctype)
	}

	h := newTestHandler(t, &faultStore{Store: storeOf(t, doc), stage: export.StageWorkflows, after: 200}, fixedUser(doc.User.ID), export.WithStreaming(true))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	srv.Start()
	defer srv.Close()
	out := filepath.Join(dir, "broken.json")
	got, err := exec.Command(curl, "--silent", "--show-error", "--compressed", "-o", out, srv.URL).CombinedOutput()
	require.Error(t, err, "curl must report the broken transfer: %s", got)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	t.Logf("curl on the cut stream: exit %d, %s", exit.ExitCode(), strings.TrimSpace(string(got)))
}

// TestEncoderFailures: a registered encoder that fails to start, or
// returns no writer, is a clean 500 naming the compression, in both modes.
func TestEncoderFailures(t *testing.T) {
	for name, newWriter := range map[string]func(io.Writer) (io.WriteCloser, error){
		"error":     func(io.Writer) (io.WriteCloser, error) { return nil, errSecret },
		"no writer": func(io.Writer) (io.WriteCloser, error) { return nil, nil },
	} {
		for _, streaming := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/streaming=%v", name, streaming), func(t *testing.T) {
				h := newTestHandler(t, exampleStore(t), fixedUser("user_abc123"), export.WithEncoder("zstd", newWriter), export.WithStreaming(streaming))
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
				req.Header.Set("Accept-Encoding", "zstd")
				h.ServeHTTP(rec, req)
				requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"could not compress document"}`)
				require.Empty(t, rec.Header().Get("Content-Encoding"))
			})
		}
	}
}

// failingCoder is a coding that fails once it has been given after bytes
// (on Write), or when it is closed (closeFails). Its output is discarded
// beyond a first byte, so that a coded spool exists.
type failingCoder struct {
	w          io.Writer
	after      int
	closeFails bool
	n          int
}

func (f *failingCoder) Write(p []byte) (int, error) {
	if f.n == 0 {
		f.w.Write([]byte{'x'})
	}
	f.n += len(p)
	if f.after >= 0 && f.n > f.after {
		return 0, errSecret
	}
	return len(p), nil
}

func (f *failingCoder) Close() error {
	if f.closeFails {
		return errSecret
	}
	return nil
}

// TestCodedSpoolFailures: a coding that fails part-way, or at its end, is
// a clean 500 (could not compress document) whether the document stayed
// in memory or was compressed from the spool's file by its follower; no
// file is left, no goroutine outlives the request, and the next export
// is served.
func TestCodedSpoolFailures(t *testing.T) {
	for _, c := range []struct {
		name       string
		after      int
		closeFails bool
	}{
		{"fails at once", 0, false},
		{"fails part-way", 50_000, false},
		{"fails at the end", -1, true},
	} {
		for _, threshold := range []int{0, 4096} {
			t.Run(fmt.Sprintf("%s/threshold=%d", c.name, threshold), func(t *testing.T) {
				before := goleak.IgnoreCurrent()
				dir := t.TempDir()
				coding := export.WithEncoder("failing", func(w io.Writer) (io.WriteCloser, error) {
					return &failingCoder{w: w, after: c.after, closeFails: c.closeFails}, nil
				})
				h := newTestHandler(t, bigStore(t, 2_000), fixedUser("big_user"), coding, export.WithSpool(threshold, dir))
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
				req.Header.Set("Accept-Encoding", "failing")
				h.ServeHTTP(rec, req)
				requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"could not compress document"}`)
				require.Empty(t, rec.Header().Get("Content-Encoding"))
				left, err := os.ReadDir(dir)
				require.NoError(t, err)
				require.Empty(t, left, "temporary files left")
				goleak.VerifyNone(t, before)

				ok := httptest.NewRecorder()
				h.ServeHTTP(ok, httptest.NewRequest(http.MethodGet, "/api/export", nil))
				require.Equal(t, http.StatusOK, ok.Code, "the next export, in identity")
			})
		}
	}
}

// TestCodingFailureStopsTheExport: a coding that fails at its first
// write, on a document past the threshold, stops the export then, not
// after the store's last record.
func TestCodingFailureStopsTheExport(t *testing.T) {
	var ev export.Event
	coding := export.WithEncoder("failing", func(w io.Writer) (io.WriteCloser, error) {
		return &failingCoder{w: w, after: 0}, nil
	})
	h := newTestHandler(t, bigStore(t, 20_000), fixedUser("big_user"), coding, export.WithSpool(4096, t.TempDir()),
		export.WithAuditHook(func(_ *http.Request, e export.Event) { ev = e }))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
	req.Header.Set("Accept-Encoding", "failing")
	h.ServeHTTP(rec, req)
	requireErrorResponse(t, rec, http.StatusInternalServerError, `{"error":"Export failed","message":"could not compress document"}`)
	require.Less(t, ev.Agents+ev.ScheduledTasks+ev.Workflows, 3*20_000, "the export went on after its coding failed")
}
