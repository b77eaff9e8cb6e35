package export

import (
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// spool holds a finished document until the response is sent, so that a
// failure part-way is still a clean 500 and the 200 carries
// Content-Length. It keeps up to limit bytes in memory and moves to a
// temporary file beyond that; Close always removes the file.
//
// Past the threshold a second goroutine (flusher) hashes each full buffer
// and writes it to the file while the encoder fills the other, so neither
// the digest nor the file system's time is on the encoder's path: pprof
// of the example server on a 300,000-record PostgreSQL export put SHA-256
// at a fifth of its CPU, done inline. The two buffers are the only
// memory: the encoder waits for the flusher if it falls behind.
type spool struct {
	dir   string
	limit int
	mem   []byte
	file  *os.File
	path  string // set while the file still has a name to remove
	size  int64
	fl    *flusher
	done  bool // finish has run

	countOnly bool      // HEAD: only the size (and the digest) is needed
	digest    bool      // hash what is written, for reprDigest
	sum       hash.Hash // SHA-256 of the bytes written, when digest; the flusher's while it runs
}

// minFileBuffer is the least a buffer holds before it goes to the file,
// whatever the threshold (WithSpool(1, dir) spools every document).
const minFileBuffer = 256 << 10

// sums recycles the spools' SHA-256 states between requests.
var sums = sync.Pool{New: func() any { return sha256.New() }}

// spoolBufs recycles the in-memory part of spools between requests.
var spoolBufs sync.Pool

func (s *spool) Write(p []byte) (int, error) {
	n := len(p)
	if s.countOnly {
		if s.digest {
			s.hash(p)
		}
		s.size += int64(n)
		return n, nil
	}
	if s.mem == nil {
		if b, ok := spoolBufs.Get().(*[]byte); ok {
			s.mem = (*b)[:0]
		}
	}
	for len(s.mem)+len(p) > s.bufferSize() {
		k := s.bufferSize() - len(s.mem)
		s.mem = append(s.mem, p[:k]...)
		p = p[k:]
		s.size += int64(k)
		if err := s.drain(); err != nil {
			return n - len(p), &Error{Stage: StageSpool, Err: err}
		}
	}
	s.mem = append(s.mem, p...)
	s.size += int64(len(p))
	return n, nil
}

// bufferSize is how much is buffered before the next move: the threshold
// while the document may still fit in memory, then a file buffer.
func (s *spool) bufferSize() int {
	if s.fl == nil {
		return s.limit
	}
	return max(s.limit, minFileBuffer)
}

func (s *spool) hash(p []byte) {
	if s.sum == nil {
		s.sum = sums.Get().(hash.Hash)
	}
	s.sum.Write(p)
}

// drain hands what is buffered to the flusher, creating the file and
// starting the flusher the first time, and goes on in the other buffer.
func (s *spool) drain() error {
	if s.fl == nil {
		if err := s.toFile(); err != nil {
			return err
		}
		var sum hash.Hash
		if s.digest {
			sum = sums.Get().(hash.Hash)
		}
		s.sum = sum
		s.fl = startFlusher(s.file, sum, max(s.limit, minFileBuffer))
	}
	buf, err := s.fl.swap(s.mem)
	s.mem = buf
	return err
}
func (s *spool) toFile() error {
	f, err := os.CreateTemp(s.dir, "export-*.json")
	if err != nil {
		return err
	}
	s.file = f
	// Unlink at once where the OS allows it (not on Windows): the data
	// then lives only as long as the descriptor, so no file is left behind
	// even if the process is killed mid-export.
	if os.Remove(f.Name()) != nil {
		s.path = f.Name()
	}
	return nil
}

// finish writes out what is still buffered and waits for the file to
// hold it all, so that every failure of the spool happens before the
// response's status is chosen.
func (s *spool) finish() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.fl == nil {
		if s.digest && !s.countOnly {
			s.hash(s.mem) // all of it is in memory
		}
		return nil
	}
	var err error
	if len(s.mem) > 0 {
		s.mem, err = s.fl.swap(s.mem)
	}
	if ferr := s.fl.stop(false); err == nil {
		err = ferr
	}
	if err != nil {
		return &Error{Stage: StageSpool, Err: err}
	}
	return nil
}

// reprDigest returns the Repr-Digest field value (RFC 9530) of what was
// written: sha-256=:<base64 of the SHA-256>:.
func (s *spool) reprDigest() string {
	if s.sum == nil { // nothing was written
		s.sum = sums.Get().(hash.Hash)
	}
	var sum [sha256.Size]byte
	var field [len("sha-256=::") + 44]byte
	b := append(field[:0], "sha-256=:"...)
	b = base64.StdEncoding.AppendEncode(b, s.sum.Sum(sum[:0]))
	return string(append(b, ':'))
}

// WriteTo sends the spooled document to w, after finish.
func (s *spool) WriteTo(w io.Writer) (int64, error) {
	if s.file == nil {
		n, err := w.Write(s.mem)
		return int64(n), err
	}
	if err := s.finish(); err != nil {
		return 0, err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	// The file itself, not io.Copy's wrapper of it, so that a net.Conn
	// below w can send it with sendfile.
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(s.file)
	}
	return io.Copy(w, s.file)
}

func (s *spool) recycle() {
	if s.mem != nil && cap(s.mem) <= 2*s.limit {
		b := s.mem[:0]
		spoolBufs.Put(&b)
	}
	s.mem = nil
}

// Close releases the file, if any, and removes it.
func (s *spool) Close() error {
	if s.fl != nil && !s.fl.stopped() {
		s.fl.stop(true) // an export that failed: what the flusher had is not needed
	}
	s.recycle()
	if s.sum != nil {
		s.sum.Reset()
		sums.Put(s.sum)
		s.sum = nil
	}
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	if s.path != "" {
		if rerr := os.Remove(s.path); err == nil {
			err = rerr
		}
	}
	s.file, s.path = nil, ""
	return err
}

// flusher writes a spool's full buffers to its file on a goroutine of
// its own, and, when a digest is wanted, a third goroutine hashes what is
// in the file, reading it back. Buffers go to the writer on full and come
// back on free; it stops at its first error, and keeps handing buffers
// back so that the spool never waits for it in vain. The hashing reads
// from the file (the page cache) rather than the buffers, so it may fall
// behind by any amount without holding memory: it catches up when the
// encoder waits for the database (a sort before a section's first row),
// instead of taking a core while the database and the encoder need both.
type flusher struct {
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	err    error       // the first error: read once failed is set, or after done is closed
	failed atomic.Bool // err is set
	ended  bool
	size   int // of a buffer
	made   int // buffers made besides the spool's own

	written  atomic.Int64  // bytes in the file
	more     chan struct{} // the hasher is told of more bytes
	hashDone chan struct{} // closed when the hasher ends; nil without a digest
	hashErr  error         // read after hashDone is closed
	abandon  atomic.Bool   // the export failed: stop hashing
}

// flushQueue is how many full buffers the writer may lag behind. One:
// every buffer is a threshold's worth of memory, and
// TestHandlerMemoryIsBounded holds the handler to 3 MiB.
const flushQueue = 1

// hashChunk is how much of the file the hasher reads at a time.
const hashChunk = 64 << 10

func startFlusher(f *os.File, sum hash.Hash, size int) *flusher {
	fl := &flusher{full: make(chan []byte, flushQueue), free: make(chan []byte, flushQueue), done: make(chan struct{}), size: size,
		more: make(chan struct{}, 1)}
	go func() {
		defer close(fl.done)
		for b := range fl.full {
			if fl.err == nil {
				if _, err := f.Write(b); err != nil {
					fl.err = err
					fl.failed.Store(true)
				} else {
					fl.written.Add(int64(len(b)))
					select {
					case fl.more <- struct{}{}:
					default:
					}
				}
			}
			fl.free <- b[:0]
		}
	}()
	if sum != nil {
		fl.hashDone = make(chan struct{})
		go fl.hash(f, sum)
	}
	return fl
}

// hash hashes the file as it grows, until the writer has ended and every
// byte it wrote is hashed.
func (fl *flusher) hash(f *os.File, sum hash.Hash) {
	defer close(fl.hashDone)
	buf := make([]byte, hashChunk)
	var hashed int64
	for {
		ended := false
		select {
		case <-fl.more:
		case <-fl.done:
			ended = true
		}
		for hashed < fl.written.Load() {
			if fl.abandon.Load() {
				return
			}
			n, err := f.ReadAt(buf[:min(int64(len(buf)), fl.written.Load()-hashed)], hashed)
			sum.Write(buf[:n])
			hashed += int64(n)
			if err != nil {
				fl.hashErr = err
				return
			}
		}
		if ended {
			return
		}
	}
}

// swap hands b to the flusher and returns an empty buffer: one it has
// written, a new one while fewer than flushQueue exist, or else the
// next it writes. The error is the flusher's, if it has already failed.
func (fl *flusher) swap(b []byte) ([]byte, error) {
	if fl.failed.Load() {
		return b[:0], fl.err
	}
	fl.full <- b
	select {
	case next := <-fl.free:
		return next, nil
	default:
	}
	if fl.made < flushQueue {
		fl.made++
		return make([]byte, 0, fl.size), nil
	}
	return <-fl.free, nil
}

// stop waits for the writer to write what it was given and for the hasher
// to hash it (unless abandon: the document is not needed), and returns
// the first error.
func (fl *flusher) stop(abandon bool) error {
	if !fl.ended {
		fl.ended = true
		if abandon {
			fl.abandon.Store(true)
		}
		close(fl.full)
		<-fl.done
		if fl.hashDone != nil {
			<-fl.hashDone
		}
	}
	if fl.err != nil {
		return fl.err
	}
	return fl.hashErr
}

func (fl *flusher) stopped() bool { return fl.ended }
