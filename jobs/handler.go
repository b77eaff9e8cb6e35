package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/agentbot/export"
)

// Handler answers the job API under the runner's base path:
//
//	POST   {base}                 start a job (202), or the active one (200)
//	GET    {base}                 the user's jobs, newest first
//	GET    {base}/{id}            one job
//	GET    {base}/{id}/download   its file (Range, If-Range; 410 once expired)
//	DELETE {base}/{id}            remove it and its file (204)
//
// Mount it at both {base} and {base}/ (see NewHandler).
type Handler struct {
	r       *Runner
	resolve func(*http.Request) (string, error)
	mux     *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the job API of r. resolve is the endpoint's session
// resolver: the user ID, or export.ErrNoSession (or "") when there is
// none. Mount it with
//
//	h := jobs.NewHandler(runner, resolve)
//	mux.Handle("/api/exports", h)
//	mux.Handle("/api/exports/", h)
//
// It panics if r or resolve is nil, as export.NewHandler does.
func NewHandler(r *Runner, resolve func(*http.Request) (string, error)) *Handler {
	if r == nil || resolve == nil {
		panic("jobs: NewHandler needs a Runner and a resolver")
	}
	h := &Handler{r: r, resolve: resolve, mux: http.NewServeMux()}
	b := r.basePath
	h.mux.HandleFunc("POST "+b, h.authed(h.create))
	h.mux.HandleFunc("GET "+b, h.authed(h.list))
	h.mux.HandleFunc(b, methodNotAllowed("GET, HEAD, POST"))
	h.mux.HandleFunc("GET "+b+"/{id}", h.authed(h.withJob(h.show)))
	h.mux.HandleFunc("DELETE "+b+"/{id}", h.authed(h.delete))
	h.mux.HandleFunc(b+"/{id}", methodNotAllowed("DELETE, GET, HEAD"))
	h.mux.HandleFunc("GET "+b+"/{id}/download", h.authed(h.withJob(h.download)))
	h.mux.HandleFunc(b+"/{id}/download", methodNotAllowed("GET, HEAD"))
	h.mux.HandleFunc(b+"/", func(w http.ResponseWriter, req *http.Request) {
		export.WriteError(w, req, http.StatusNotFound, "")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, req)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allow)
		export.WriteError(w, req, http.StatusMethodNotAllowed, "")
	}
}

type userKey struct{}

// authed resolves the session first: 401 without one, whatever the route.
func (h *Handler) authed(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		userID, err := h.resolve(req)
		if err != nil && !errors.Is(err, export.ErrNoSession) {
			h.r.logger.ErrorContext(req.Context(), "export job: the session resolver failed", "error", err)
			export.WriteError(w, req, http.StatusInternalServerError, "could not resolve session")
			return
		}
		if err != nil || userID == "" {
			export.WriteError(w, req, http.StatusUnauthorized, "")
			return
		}
		next(w, req, userID)
	}
}

// withJob loads the user's job named in the path; another user's job and
// an unknown or malformed ID are the same 404.
func (h *Handler) withJob(next func(http.ResponseWriter, *http.Request, Job)) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, req *http.Request, userID string) {
		id := req.PathValue("id")
		if !validID(id) {
			export.WriteError(w, req, http.StatusNotFound, "")
			return
		}
		j, err := h.r.job(req.Context(), h.r.db, id, userID)
		if errors.Is(err, errNoJob) {
			export.WriteError(w, req, http.StatusNotFound, "")
			return
		}
		if err != nil {
			h.failed(w, req, "could not read the export job", err)
			return
		}
		next(w, req, j)
	}
}

func (h *Handler) failed(w http.ResponseWriter, req *http.Request, message string, err error) {
	h.r.logger.ErrorContext(req.Context(), "export job: "+message, "error", err)
	export.WriteError(w, req, http.StatusInternalServerError, message)
}

// jobJSON is a job as the API shows it; absent times and sizes are null.
type jobJSON struct {
	ID         string  `json:"id"`
	Status     Status  `json:"status"`
	CreatedAt  string  `json:"createdAt"`
	FinishedAt *string `json:"finishedAt"`
	ExpiresAt  *string `json:"expiresAt"`
	Bytes      *int64  `json:"bytes"`
	SHA256     *string `json:"sha256"`
	Download   *string `json:"download"`
}

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := timestamp(t)
	return &s
}

func (h *Handler) view(j Job) jobJSON {
	v := jobJSON{ID: j.ID, Status: j.Status, CreatedAt: timestamp(j.CreatedAt), FinishedAt: optTime(j.FinishedAt)}
	if j.Status == StatusReady || j.Status == StatusExpired {
		v.ExpiresAt = optTime(j.ExpiresAt)
		b, sum := j.Bytes, j.SHA256
		v.Bytes, v.SHA256 = &b, &sum
	}
	if j.Status == StatusReady {
		d := h.r.basePath + "/" + j.ID + "/download"
		v.Download = &d
	}
	return v
}

func writeJSON(w http.ResponseWriter, req *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		export.WriteError(w, req, http.StatusInternalServerError, "could not encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		w.Write(b)
	}
}

func (h *Handler) create(w http.ResponseWriter, req *http.Request, userID string) {
	j, created, err := h.r.Enqueue(req.Context(), userID)
	var ce *CooldownError
	if errors.As(err, &ce) {
		secs := int64(math.Ceil(ce.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		export.WriteError(w, req, http.StatusTooManyRequests, "")
		return
	}
	if err != nil {
		h.failed(w, req, "could not start the export job", err)
		return
	}
	w.Header().Set("Location", h.r.basePath+"/"+j.ID)
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
	}
	writeJSON(w, req, status, h.view(j))
}

func (h *Handler) list(w http.ResponseWriter, req *http.Request, userID string) {
	jobs, err := h.r.Jobs(req.Context(), userID)
	if err != nil {
		h.failed(w, req, "could not list the export jobs", err)
		return
	}
	views := make([]jobJSON, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, h.view(j))
	}
	writeJSON(w, req, http.StatusOK, views)
}

func (h *Handler) show(w http.ResponseWriter, req *http.Request, j Job) {
	writeJSON(w, req, http.StatusOK, h.view(j))
}

func (h *Handler) delete(w http.ResponseWriter, req *http.Request, userID string) {
	id := req.PathValue("id")
	if !validID(id) {
		export.WriteError(w, req, http.StatusNotFound, "")
		return
	}
	err := h.r.Delete(req.Context(), userID, id)
	if errors.Is(err, errNoJob) {
		export.WriteError(w, req, http.StatusNotFound, "")
		return
	}
	if err != nil {
		h.failed(w, req, "could not delete the export job", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// download serves the stored document with the endpoint's headers, a
// strong ETag (its SHA-256) and byte ranges, through http.ServeContent;
// its error answers (416, 412) are rewritten as the contract's JSON.
func (h *Handler) download(w http.ResponseWriter, req *http.Request, j Job) {
	start := time.Now()
	switch j.Status {
	case StatusExpired:
		export.WriteError(w, req, http.StatusGone, "")
		return
	case StatusReady:
	default:
		export.WriteError(w, req, http.StatusConflict, "the export is not ready")
		return
	}
	filename := export.Filename(h.r.prefix, j.UserID, j.SnapshotAt)
	if h.r.redirectTTL > 0 {
		u, err := h.r.storage.(Redirector).RedirectURL(req.Context(), fileKey(j.ID), h.r.redirectTTL, filename)
		if err != nil {
			h.failed(w, req, "could not sign the download", err)
			return
		}
		// Minted for this request only; never cached (no-store is set).
		http.Redirect(w, req, u, http.StatusFound)
		h.r.emit(req.Context(), export.Event{UserID: j.UserID, JobID: j.ID, Outcome: OutcomeDownloaded, Status: http.StatusFound, Bytes: j.Bytes, Encoding: "identity", Duration: time.Since(start)})
		return
	}
	hdr := w.Header()
	// Every answer of the download, for a cache between: its body depends
	// on Accept-Encoding when a gzip copy is stored.
	hdr.Add("Vary", "Accept-Encoding")
	key, etag, encoding := fileKey(j.ID), j.SHA256, "identity"
	if j.gzSHA != "" && export.NegotiateEncoding(req, "gzip") == "gzip" {
		key, etag, encoding = gzipKey(j.ID), j.gzSHA, "gzip"
	}
	obj, err := h.r.storage.Open(req.Context(), key)
	if errors.Is(err, fs.ErrNotExist) && encoding == "gzip" {
		// The copy went missing: the document itself will do.
		key, etag, encoding = fileKey(j.ID), j.SHA256, "identity"
		obj, err = h.r.storage.Open(req.Context(), key)
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Ready in the table, but the file went (removed by hand, or the
		// cleanup of another instance whose clock is ahead).
		export.WriteError(w, req, http.StatusGone, "")
		return
	}
	if err != nil {
		h.failed(w, req, "could not open the export file", err)
		return
	}
	defer obj.Close()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	// A strong validator per representation: the SHA-256 of the bytes
	// sent, so that If-Range never mixes the two.
	hdr.Set("ETag", `"`+etag+`"`)
	if encoding == "gzip" {
		hdr.Set("Content-Encoding", "gzip")
	}
	size, err := obj.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = obj.Seek(0, io.SeekStart)
	}
	if err != nil {
		h.failed(w, req, "could not read the export file", err)
		return
	}
	jw := &jsonErrors{ResponseWriter: w, req: req, size: size}
	http.ServeContent(jw, req, "", time.Time{}, obj)
	ev := export.Event{UserID: j.UserID, JobID: j.ID, Outcome: OutcomeDownloaded, Status: jw.status, Bytes: j.Bytes, SentBytes: jw.n, Encoding: encoding, Duration: time.Since(start)}
	h.r.emit(req.Context(), ev)
}

// jsonErrors passes a response through, except that an error status gets
// the contract's JSON body (and headers) instead of ServeContent's text.
type jsonErrors struct {
	http.ResponseWriter
	req     *http.Request
	size    int64 // of the object served
	status  int
	errored bool
	n       int64
}

func (w *jsonErrors) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code >= 400 {
		w.errored = true
		export.WriteError(w.ResponseWriter, w.req, code, "")
		return
	}
	hdr := w.ResponseWriter.Header()
	if hdr.Get("Content-Length") == "" && w.size >= 0 {
		// ServeContent leaves Content-Length out under a Content-Encoding;
		// the stored copy's size is known, and clients show progress by it.
		var a, b, total int64
		switch {
		case code == http.StatusOK:
			hdr.Set("Content-Length", strconv.FormatInt(w.size, 10))
		case code == http.StatusPartialContent:
			if n, _ := fmt.Sscanf(hdr.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); n == 3 {
				hdr.Set("Content-Length", strconv.FormatInt(b-a+1, 10))
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.errored {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }
