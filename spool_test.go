package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestSpoolKeepsEveryByte writes in chunks of every size around the
// threshold (the buffer, the file, and writes larger than the buffer) and
// reads the same bytes back, with no file left afterwards.
func TestSpoolKeepsEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, limit := range []int{1, 7, 64, 4096} {
		for _, total := range []int{0, 1, limit - 1, limit, limit + 1, 3*limit + 5, 50000} {
			dir := t.TempDir()
			s := &spool{dir: dir, limit: limit}
			var want bytes.Buffer
			for want.Len() < total {
				n := min(total-want.Len(), 1+rng.IntN(2*limit+2))
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				want.Write(p)
				if m, err := s.Write(p); m != n || err != nil {
					t.Fatalf("Write: %d, %v", m, err)
				}
			}
			if err := s.finish(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := s.WriteTo(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) || s.size != int64(want.Len()) {
				t.Fatalf("limit %d, %d bytes: read back %d bytes (size %d), not the same", limit, total, got.Len(), s.size)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(dir); len(left) > 0 {
				t.Fatalf("files left: %v", left)
			}
		}
	}
}

// TestSpoolFinishReportsALateFailure: bytes still in the buffer when the
// export ends are written by finish, before the status is chosen; a
// failure there is a spool error (a 500), not a short 200.
func TestSpoolFinishReportsALateFailure(t *testing.T) {
	s := &spool{dir: t.TempDir(), limit: 16}
	defer s.Close()
	if _, err := s.Write(make([]byte, 40)); err != nil { // now file-backed
		t.Fatal(err)
	}
	s.file.Close() // the disk goes away
	if _, err := s.Write([]byte("tail")); err != nil {
		t.Fatalf("a buffered write failed early: %v", err)
	}
	err := s.finish(context.Background())
	var ee *Error
	if !errors.As(err, &ee) || ee.Stage != StageSpool {
		t.Fatalf("finish: %v, want a StageSpool error", err)
	}
}

// TestSpoolFlusherEnds: the goroutine that writes the file ends with the
// spool, whether the export finished or failed part-way, and a failed
// file write stops the export at the next buffer, not only at finish.
func TestSpoolFlusherEnds(t *testing.T) {
	before := goleak.IgnoreCurrent()
	s := &spool{dir: t.TempDir(), limit: 16, digest: true}
	if _, err := s.Write(make([]byte, 3*minFileBuffer)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // no finish: the export failed
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)

	s = &spool{dir: t.TempDir(), limit: 16}
	defer s.Close()
	if _, err := s.Write(make([]byte, 40)); err != nil {
		t.Fatal(err)
	}
	s.file.Close() // the disk goes away
	var err error
	for i := 0; i < 4 && err == nil; i++ {
		_, err = s.Write(make([]byte, minFileBuffer))
	}
	var ee *Error
	if !errors.As(err, &ee) || ee.Stage != StageSpool {
		t.Fatalf("Write after a failed file write: %v, want a StageSpool error", err)
	}
}

// TestSpoolDigestIsOfEveryByte: the digest is the SHA-256 of the bytes
// sent, whether the document stayed in memory or went to the file, and
// for a HEAD, which stores nothing.
func TestSpoolDigestIsOfEveryByte(t *testing.T) {
	for _, size := range []int{0, 10, 100, 3*minFileBuffer + 17} {
		for _, head := range []bool{false, true} {
			p := make([]byte, size)
			for i := range p {
				p[i] = byte(i * 7)
			}
			s := &spool{dir: t.TempDir(), limit: 64, digest: true, countOnly: head}
			for q := p; len(q) > 0; {
				n := min(len(q), 1000)
				if _, err := s.Write(q[:n]); err != nil {
					t.Fatal(err)
				}
				q = q[n:]
			}
			if err := s.finish(context.Background()); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(p)
			if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; s.reprDigest() != want {
				t.Errorf("%d bytes, HEAD %v: %s, want %s", size, head, s.reprDigest(), want)
			}
			s.Close()
		}
	}
}
