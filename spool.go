package export

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
// at a fifth of its CPU, done inline. The two buffers are the spool's
// memory: the encoder waits for the flusher if it falls behind. A coded
// spool (codedSpool) holds, besides, its coded form's spool.
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

	// A coded spool (see codedSpool) holds the document as written and
	// codes it, through zw, into coded: the representation sent.
	zw    io.WriteCloser
	coded *spool
	zErr  error // zw's first error, which is the coding's (coded's are the spool's)
	// isCoded: this is a coded spool, whose buffers are smaller than a
	// document's (see drain), so it keeps out of spoolBufs.
	isCoded bool
}

// codedSpool returns a spool that codes the document with enc on a
// goroutine of its own, so that the export does not wait for the
// compressor: the document is spooled as it is written, and once it is
// in the file, the compressor follows the file as it grows, into a
// second spool (rep) whose bytes and digest are those sent. Reading the
// file rather than the spool's buffers, it may fall behind by any amount
// without holding more memory, and it catches up while the database
// sorts a section, when the encoder has nothing to do. In line, gzip's
// level 1 took 1.5x the identity export's time on benchexport's account
// on PostgreSQL (2 cores); following the file, 1.2x. (A compressor that
// also waited while the encoder wrote, to leave the database and the
// encoder a core each, did worse: 1.36x, with more left to compress at
// the end.)
//
// What it costs: a document under the threshold is coded when it is
// complete, in memory, so the two forms may hold up to twice the
// threshold; past it, the spool directory holds the whole document and
// its coded form (with gzip, a fifth more than the document alone),
// both removed by Close, and the coded form's spool takes two buffers of
// minFileBuffer. The coding must not depend on how its input is cut
// into writes (gzip and zstd do not): HEAD codes the exporter's writes,
// GET this spool's reads of its file.
func codedSpool(dir string, limit int, enc *encoder) (*spool, error) {
	rep := &spool{dir: dir, limit: limit, digest: true, isCoded: true}
	zw, err := enc.newWriter(rep)
	if err == nil && zw == nil {
		err = errors.New("export: the " + enc.name + " encoder returned no writer")
	}
	if err != nil {
		return nil, &Error{Stage: StageCompress, Err: err}
	}
	return &spool{dir: dir, limit: limit, zw: zw, coded: rep}, nil
}

// rep is the spool of the representation sent: s itself, or the coded
// one.
func (s *spool) rep() *spool {
	if s.coded != nil {
		return s.coded
	}
	return s
}

// code writes p to the coding, noting its first error.
func (s *spool) code(p []byte) (int, error) {
	n, err := s.zw.Write(p)
	if err != nil && s.zErr == nil {
		s.zErr = err
	}
	return n, err
}

// endCoding ends the coded stream: its last bytes go to coded.
func (s *spool) endCoding() error {
	zw := s.zw
	s.zw = nil
	if err := zw.Close(); err != nil && s.zErr == nil {
		s.zErr = err
	}
	return s.zErr
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
	if s.mem == nil && !s.isCoded {
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
			return n - len(p), err
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
// Its errors are the handler's: a *Error with its stage.
func (s *spool) drain() error {
	if s.fl == nil {
		if err := s.toFile(); err != nil {
			return &Error{Stage: StageSpool, Err: err}
		}
		var f follower
		switch {
		case s.zw != nil:
			// The document is past the threshold: its coded form goes to
			// a file of its own through the smallest buffers, not a
			// second threshold's worth of memory.
			s.coded.limit = minFileBuffer
			f = follower{sink: writerFunc(s.code), end: s.endCoding}
		case s.digest:
			s.sum = sums.Get().(hash.Hash)
		}
		s.fl = startFlusher(s.file, s.sum, f, max(s.limit, minFileBuffer))
	}
	buf, err := s.fl.swap(s.mem)
	s.mem = buf
	switch {
	case err == nil:
		return nil
	case s.fl.followFail.Load() && !s.fl.failed.Load(): // the compressor's
		if s.zErr != nil {
			return s.codingError()
		}
	}
	return &Error{Stage: StageSpool, Err: err}
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
// hold it all, and for the coded spool to hold all of its coding, so that
// every failure of the spool happens before the response's status is
// chosen. The wait for the compressor ends with ctx (a client gone, the
// total deadline): the coding is then abandoned.
func (s *spool) finish(ctx context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	if s.fl == nil { // all of it is in memory
		if s.zw != nil {
			if _, err := s.code(s.mem); err == nil {
				s.endCoding()
			}
			return s.finishCoded()
		}
		if s.digest && !s.countOnly {
			s.hash(s.mem)
		}
		return nil
	}
	var err error
	if len(s.mem) > 0 {
		s.mem, err = s.fl.swap(s.mem)
	}
	if ferr := s.fl.finish(ctx); err == nil {
		err = ferr
	}
	if ctx.Err() != nil && s.zw != nil { // the coding was abandoned unfinished
		return &Error{Stage: StageCompress, Err: context.Cause(ctx)}
	}
	if err != nil && (s.coded == nil || s.zErr == nil) {
		return &Error{Stage: StageSpool, Err: err}
	}
	return s.finishCoded()
}

// finishCoded finishes the coded spool, once the coding has ended: a
// failure of the coding is the compressor's, one of the coded spool is
// the spool's.
func (s *spool) finishCoded() error {
	if s.coded == nil {
		return nil
	}
	if s.zErr != nil {
		return s.codingError()
	}
	return s.coded.finish(context.Background()) // its writer only: no follower
}

// codingError is the coding's first error as the handler names it: the
// coded spool's own failure (a full disk), which reaches the coding as
// the error of its writes, or the compressor's.
func (s *spool) codingError() error {
	var e *Error
	if errors.As(s.zErr, &e) {
		return e
	}
	return &Error{Stage: StageCompress, Err: s.zErr}
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

// WriteTo sends the spooled document (its representation) to w, after
// finish.
func (s *spool) WriteTo(w io.Writer) (int64, error) {
	if s.coded != nil {
		return s.coded.WriteTo(w)
	}
	if s.file == nil {
		n, err := w.Write(s.mem)
		return int64(n), err
	}
	if err := s.finish(context.Background()); err != nil {
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
	if s.mem != nil && cap(s.mem) <= 2*s.limit && !s.isCoded {
		b := s.mem[:0]
		spoolBufs.Put(&b)
	}
	s.mem = nil
}

// Close releases the file, if any, and removes it.
func (s *spool) Close() error {
	if s.fl != nil && !s.fl.stopped() {
		s.fl.discard() // an export that failed
	}
	if s.zw != nil { // the coding never ended: release it
		s.zw.Close()
		s.zw = nil
	}
	if s.coded != nil {
		s.coded.Close()
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

// flusher hashes a spool's full buffers (when it has a digest) and
// writes them to its file on a goroutine of its own, and, where the
// spool has a follower (the compressor of a coded spool), a third
// goroutine follows the file as it grows, reading it back. Buffers go to
// the writer on full and come back on free; it stops at its first error,
// and keeps handing buffers back so that the spool never waits for it in
// vain. Hashing a buffer takes a third of the time the encoder takes to
// fill one, so the writer keeps up; an earlier hasher that followed the
// file instead read every byte back for nothing. The compressor takes
// as long as the encoder, so it reads from the file (the page cache)
// rather than the buffers: it may fall behind by any amount without
// holding memory, and catches up when the encoder waits for the database
// (a sort before a section's first row).
type flusher struct {
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	err    error       // the first error: read once failed is set, or after done is closed
	failed atomic.Bool // err is set
	ended  bool
	size   int // of a buffer
	made   int // buffers made besides the spool's own

	written    atomic.Int64  // bytes in the file
	more       chan struct{} // the follower is told of more bytes
	followDone chan struct{} // closed when the follower ends; nil without one
	followErr  error         // read after followDone is closed, or once followFailed is set
	followFail atomic.Bool   // followErr is set: the spool stops taking bytes
	abandon    atomic.Bool   // the export failed: stop following
}

// A follower is handed every byte of a spool's file, in order, on a
// goroutine of its own: sink gets them, and end, if set, runs once the
// last is handed over.
type follower struct {
	sink io.Writer
	end  func() error
}

// writerFunc is a func as an io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// flushQueue is how many full buffers the writer may lag behind. One:
// every buffer is a threshold's worth of memory, and
// TestHandlerMemoryIsBounded holds the handler to 3 MiB.
const flushQueue = 1

// followChunk is how much of the file a follower reads at a time.
const followChunk = 64 << 10

func startFlusher(f *os.File, sum hash.Hash, fo follower, size int) *flusher {
	fl := &flusher{full: make(chan []byte, flushQueue), free: make(chan []byte, flushQueue), done: make(chan struct{}), size: size,
		more: make(chan struct{}, 1)}
	go func() {
		defer close(fl.done)
		for b := range fl.full {
			if fl.err == nil {
				if sum != nil {
					sum.Write(b)
				}
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
	if fo.sink != nil {
		fl.followDone = make(chan struct{})
		go fl.follow(f, fo)
	}
	return fl
}

// follow hands the file to fo as it grows, until the writer has ended
// and every byte it wrote is handed over.
func (fl *flusher) follow(f *os.File, fo follower) {
	defer close(fl.followDone)
	buf := make([]byte, followChunk)
	var read int64
	ended := false
	for {
		if !ended {
			select {
			case <-fl.more:
			case <-fl.done:
				ended = true
			}
		}
		for read < fl.written.Load() {
			if fl.abandon.Load() {
				return
			}
			n, err := f.ReadAt(buf[:min(int64(len(buf)), fl.written.Load()-read)], read)
			read += int64(n)
			if err == nil {
				_, err = fo.sink.Write(buf[:n])
			}
			if err != nil {
				fl.followErr = err
				fl.followFail.Store(true)
				return
			}
		}
		if ended {
			if fo.end != nil && !fl.abandon.Load() {
				if err := fo.end(); err != nil {
					fl.followErr = err
					fl.followFail.Store(true)
				}
			}
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
	if fl.followFail.Load() { // the coding failed: the export stops now
		return b[:0], fl.followErr
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

// discard ends the writer and the follower of a spool whose export
// failed: the follower stops within a chunk, as nothing it would make is
// needed.
func (fl *flusher) discard() {
	fl.abandon.Store(true)
	fl.finish(context.Background())
}

// finish waits for the writer to write what it was given and for the
// follower to have it all, while ctx lasts: once ctx ends, the follower
// is abandoned. It returns the first error.
func (fl *flusher) finish(ctx context.Context) error {
	if !fl.ended {
		fl.ended = true
		close(fl.full)
		<-fl.done // the file's writes: the spool's buffers at most
		if fl.followDone != nil {
			select {
			case <-fl.followDone:
			case <-ctx.Done():
				fl.abandon.Store(true)
				<-fl.followDone // it stops within a chunk
			}
		}
	}
	if fl.err != nil {
		return fl.err
	}
	return fl.followErr
}

func (fl *flusher) stopped() bool { return fl.ended }
