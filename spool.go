package export

import (
	"io"
	"os"
	"sync"
)

// spool holds a finished document until the response is sent, so that a
// failure part-way is still a clean 500 and the 200 carries
// Content-Length. It keeps up to limit bytes in memory and moves to a
// temporary file beyond that, through the same buffer; Close always
// removes the file.
type spool struct {
	dir   string
	limit int
	mem   []byte
	file  *os.File
	path  string // set while the file still has a name to remove
	size  int64

	countOnly bool // HEAD: only the size is needed
}

// spoolBufs recycles the in-memory part of spools between requests.
var spoolBufs sync.Pool

func (s *spool) Write(p []byte) (int, error) {
	if s.countOnly {
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.mem == nil {
		if b, ok := spoolBufs.Get().(*[]byte); ok {
			s.mem = (*b)[:0]
		}
	}
	if len(s.mem)+len(p) > s.limit {
		// Past the threshold the buffer becomes the file's write buffer:
		// one write per threshold's worth, not one per call (pprof showed
		// the file system's per-write cost on large exports).
		if err := s.drain(); err != nil {
			return 0, &Error{Stage: StageSpool, Err: err}
		}
		if len(p) > s.limit {
			n, err := s.file.Write(p)
			s.size += int64(n)
			if err != nil {
				return n, &Error{Stage: StageSpool, Err: err}
			}
			return n, nil
		}
	}
	s.mem = append(s.mem, p...)
	s.size += int64(len(p))
	return len(p), nil
}

// drain moves what is buffered to the file, creating it the first time.
func (s *spool) drain() error {
	if s.file == nil {
		if err := s.toFile(); err != nil {
			return err
		}
	}
	_, err := s.file.Write(s.mem)
	s.mem = s.mem[:0]
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

// finish writes out what is still buffered, so that every failure of the
// spool happens before the response's status is chosen.
func (s *spool) finish() error {
	if s.file != nil && len(s.mem) > 0 {
		if err := s.drain(); err != nil {
			return &Error{Stage: StageSpool, Err: err}
		}
	}
	return nil
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
	s.recycle()
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
