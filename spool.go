package export

import (
	"io"
	"os"
	"sync"
)

// spool holds a finished document until the response is sent, so that a
// failure part-way is still a clean 500 and the 200 carries
// Content-Length. It keeps up to limit bytes in memory and moves to a
// temporary file beyond that; Close always removes the file.
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
	if s.mem == nil && s.file == nil {
		if b, ok := spoolBufs.Get().(*[]byte); ok {
			s.mem = (*b)[:0]
		}
	}
	if s.file == nil && len(s.mem)+len(p) <= s.limit {
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.file == nil {
		if err := s.toFile(); err != nil {
			return 0, &Error{Stage: StageSpool, Err: err}
		}
	}
	n, err := s.file.Write(p)
	s.size += int64(n)
	if err != nil {
		return n, &Error{Stage: StageSpool, Err: err}
	}
	return n, nil
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
	if _, err := f.Write(s.mem); err != nil {
		return err
	}
	s.recycle()
	return nil
}

// WriteTo sends the spooled document to w.
func (s *spool) WriteTo(w io.Writer) (int64, error) {
	if s.file == nil {
		n, err := w.Write(s.mem)
		return int64(n), err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return 0, err
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
