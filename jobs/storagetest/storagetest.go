// Package storagetest is the conformance suite of jobs.Storage: every
// storage's tests run it (LocalDir's, s3storage's), and so can a host's
// own.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/agentbot/export/jobs"
)

// Run checks the contract of jobs.Storage on the empty storages that
// newStorage returns, one for each subtest.
func Run(t *testing.T, newStorage func(t *testing.T) jobs.Storage) {
	ctx := context.Background()
	doc := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 5000)

	t.Run("put, open, read, seek", func(t *testing.T) {
		s := newStorage(t)
		if err := s.Put(ctx, "aaaa.json", func(w io.Writer) error { _, err := w.Write(doc); return err }); err != nil {
			t.Fatalf("Put: %v", err)
		}
		o, err := s.Open(ctx, "aaaa.json")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer o.Close()
		size, err := o.Seek(0, io.SeekEnd)
		if err != nil || size != int64(len(doc)) {
			t.Fatalf("Seek(0, end) = %d, %v; want %d", size, err, len(doc))
		}
		if _, err := o.Seek(1000, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		part := make([]byte, 100)
		if _, err := io.ReadFull(o, part); err != nil || !bytes.Equal(part, doc[1000:1100]) {
			t.Fatalf("read at 1000: %v, %q", err, part)
		}
		if _, err := o.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(all, doc) {
			t.Fatalf("ReadAll: %v, %d bytes, want %d", err, len(all), len(doc))
		}
		keys, err := s.Keys(ctx)
		if err != nil || !slices.Equal(keys, []string{"aaaa.json"}) {
			t.Fatalf("Keys = %q, %v", keys, err)
		}
	})

	t.Run("a failed Put leaves nothing and keeps the old object", func(t *testing.T) {
		s := newStorage(t)
		boom := errors.New("boom")
		if err := s.Put(ctx, "bbbb.json", func(w io.Writer) error { w.Write(doc[:500]); return boom }); !errors.Is(err, boom) {
			t.Fatalf("Put = %v, want the writer's error", err)
		}
		if _, err := s.Open(ctx, "bbbb.json"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open after a failed Put = %v, want fs.ErrNotExist", err)
		}
		if keys, err := s.Keys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("Keys after a failed Put = %q, %v", keys, err)
		}
		if err := s.Put(ctx, "bbbb.json", func(w io.Writer) error { _, err := w.Write([]byte("old")); return err }); err != nil {
			t.Fatal(err)
		}
		s.Put(ctx, "bbbb.json", func(w io.Writer) error { w.Write([]byte("new, half")); return boom })
		o, err := s.Open(ctx, "bbbb.json")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || string(got) != "old" {
			t.Fatalf("after a failed replacement: %q, %v; want the old object", got, err)
		}
	})

	t.Run("delete, missing keys", func(t *testing.T) {
		s := newStorage(t)
		for _, k := range []string{"cccc.json", "dddd.json"} {
			if err := s.Put(ctx, k, func(w io.Writer) error { _, err := w.Write([]byte(k)); return err }); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "cccc.json"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Delete(ctx, "cccc.json"); err != nil {
			t.Fatalf("Delete of a missing key = %v, want nil", err)
		}
		if _, err := s.Open(ctx, "cccc.json"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open of a deleted key = %v, want fs.ErrNotExist", err)
		}
		keys, err := s.Keys(ctx)
		if err != nil || strings.Join(keys, ",") != "dddd.json" {
			t.Fatalf("Keys = %q, %v", keys, err)
		}
	})
}
