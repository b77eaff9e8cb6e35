package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Storage keeps finished export files. Keys are the runner's own (a job
// ID and ".json"): a Storage never sees a client's input.
//
// A Storage is used by many goroutines at once and must be safe for that.
type Storage interface {
	// Put stores what write writes under key. Nothing is visible under
	// key until write has returned nil and the whole object is stored;
	// then it replaces any object of that key. When write or storing
	// fails, Put returns the error and leaves no object under key (a
	// process killed mid-Put may leave a partial copy under a name Keys
	// does not list, which the next Put of that key removes).
	Put(ctx context.Context, key string, write func(io.Writer) error) error
	// Open returns the object stored under key, to be read and seeked in
	// (http.ServeContent). A missing key is an error for which
	// errors.Is(err, fs.ErrNotExist) holds; any other error is a failure
	// of the storage.
	Open(ctx context.Context, key string) (Object, error)
	// Delete removes the object under key. A missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys of the objects stored (complete ones only),
	// for the cleanup to find files no job owns.
	Keys(ctx context.Context) ([]string, error)
}

// Redirector is an optional ability of a Storage: a URL from which the
// object under key can be fetched directly for ttl, without credentials
// (an S3 presigned URL), its download named filename. WithPresignedRedirect
// sends clients there.
type Redirector interface {
	RedirectURL(ctx context.Context, key string, ttl time.Duration, filename string) (string, error)
}

// Object is a stored file, open for reading.
type Object interface {
	io.ReadSeekCloser
}

// LocalDir is the default Storage: files in one private directory of
// the local file system, each 0600, written under a temporary name and
// renamed to its key only once complete and synced.
type LocalDir struct {
	dir string
}

var _ Storage = (*LocalDir)(nil)

// partialSuffix marks a file still being written.
const partialSuffix = ".partial"

// NewLocalDir returns a Storage in dir, creating it (0700) if missing.
// An existing dir that others may read or write is refused: export files
// hold a user's account data.
func NewLocalDir(dir string) (*LocalDir, error) {
	if dir == "" {
		return nil, errors.New("jobs: NewLocalDir needs a directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("jobs: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("jobs: %s is open to other users (mode %v); export files need a private directory (0700)", dir, fi.Mode().Perm())
	}
	return &LocalDir{dir: dir}, nil
}

// Dir returns the directory the files are kept in.
func (l *LocalDir) Dir() string { return l.dir }

func (l *LocalDir) path(key string) (string, error) {
	if key == "" || strings.ContainsAny(key, `/\`) || strings.HasPrefix(key, ".") {
		return "", fmt.Errorf("jobs: invalid storage key %q", key)
	}
	return filepath.Join(l.dir, key), nil
}

// Put writes to "." + key + "." + random + ".partial", syncs it and
// renames it to key. Partial files of key left by an attempt that died
// are removed first: a retry only starts once that attempt is over, and a
// writer that is somehow still alive then fails at its rename.
func (l *LocalDir) Put(ctx context.Context, key string, write func(io.Writer) error) (err error) {
	final, err := l.path(key)
	if err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(l.dir, "."+globEscape(key)+".*"+partialSuffix))
	for _, p := range stale {
		os.Remove(p)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(l.dir, "."+key+"."+hex.EncodeToString(rnd[:])+partialSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, final); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	if d, derr := os.Open(l.dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Open opens the file of key.
func (l *LocalDir) Open(ctx context.Context, key string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Delete removes the file of key and any partial copy of it.
func (l *LocalDir) Delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(l.dir, "."+globEscape(key)+".*"+partialSuffix))
	for _, s := range stale {
		os.Remove(s)
	}
	return nil
}

// Keys lists the complete files (not partial ones).
func (l *LocalDir) Keys(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			keys = append(keys, e.Name())
		}
	}
	return keys, nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}
