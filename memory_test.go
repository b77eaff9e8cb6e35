package export_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbot/export"
)

// genStore makes up a user's records on the fly, so that an account of
// any size costs the store no memory. Every sampleEvery records it
// measures the live heap (after a GC), which is what the export holds.
type genStore struct {
	n           int // records per section
	sampleEvery int
	maxLive     uint64
}

func (g *genStore) View(ctx context.Context, id string, fn func(export.Tx) error) error {
	if id != "big" {
		return export.ErrUserNotFound
	}
	return fn(g)
}

func (g *genStore) sample() {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	g.maxLive = max(g.maxLive, ms.HeapAlloc)
}

var genBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (g *genStore) User(context.Context) (export.User, error) {
	return export.User{ID: "big", Email: "big@example.com", Role: "user"}, nil
}

// genIDs are made once, so that the generator itself allocates nothing
// per record and the allocations counted are the encoder's.
var genIDs = func() (ids [1024]string) {
	for i := range ids {
		ids[i] = "rec_" + strconv.Itoa(i)
	}
	return ids
}()

// gen yields n records made by mk, sampling the heap as it goes.
func gen[T any](g *genStore, mk func(i int, id string, at time.Time) T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for i := range g.n {
			if g.sampleEvery > 0 && i%g.sampleEvery == 0 {
				g.sample()
			}
			if !yield(mk(i, genIDs[i%len(genIDs)], genBase.Add(time.Duration(i)*time.Millisecond)), nil) {
				return
			}
		}
	}
}

func (g *genStore) Agents(context.Context) iter.Seq2[export.Agent, error] {
	return gen(g, func(i int, id string, at time.Time) export.Agent {
		return export.Agent{ID: id, Name: "agent", Model: "gpt-4o", Status: "running", CreatedAt: at, UpdatedAt: at}
	})
}

func (g *genStore) ScheduledTasks(context.Context) iter.Seq2[export.ScheduledTask, error] {
	return gen(g, func(i int, id string, at time.Time) export.ScheduledTask {
		return export.ScheduledTask{ID: id, Name: "task", CronSchedule: "0 9 * * *", Enabled: i%2 == 0, CreatedAt: at}
	})
}

func (g *genStore) Workflows(context.Context) iter.Seq2[export.Workflow, error] {
	return gen(g, func(i int, id string, at time.Time) export.Workflow {
		return export.Workflow{ID: id, Name: "flow", Enabled: true, CreatedAt: at}
	})
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	// Twice: the first collection moves what sync.Pools hold to their
	// victim caches, the second frees it, so that a pool emptied between
	// two readings does not count against what was allocated meanwhile.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestExportMemoryIsBounded exports a million records (a third per
// section) from a generating store and checks that the live heap during
// the export stays within a small bound of where it started, and that the
// encoder allocates nothing per record.
func TestExportMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("exports a million records; skipped with -short")
	}
	const records = 1_000_000
	g := &genStore{n: (records + 2) / 3, sampleEvery: 50_000} // at least a million in all
	exp := export.NewExporter(g)
	before := liveHeap()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	res, err := exp.Export(context.Background(), io.Discard, export.Request{UserID: "big", ExportedAt: genBase})
	runtime.ReadMemStats(&ms1)
	if err != nil {
		t.Fatal(err)
	}
	grew := max(int64(g.maxLive)-int64(before), 0)
	mallocs := float64(ms1.Mallocs-ms0.Mallocs) / float64(3*g.n)
	t.Logf("%d records, %d MB of JSON: live heap grew by at most %d KiB; %.4f allocations per record",
		3*g.n, res.Bytes>>20, grew>>10, mallocs)
	if grew > 2<<20 {
		t.Errorf("live heap grew by %d KiB during the export, want under 2 MiB", grew>>10)
	}
	// The heap samples allocate a little; a whole allocation per
	// hundred records would mean the encoder allocates on its hot path.
	if mallocs > 0.01 {
		t.Errorf("%.4f allocations per record; the encoder should make none", mallocs)
	}
}

// TestHandlerMemoryIsBounded serves a large account through the handler,
// which spools it to a temporary file, and checks the live heap and that
// the file is gone afterwards.
func TestHandlerMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("spools a large export to disk; skipped with -short")
	}
	// gzip adds its compressor (a fixed window and tables, the same for
	// any account) to the spool's buffers: measured here, and allowed on
	// top of the bound.
	compressor := gzipWriterSize()
	t.Logf("one gzip writer at level %d holds %d KiB", export.DefaultGzipLevel, compressor>>10)
	for _, coding := range []string{"identity", "gzip"} {
		t.Run(coding, func(t *testing.T) {
			dir := t.TempDir()
			g := &genStore{n: 100_000, sampleEvery: 20_000}
			h := export.NewHandler(export.NewExporter(g), fixedUser("big"), export.WithLogger(quietLogger), export.WithSpool(1<<20, dir))
			before := liveHeap()
			w := &discardResponse{header: http.Header{}}
			req, _ := http.NewRequest(http.MethodGet, "/api/export", nil)
			req.Header.Set("Accept-Encoding", coding)
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				t.Fatalf("status %d", w.status)
			}
			if want := w.header.Get("Content-Length"); want != fmt.Sprint(w.n) {
				t.Fatalf("Content-Length %s, body %d bytes", want, w.n)
			}
			if got := w.header.Get("Content-Encoding"); got != strings.TrimPrefix(coding, "identity") {
				t.Fatalf("Content-Encoding %q", got)
			}
			grew := max(int64(g.maxLive)-int64(before), 0)
			t.Logf("%d records, %d KB spooled (%s): live heap grew by at most %d KiB (spool threshold 1 MiB)", 3*g.n, w.n>>10, coding, grew>>10)
			bound := int64(3 << 20)
			if coding == "gzip" {
				// The compressor, and 1 MiB for the coded spool
				// (codedSpool): its two file buffers of 256 KiB, the
				// 64 KiB its compressor reads from the document's file at
				// a time, what the compressor has in flight. Measured
				// here: up to 890 KiB beyond the compressor's own.
				bound += compressor + 1<<20
			}
			if grew > bound {
				t.Errorf("live heap grew by %d KiB, want under %d KiB", grew>>10, bound>>10)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// gzipWriterSize is the live heap a gzip writer at the handler's level
// holds once it has compressed something.
func gzipWriterSize() int64 {
	before := liveHeap()
	z, _ := gzip.NewWriterLevel(io.Discard, export.DefaultGzipLevel)
	// Enough input to fill its window and tables many times over.
	line := []byte(`    {"id": "agent-000123", "name": "Agent 123", "model": "gpt-4", "createdAt": "2026-04-02T12:00:00.000Z"},` + "\n")
	for range (4 << 20) / len(line) {
		z.Write(line)
	}
	z.Flush()
	size := int64(liveHeap()) - int64(before)
	runtime.KeepAlive(z)
	return max(size, 0)
}

// discardResponse is an http.ResponseWriter that counts the body.
type discardResponse struct {
	header http.Header
	status int
	n      int64
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(s int)   { d.status = s }
func (d *discardResponse) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	d.n += int64(len(p))
	return len(p), nil
}
