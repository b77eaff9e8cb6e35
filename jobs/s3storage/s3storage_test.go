package s3storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	_ "modernc.org/sqlite"

	"github.com/agentbot/export"

	"github.com/agentbot/export/jobs"
	"github.com/agentbot/export/jobs/s3storage"
	"github.com/agentbot/export/jobs/storagetest"
	"github.com/agentbot/export/memstore"
)

// versitygw finds the S3-compatible server the tests start: on PATH, or
// where go install puts it.
func versitygw(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("S3 tests skipped: no versitygw on PATH or in $GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	return ""
}

// startServer runs versitygw over a directory of the test's own and
// returns a client for it; the server is stopped at the end.
func startServer(t *testing.T) *s3.Client {
	t.Helper()
	bin := versitygw(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := t.TempDir()
	var b [12]byte
	rand.Read(b[:])
	access, secret := "test", hex.EncodeToString(b[:])
	cmd := exec.Command(bin, "--port", addr, "--access", access, "--secret", secret, "posix", "--sidecar", t.TempDir(), root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}, nil
	})
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), UsePathStyle: true, Credentials: creds})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := client.ListBuckets(context.Background(), &s3.ListBucketsInput{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return client
}

var bucketN int

func newBucket(t *testing.T, client *s3.Client) string {
	t.Helper()
	bucketN++
	name := fmt.Sprintf("exports-%d", bucketN)
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestConformance(t *testing.T) {
	client := startServer(t)
	storagetest.Run(t, func(t *testing.T) jobs.Storage {
		return s3storage.New(client, newBucket(t, client), s3storage.WithPrefix("exports/"), s3storage.WithTempDir(t.TempDir()))
	})
}

// TestUploadLeavesNoTempFile: the spool file is unlinked as soon as it
// is made, so nothing stays in the temporary directory even while the
// document is written, nor after.
func TestUploadLeavesNoTempFile(t *testing.T) {
	client := startServer(t)
	tmp := t.TempDir()
	s := s3storage.New(client, newBucket(t, client), s3storage.WithTempDir(tmp))
	err := s.Put(context.Background(), "a.json", func(w io.Writer) error {
		w.Write([]byte("{}"))
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			return fmt.Errorf("%d files in the temporary directory during the upload", len(entries))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("%d files left in the temporary directory", len(entries))
	}
}

// readyJobOnS3 runs a runner whose files go to the S3 server, with opts,
// and a job of user_s3 to the end. It returns the runner, the storage,
// the job and the synchronous endpoint's document for the same instant.
func readyJobOnS3(t *testing.T, opts ...jobs.Option) (*jobs.Runner, *s3storage.Storage, jobs.Job, []byte) {
	t.Helper()
	client := startServer(t)
	storage := s3storage.New(client, newBucket(t, client), s3storage.WithTempDir(t.TempDir()))
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "jobs.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mem := memstore.New()
	mem.PutUser(export.User{ID: "user_s3", Email: "s3@example.com", Role: "user"})
	for i := range 500 {
		mem.PutAgent("user_s3", export.Agent{ID: fmt.Sprintf("agent_%03d", i), Name: "n", Model: "m", Status: "running", CreatedAt: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	at := time.Date(2026, 4, 2, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	ex := export.NewExporter(mem)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	all := append([]jobs.Option{jobs.WithStorage(storage), jobs.WithClock(clock), jobs.WithLogger(quiet),
		jobs.WithRiverConfig(func(c *river.Config) {
			c.FetchPollInterval, c.FetchCooldown, c.TestOnly = 20*time.Millisecond, 10*time.Millisecond, true
		})}, opts...)
	r, err := jobs.New(db, riversqlite.New(db), ex, all...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	j, _, err := r.Enqueue(ctx, "user_s3")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		js, err := r.Jobs(ctx, "user_s3")
		if err != nil {
			t.Fatal(err)
		}
		if js[0].Status == jobs.StatusReady {
			j = js[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job is %s", js[0].Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := httptest.NewRecorder()
	export.NewHandler(ex, s3User, export.WithClock(clock), export.WithLogger(quiet)).ServeHTTP(rec, httptest.NewRequest("GET", "/api/export", nil))
	return r, storage, j, rec.Body.Bytes()
}

func s3User(*http.Request) (string, error) { return "user_s3", nil }

// TestJobOnS3 runs a job whose file goes to the S3 server, and downloads
// it whole and by ranges through the job API.
func TestJobOnS3(t *testing.T) {
	r, storage, j, want := readyJobOnS3(t)
	ctx := context.Background()
	h := jobs.NewHandler(r, s3User)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/exports/"+j.ID+"/download", nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("download: %d, %d bytes, want 200 and the endpoint's %d", rec.Code, rec.Body.Len(), len(want))
	}
	req := httptest.NewRequest("GET", "/api/exports/"+j.ID+"/download", nil)
	req.Header.Set("Range", "bytes=100-199,1000-")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusPartialContent || !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("two ranges: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Contains(rec.Body.Bytes(), want[100:200]) || !bytes.Contains(rec.Body.Bytes(), want[1000:]) {
		t.Fatal("the multipart answer lacks a range")
	}
	keys, err := storage.Keys(ctx)
	if err != nil || len(keys) != 2 || keys[0] != j.ID+".json" || keys[1] != j.ID+".json.gz" {
		t.Fatalf("objects: %q, %v", keys, err)
	}
	if err := r.Delete(ctx, "user_s3", j.ID); err != nil {
		t.Fatal(err)
	}
	if keys, err := storage.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("objects after DELETE: %q, %v", keys, err)
	}
}

// TestPresignedRedirect: with WithPresignedRedirect, an authorised
// download is a 302 to a URL minted for it, valid for the time asked (at
// most 5 minutes), which serves the document (and its ranges) with the
// attachment name; another user still gets the 404.
func TestPresignedRedirect(t *testing.T) {
	r, _, j, want := readyJobOnS3(t, jobs.WithPresignedRedirect(time.Minute))
	h := jobs.NewHandler(r, s3User)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/exports/"+j.ID+"/download", nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("download: %d, Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
	loc := rec.Header().Get("Location")
	if !strings.Contains(loc, "X-Amz-Expires=60") {
		t.Fatalf("the URL is not valid for one minute: %s", loc)
	}
	resp, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("the presigned URL: %d, %d bytes, want the document's %d", resp.StatusCode, len(body), len(want))
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="agentbot-export-user_s3-2026-04-02.json"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	req, _ := http.NewRequest("GET", loc, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, want[10:20]) {
		t.Fatalf("a range of the presigned URL: %d %q", resp.StatusCode, part)
	}
	other := jobs.NewHandler(r, func(*http.Request) (string, error) { return "someone_else", nil })
	rec = httptest.NewRecorder()
	other.ServeHTTP(rec, httptest.NewRequest("GET", "/api/exports/"+j.ID+"/download", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Location") != "" {
		t.Fatalf("another user: %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
}
