package export

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"
)

// DefaultGzipLevel is the level of the built-in gzip coding: level 1
// (gzip.BestSpeed). Measured over HTTP on a generated 300,000-record
// memstore account (56 MB of JSON, the median of 5): identity 131 ms;
// level 1 243 ms and 6.9 MB (8.2x smaller); level 6, gzip's default,
// 462 ms for 6.2 MB; Huffman only 265 ms for 31 MB. With a real database
// the store's time dominates and the ratio to identity shrinks.
const DefaultGzipLevel = gzip.BestSpeed

// encoder is a content coding the handler can send.
type encoder struct {
	name      string // lower case token, as sent in Content-Encoding
	newWriter func(io.Writer) (io.WriteCloser, error)
}

// WithEncoder offers the content coding name (a token such as "zstd" or
// "br", matched without regard to case), written by the writers newWriter
// returns: each export gets its own, and its Close must write the end of
// the stream. Codings registered with WithEncoder are preferred to the
// built-in gzip, in the order registered, when a client accepts several
// with the same q-value. Registering "gzip" replaces the built-in one; a
// nil newWriter withdraws the coding name. For example, with
// github.com/klauspost/compress/zstd:
//
//	export.WithEncoder("zstd", func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20)) })
//
// The coded bytes must depend only on the document, not on how it is cut
// into writes (as gzip's, zstd's and brotli's do): HEAD codes the
// document as the exporter writes it, a spooled GET as it reads it back,
// and both must answer with the same Content-Length and Repr-Digest.
// A spooled GET codes on a goroutine of its own; the writer is used by
// one goroutine at a time.
//
// NewHandler panics if name is not a token, or is "identity" or "*".
func WithEncoder(name string, newWriter func(io.Writer) (io.WriteCloser, error)) Option {
	return func(h *Handler) {
		name = strings.ToLower(name)
		if !isToken(name) || name == "identity" || name == "*" || name == "x-gzip" {
			panic("export: WithEncoder: invalid content coding " + `"` + name + `"`)
		}
		h.encoders = deleteEncoder(h.encoders, name)
		if newWriter != nil {
			h.encoders = append(h.encoders, encoder{name: name, newWriter: newWriter})
		}
		if name == "gzip" {
			h.gzipSet = true
		}
	}
}

// WithoutCompression turns every content coding off, the built-in gzip
// and those registered before it: every answer is identity. For a host
// whose added sections reflect a request's input next to a secret (see
// SECURITY.md).
func WithoutCompression() Option {
	return func(h *Handler) { h.encoders, h.gzipSet = nil, true }
}

func deleteEncoder(encs []encoder, name string) []encoder {
	out := encs[:0]
	for _, e := range encs {
		if e.name != name {
			out = append(out, e)
		}
	}
	return out
}

// gzipWriters recycles the built-in gzip coding's writers: each holds
// the compressor's fixed window and tables (under 1 MiB), which would
// otherwise be allocated per export.
var gzipWriters sync.Pool

// pooledGzip is a gzip.Writer that goes back to the pool once closed.
type pooledGzip struct{ *gzip.Writer }

func newGzipWriter(w io.Writer) (io.WriteCloser, error) {
	if z, ok := gzipWriters.Get().(*gzip.Writer); ok {
		z.Reset(w)
		return &pooledGzip{z}, nil
	}
	z, err := gzip.NewWriterLevel(w, DefaultGzipLevel)
	if err != nil {
		return nil, err
	}
	return &pooledGzip{z}, nil
}

// Close ends the gzip stream. The writer is recycled whatever the error:
// Reset makes it good as new.
func (p *pooledGzip) Close() error {
	if p.Writer == nil {
		return nil
	}
	err := p.Writer.Close()
	p.Writer.Reset(io.Discard) // drop the reference to the response
	gzipWriters.Put(p.Writer)
	p.Writer = nil
	return err
}

// negotiate picks the content coding for a response to r among encs
// (in the server's order of preference), by RFC 9110 section 12.5.3.
// It returns nil for identity: when the request has no Accept-Encoding,
// when nothing offered is acceptable (identity is sent then, never 406,
// even if the client refused it), when the client prefers identity by a
// higher q-value, and when the field is malformed.
func negotiate(r *http.Request, encs []encoder) *encoder {
	fields, ok := r.Header["Accept-Encoding"]
	if !ok || len(encs) == 0 {
		return nil
	}
	prefs, ok := parseAcceptEncoding(fields)
	if !ok {
		return nil
	}
	qOf := func(name string) (int, bool) {
		if q, ok := prefs[name]; ok {
			return q, true
		}
		q, ok := prefs["*"]
		return q, ok
	}
	var best *encoder
	bestQ := 0
	for i := range encs {
		if q, _ := qOf(encs[i].name); q > bestQ {
			best, bestQ = &encs[i], q
		}
	}
	if best == nil {
		return nil
	}
	// Identity is acceptable by default, but only a client that names it
	// (or *) with a higher weight prefers it to a coding it asked for.
	if q, ok := prefs["identity"]; ok && q > bestQ {
		return nil
	}
	return best
}

// NegotiateEncoding picks, among the content codings offered (names such
// as "gzip", in the server's order of preference), the one to send r, by
// the rules the handler follows (RFC 9110 section 12.5.3); "" means
// identity. Package jobs serves its stored gzip copy with it.
func NegotiateEncoding(r *http.Request, offered ...string) string {
	encs := make([]encoder, 0, len(offered))
	for _, name := range offered {
		encs = append(encs, encoder{name: strings.ToLower(name)})
	}
	if e := negotiate(r, encs); e != nil {
		return e.name
	}
	return ""
}

// parseAcceptEncoding reads Accept-Encoding field lines into the q-value
// (in thousandths) of each coding, lower case; x-gzip counts as gzip
// (RFC 9110 section 8.4.1.3). When a coding is listed twice, its first
// weight counts. It reports false for a malformed field.
func parseAcceptEncoding(fields []string) (map[string]int, bool) {
	prefs := make(map[string]int, 4)
	for _, field := range fields {
		for elem := range strings.SplitSeq(field, ",") {
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue // RFC 9110 section 5.6.1: empty list elements are allowed
			}
			name, params, hasParams := strings.Cut(elem, ";")
			name = strings.ToLower(strings.TrimRight(name, " \t"))
			if !isToken(name) {
				return nil, false
			}
			q := 1000
			if hasParams {
				p := strings.Trim(params, " \t")
				if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
					return nil, false
				}
				var ok bool
				if q, ok = parseQValue(p[2:]); !ok {
					return nil, false
				}
			}
			if name == "x-gzip" {
				name = "gzip"
			}
			if _, seen := prefs[name]; !seen {
				prefs[name] = q
			}
		}
	}
	return prefs, true
}

// parseQValue reads a qvalue (RFC 9110 section 12.4.2:
// "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]) in thousandths.
func parseQValue(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(s[2:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// isToken reports whether s is an RFC 9110 token (section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
