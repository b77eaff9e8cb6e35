// Package export gives a Go web application a "download all my data"
// endpoint: GET /api/export answers the signed-in user's account data as
// one JSON file, the kind of file a data-access or portability request
// (GDPR articles 15 and 20) asks for.
//
// The file is format 1.0 (docs/FORMAT.md in the repository), byte for byte
// what the TypeScript route this package replaces printed with
// JSON.stringify(doc, null, 2), so clients of that route notice no change.
//
// # Pieces
//
//   - Store (store.go) is where the data comes from. It gives one
//     consistent, read-only View of one user's data, each section an
//     iterator in a fixed order. Package memstore is an in-memory Store;
//     package storetest is the conformance suite every Store should pass.
//   - Exporter (export.go, encode.go) turns a Store into the document.
//     NewExporter streams records from the store's iterators to an
//     io.Writer through one small buffer (large sections are written by a
//     second goroutine, pipeline.go, a few batches behind the reading), so
//     memory does not grow with the account. Document, ReadDocument and Decode hold a whole document in
//     memory, for small accounts, tests and reading files back.
//   - Handler (handler.go) is the http.Handler. The host gives it a
//     resolver, func(*http.Request) (userID string, err error), that reads
//     its own session; the user ID never comes from the request itself.
//
// # Mounting
//
//	store := memstore.New() // or a SQL store
//	h := export.NewHandler(export.NewExporter(store), func(r *http.Request) (string, error) {
//		id, ok := mySessions.UserID(r)
//		if !ok {
//			return "", export.ErrNoSession
//		}
//		return id, nil
//	})
//	mux.Handle("/api/export", h)
//
// Mounted without a method, the handler answers every method itself,
// including the format's JSON 405. The pattern "GET /api/export" works too
// (it also matches HEAD), but then http.ServeMux answers other methods
// with its own plain-text 405.
//
// # What the handler guarantees
//
// A 200 carries the document, Content-Type application/json,
// Content-Disposition attachment with a filename that no user ID can
// break, Cache-Control no-store and X-Content-Type-Options nosniff. Every
// error is JSON and no-store too: 401 without a session or for a user who
// no longer exists, 405 (with Allow: GET, HEAD) for other methods, 429
// (with Retry-After) when the limits refuse, 500 naming the failed step in
// plain words, never with driver or system error text unless
// WithDetailedErrors is on, and 503 (with Retry-After) when the store
// yielded nothing within its deadline.
//
// By default the whole document is produced before the status line is
// sent, in memory up to a threshold and then in a temporary file that is
// always removed, so a failure is a clean 500, never a truncated 200, and
// the 200 has Content-Length. WithStreaming sends the first bytes earlier
// and, when something fails after them, aborts the connection so the
// client sees a broken transfer rather than a well-formed but incomplete
// file.
//
// A client that asks for it (Accept-Encoding, negotiated per RFC 9110) gets
// the 200 gzip-coded, or in a coding the host registers with WithEncoder
// (zstd, brotli); WithoutCompression turns coding off. Every answer carries
// Vary: Accept-Encoding, and a coded 200 keeps every header of the
// contract: Content-Length and Repr-Digest are then those of the coded
// bytes sent.
//
// At most one export per user runs at a time (a second gets 429) and a
// bounded number run at once in the process (more wait their turn for a
// bounded time, then get 429): see Limits and Limiter, which a host with
// many instances replaces with a shared one.
//
// No export holds its slot for ever: a client that takes in nothing for
// 30 seconds is cut, a store that yields nothing for 60 seconds is
// canceled (503), whatever the http.Server's own timeouts; an export that
// makes progress is never cut. See Timeouts and WithTimeouts.
//
// Every request produces one Event, logged to the handler's *slog.Logger
// and given to the WithAuditHook function: user, outcome, status, bytes,
// records per section, duration and the full error, never the data.
// SECURITY.md has the threat model and what the host must do.
//
// # Sections of the host's own
//
// StoreExporter.AddSection registers a Section that follows workflows in
// the document: a name and a Read that streams Records from the store's
// Tx, so it sees the same snapshot as the built-in sections
// (sqlstore.Section reads a query in the export's transaction,
// memstore.Section the records kept with the user's). The format stays
// 1.0; docs/FORMAT.md has the rules for names and values.
package export
