package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
)

const cookieName = "demo_session"

// app is the demo web application: sessions, a page and the export.
type app struct {
	store  export.Store
	users  []string // shown on the sign-in page
	logger *slog.Logger
	opts   []export.Option // the export handler's, after WithLogger and the codings
	// builtinGzip: serve gzip with the library's own coding (the
	// standard library's) rather than withFastGzip; -builtin-gzip.
	builtinGzip bool
	// replaced, if set, reports that the database file was replaced
	// since the start: from then on every request is refused (503) until
	// a restart opens the new file.
	replaced   func() error
	replacedAt error // sticky: the first report of replaced; under mu
	// archives, if set, runs the prepared archives ("Prepare my
	// archive"): the job API is mounted at /api/exports.
	archives *jobs.Runner

	mu       sync.Mutex
	sessions map[string]string // random token -> user ID
}

// withZstd registers zstd at its fastest level, one goroutine per export
// (the library compresses on a goroutine of the export's own), with a
// 1 MiB window: on benchexport's 300,000-record document, as small (5.7x)
// and as fast as the default window's 8 MiB, for 2.7 MB of allocations
// instead of 8.9 MB.
var withZstd = export.WithEncoder("zstd", func(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
})

// withFastGzip serves gzip through klauspost/compress's implementation
// at its fastest level instead of the library's own (the standard
// library's compress/gzip): the same format, which every client decodes
// alike, at 2.2 times the speed on benchexport's 300,000-record
// document (384 MB/s against 176 MB/s, 5.2x smaller either way). On
// PostgreSQL, where the export itself is fastest, the built-in gzip
// took 1.4x to 1.5x the identity download's time, this one about 1.0x.
var withFastGzip = export.WithEncoder("gzip", func(w io.Writer) (io.WriteCloser, error) {
	return gzip.NewWriterLevel(w, gzip.BestSpeed)
})

func newApp(store export.Store, users []string, logger *slog.Logger, opts ...export.Option) *app {
	return &app{store: store, users: users, logger: logger, opts: opts, sessions: make(map[string]string)}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	// /favicon.ico too: a browser asks for it whatever the page links.
	mux.HandleFunc("GET /favicon.svg", serveFavicon)
	mux.HandleFunc("GET /favicon.ico", serveFavicon)
	// Mounted without a method so that the handler answers every method
	// itself (the contract's JSON 405); "GET /api/export" would leave other
	// methods to the mux's plain-text 405. The exact path only: nothing
	// under /api/export/ serves an export.
	//
	// zstd is offered beside gzip, and preferred to it by a client that
	// accepts both (Chromium and Firefox do).
	opts := []export.Option{export.WithLogger(a.logger), withZstd}
	if !a.builtinGzip {
		opts = append(opts, withFastGzip)
	}
	exp := export.NewHandler(export.NewExporter(a.store), a.currentUser, append(opts, a.opts...)...)
	mux.Handle("/api/export", exp)
	if a.archives != nil {
		// Both the exact path and the subtree: POST/GET /api/exports and
		// /api/exports/{id}[/download]. Cross-origin protection refuses a
		// POST or DELETE another site's page makes the browser send (the
		// SameSite=Lax cookie already stays home; this is the second lock).
		api := http.NewCrossOriginProtection().Handler(jobs.NewHandler(a.archives, a.currentUser))
		mux.Handle("/api/exports", api)
		mux.Handle("/api/exports/", api)
	}
	if a.replaced != nil {
		return a.refuseIfReplaced(mux)
	}
	return mux
}

// refuseIfReplaced answers 503 once the database file has been replaced:
// JSON as the export's errors are on /api/export, the page elsewhere.
func (a *app) refuseIfReplaced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.replacedAt == nil {
			if err := a.replaced(); err != nil {
				a.replacedAt = err
				a.logger.Error("refusing every request until restarted", "error", err)
			}
		}
		err := a.replacedAt
		a.mu.Unlock()
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "60")
		if r.URL.Path == "/api/export" || strings.HasPrefix(r.URL.Path, "/api/exports") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"Export failed","message":"the database file was replaced; the server must be restarted"}`)
			return
		}
		a.render(w, r, http.StatusServiceUnavailable, pageData{Error: "The database file was replaced while the server ran; it must be restarted to serve the new one."})
	})
}

// currentUser is the export handler's resolver: the user of the session
// cookie, or ErrNoSession.
func (a *app) currentUser(r *http.Request) (string, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", export.ErrNoSession
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.sessions[c.Value]
	if !ok {
		return "", export.ErrNoSession
	}
	return id, nil
}

// login signs in as any existing user ID, with no password.
// DEMO ONLY: a real application authenticates the user here.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("user")
	// Bounded, so that a database that does not answer gives a 503, not
	// a page that never loads.
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.store.View(ctx, id, func(export.Tx) error { return nil }); err != nil {
		a.signInFailed(w, r, id, err)
		return
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return weak bytes)
	token := base64.RawURLEncoding.EncodeToString(b)
	a.mu.Lock()
	a.sessions[token] = id
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signInFailed answers a sign-in that found no user (401) or could not
// look one up (503), with the sign-in page and what went wrong.
func (a *app) signInFailed(w http.ResponseWriter, r *http.Request, id string, err error) {
	status, msg := http.StatusUnauthorized, fmt.Sprintf("There is no user %q in this database. Pick one of the users below.", id)
	if id == "" {
		msg = "Enter a user ID to sign in as."
	}
	if !errors.Is(err, export.ErrUserNotFound) {
		a.logger.Error("demo sign-in: looking the user up failed", "user_id", id, "error", err)
		status, msg = http.StatusServiceUnavailable, "The database could not be reached to look the user up. Try again in a moment."
		w.Header().Set("Retry-After", "5")
	}
	a.render(w, r, status, pageData{Error: msg, Entered: id})
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// pageData is what the page shows.
type pageData struct {
	User    string // signed in as; "" when signed out
	Users   []string
	Entered string // the ID a failed sign-in was for
	Error   string // why the sign-in failed
	Counts  []sectionCount
	// CountErr is set when the records could not be counted.
	CountErr bool
	// Archives offers "Prepare my archive" (the job API is mounted).
	Archives bool
}

// sectionCount is one line of "what the export will contain".
type sectionCount struct {
	ID, Name string
	N        int
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>export demo</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:38rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
.note{background:#fff3cd;padding:.5rem .75rem;border-radius:6px}
.error{background:#fdecea;color:#8a1c1c;padding:.6rem .8rem;border-radius:6px;border:1px solid #f5c2c0}
.button,button{display:inline-block;font:inherit;font-weight:600;line-height:1.2;padding:.6rem 1.1rem;border-radius:6px;
  border:1px solid #1a56db;background:#1a56db;color:#fff;text-decoration:none;cursor:pointer}
.button:hover,button:hover{background:#1446b8;border-color:#1446b8}
.button:focus-visible,button:focus-visible{outline:3px solid #93b4f5;outline-offset:2px}
button.secondary{background:#fff;color:#1a56db}
button.secondary:hover{background:#eef3fd}
.download{display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap;margin:1.5rem 0}
.contents{margin:0;padding:0;list-style:none;color:#57606a}
.caption{font-size:.85rem;color:#57606a;text-transform:uppercase;letter-spacing:.04em}
.contents strong{color:#1f2328}
#status{padding:.6rem .8rem;border-radius:6px;background:#eef3fd}
#status.problem{background:#fdecea;color:#8a1c1c}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d0d7de}
#archive-status{padding:.6rem .8rem;border-radius:6px;background:#eef3fd}
#archive-status.problem{background:#fdecea;color:#8a1c1c}
input{font:inherit;padding:.45rem .6rem;border:1px solid #8c959f;border-radius:6px}
</style></head>
<body>
<h1>Download your data</h1>
<p class="note">Demo only: sign-in takes a user ID and no password.</p>
{{if .User}}
<p>Signed in as <strong id="who">{{.User}}</strong>.</p>
<div class="download">
<a class="button" id="download" href="/api/export" role="button">Download my data</a>
<div id="contents">{{if .CountErr}}<p>The records could not be counted just now.</p>
{{else}}<span class="caption">Your file will hold</span>
<ul class="contents">
{{range .Counts}}<li id="count-{{.ID}}"><strong>{{.N}}</strong> {{.Name}}</li>
{{end}}</ul>{{end}}</div>
</div>
<p id="status" role="status" hidden></p>
{{if .Archives}}<h2>Large account? Prepare an archive</h2>
<p>The server prepares the file in the background; it is kept for 7 days, and a cut download resumes where it stopped.</p>
<p><button type="button" id="prepare">Prepare my archive</button></p>
<p id="archive-status" role="status" hidden></p>
<table id="archives" hidden><thead><tr><th>Requested</th><th>State</th><th>Size</th><th></th></tr></thead><tbody></tbody></table>{{end}}
<form method="post" action="/logout"><button class="secondary" type="submit">Sign out</button></form>
<script>
// The link downloads the file as it is; where scripts run, the page
// fetches it instead, so that a refusal (the endpoint answers JSON) is
// explained here rather than shown raw.
document.getElementById("download").addEventListener("click", async (ev) => {
  ev.preventDefault();
  const status = document.getElementById("status");
  const say = (text, problem) => { status.textContent = text; status.className = problem ? "problem" : ""; status.hidden = false; };
  say("Preparing your export…", false);
  let res;
  try {
    res = await fetch("/api/export", {credentials: "same-origin"});
  } catch (e) {
    say("The server could not be reached. Check your connection and try again.", true);
    return;
  }
  if (res.ok) {
    const name = (/filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "") || [])[1] || "export.json";
    const url = URL.createObjectURL(await res.blob());
    const a = Object.assign(document.createElement("a"), {href: url, download: name});
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say("Downloaded " + name + ".", false);
    return;
  }
  const wait = res.headers.get("Retry-After");
  const body = await res.json().catch(() => ({}));
  switch (res.status) {
  case 401:
    say("Your session has ended, so the export was refused. Sign in again to download your data.", true);
    break;
  case 429:
    say("An export of your data is already being prepared, or the server is busy. Try again in " + (wait || "a few") + " seconds.", true);
    break;
  case 503:
    say("The database is not answering just now. Try again in " + (wait || "a few") + " seconds.", true);
    break;
  default:
    say("The export failed" + (body.message ? " (" + body.message + ")" : "") + ". Try again later.", true);
  }
});

// Archives: the job API. The list refreshes every second while one is
// queued or running.
if (document.getElementById("prepare")) {
const archiveStatus = document.getElementById("archive-status");
const sayArchive = (text, problem) => { archiveStatus.textContent = text; archiveStatus.className = problem ? "problem" : ""; archiveStatus.hidden = false; };
const states = {queued: "Waiting to start", running: "Being prepared", ready: "Ready", failed: "Failed", expired: "Expired"};
let refresh = null;
async function listArchives() {
  let res;
  try { res = await fetch("/api/exports", {credentials: "same-origin"}); } catch (e) { sayArchive("The server could not be reached.", true); return; }
  if (res.status === 401) { sayArchive("Your session has ended. Sign in again to see your archives.", true); return; }
  if (!res.ok) { sayArchive("Your archives could not be listed just now.", true); return; }
  const list = await res.json();
  const table = document.getElementById("archives");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const j of list) {
    const tr = document.createElement("tr");
    tr.id = "archive-" + j.id;
    tr.dataset.status = j.status;
    const cell = (text) => { const td = document.createElement("td"); td.textContent = text; tr.append(td); return td; };
    cell(new Date(j.createdAt).toLocaleString());
    cell(states[j.status] || j.status).className = "state";
    cell(j.bytes == null ? "" : (j.bytes / 1024).toFixed(1) + " KiB");
    const act = cell("");
    if (j.download) {
      const a = Object.assign(document.createElement("a"), {href: j.download, textContent: "Download", className: "archive-download"});
      act.append(a, " ");
    }
    if (j.status !== "queued" && j.status !== "running") {
      const del = Object.assign(document.createElement("button"), {type: "button", textContent: "Delete", className: "secondary"});
      del.addEventListener("click", async () => { await fetch("/api/exports/" + j.id, {method: "DELETE", credentials: "same-origin"}); listArchives(); });
      act.append(del);
    }
    body.append(tr);
  }
  table.hidden = list.length === 0;
  const active = list.some((j) => j.status === "queued" || j.status === "running");
  if (active && !refresh) refresh = setInterval(listArchives, 1000);
  if (!active && refresh) { clearInterval(refresh); refresh = null; }
}
document.getElementById("prepare").addEventListener("click", async () => {
  let res;
  try { res = await fetch("/api/exports", {method: "POST", credentials: "same-origin"}); } catch (e) { sayArchive("The server could not be reached.", true); return; }
  switch (res.status) {
  case 202: sayArchive("Your archive is being prepared. It will appear below when it is ready.", false); break;
  case 200: sayArchive("An archive of yours is already being prepared.", false); break;
  case 401: sayArchive("Your session has ended. Sign in again to prepare an archive.", true); return;
  case 429: sayArchive("You prepared an archive recently. Try again in " + (res.headers.get("Retry-After") || "a few") + " seconds.", true); return;
  default: sayArchive("The archive could not be started. Try again later.", true); return;
  }
  listArchives();
});
listArchives();
}
</script>
{{else}}
<p id="who">Not signed in.</p>
{{if .Error}}<p class="error" id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<label>User ID <input name="user" size="30" value="{{if .Error}}{{.Entered}}{{else}}{{index .Users 0}}{{end}}"></label>
<button type="submit">Sign in</button>
</form>
<p>Users in this database:{{range .Users}} <code>{{.}}</code>{{end}}</p>
{{end}}
</body></html>
`))

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	user, _ := a.currentUser(r)
	d := pageData{User: user, Archives: a.archives != nil}
	if user != "" {
		d.Counts, d.CountErr = a.counts(r, user)
	}
	a.render(w, r, http.StatusOK, d)
}

// counts reads what the export of user will hold, section by section,
// from one view as the export does.
func (a *app) counts(r *http.Request, user string) ([]sectionCount, bool) {
	var c [3]int
	err := a.store.View(r.Context(), user, func(tx export.Tx) error {
		for _, err := range tx.Agents(r.Context()) {
			if err != nil {
				return err
			}
			c[0]++
		}
		for _, err := range tx.ScheduledTasks(r.Context()) {
			if err != nil {
				return err
			}
			c[1]++
		}
		for _, err := range tx.Workflows(r.Context()) {
			if err != nil {
				return err
			}
			c[2]++
		}
		return nil
	})
	if err != nil {
		a.logger.Error("demo page: counting records failed", "user_id", user, "error", err)
		return nil, true
	}
	return []sectionCount{{"agents", plural(c[0], "agent"), c[0]}, {"scheduledTasks", plural(c[1], "scheduled task"), c[1]}, {"workflows", plural(c[2], "workflow"), c[2]}}, false
}

func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

func (a *app) render(w http.ResponseWriter, _ *http.Request, status int, d pageData) {
	d.Users = a.users
	if len(d.Users) == 0 {
		d.Users = []string{""}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	pageTmpl.Execute(w, d)
}

// favicon is the page's icon: a download arrow.
const favicon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1a56db"/>` +
	`<path d="M16 7v13m-6-6 6 6 6-6M9 25h14" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>`

func serveFavicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	io.WriteString(w, favicon)
}
