// Package jobs prepares export documents in the background and serves
// them as files: the job API (POST/GET /api/exports, GET
// /api/exports/{id}, its /download and DELETE) next to the synchronous
// GET /api/export, for accounts too large to export within one request.
//
// Jobs run on River (github.com/riverqueue/river): on PostgreSQL for
// hosts with many instances, through riverpgxv5 on a pgx pool (NewPgx) or
// riverdatabasesql on a *sql.DB (New), and on SQLite through riversqlite
// for a single instance (New). A job's row (table export_job, see
// Schema) and its River job are inserted in one transaction; a worker
// that dies mid-job leaves its River job running, which River's rescuer
// retries once it has been running for the job timeout plus the rescue
// delay, and the retry writes the file anew. Files are written under a
// temporary name and renamed once complete (LocalDir, the default) or
// uploaded whole (package s3storage); the periodic cleanup job expires
// them after the retention time (7 days by default) and removes any file
// no job owns.
//
// Beside each document a gzip copy is stored and sent to clients that
// accept gzip, with its own ETag (WithoutCompressedCopy turns it off);
// downloads take Range and If-Range on the representation sent.
//
// The documents are made by the export.Exporter the host gives, the one
// its synchronous endpoint uses: a download is byte for byte what the
// endpoint serves for the same snapshot, its exportedAt the instant the
// job's snapshot was taken.
//
// The package is separate from the core so that only hosts that import it
// compile River and its drivers: package export, memstore and sqlstore
// import none of them.
package jobs
