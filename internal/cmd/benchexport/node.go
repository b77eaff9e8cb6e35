package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The route this library replaces, for comparison: a Node.js server doing
// the original's data path on the same PostgreSQL data. Its four reads
// go out at once (Promise.all) through a connection pool, with no ORDER
// BY, and the document is JSON.stringify(doc, null, 2) sent in one piece.
// node-postgres stands in for Prisma (the same queries; Prisma adds its
// own engine's cost on top, so this is the original's floor, not its
// time). The pool is connected before serving, as a running server's is.
const nodeScript = `'use strict';
const http = require('node:http');
const { Pool } = require('pg');

const addrArg = process.argv[process.argv.indexOf('-addr') + 1];
const sep = addrArg.lastIndexOf(':');
const schema = process.env.BENCH_SCHEMA;
const userId = process.env.BENCH_USER;
// Prisma's default pool on 2 cores: num_cpus * 2 + 1.
const pool = new Pool({ connectionString: process.env.BENCH_PG, max: 5 });
const t = (name) => '"' + schema + '"."' + name + '"';

async function exportDoc(id) {
  const [user, agents, scheduledTasks, workflows] = await Promise.all([
    pool.query('SELECT id, email, name, plan, role, "referralCode", "referralCredits" FROM ' + t('User') + ' WHERE id = $1 LIMIT 1', [id]).then((r) => r.rows[0]),
    pool.query('SELECT id, name, model, status, "createdAt", "updatedAt" FROM ' + t('Agent') + ' WHERE "userId" = $1', [id]).then((r) => r.rows),
    pool.query('SELECT id, name, "cronSchedule", enabled, "createdAt" FROM ' + t('ScheduledTask') + ' WHERE "userId" = $1', [id]).then((r) => r.rows),
    pool.query('SELECT id, name, enabled, "createdAt" FROM ' + t('Workflow') + ' WHERE "userId" = $1', [id]).then((r) => r.rows),
  ]);
  return { exportedAt: new Date().toISOString(), version: '1.0', user, agents, scheduledTasks, workflows };
}

const server = http.createServer(async (req, res) => {
  if (req.url !== '/api/export') {
    res.end('node export server\n');
    return;
  }
  try {
    const body = JSON.stringify(await exportDoc(userId), null, 2);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Disposition': 'attachment; filename="export.json"',
      'Cache-Control': 'no-store',
    });
    res.end(body);
  } catch (err) {
    console.error(err);
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'Export failed' }));
  }
});

(async () => {
  const clients = await Promise.all([1, 2, 3, 4].map(() => pool.connect()));
  clients.forEach((c) => c.release());
  server.listen(Number(addrArg.slice(sep + 1)), addrArg.slice(0, sep));
})().catch((err) => { console.error(err); process.exit(1); });
`

// nodeRoute is the installed script.
type nodeRoute struct {
	node, script string
	pgDSN        string // the DSN as given, without search_path
}

// setupNode writes the script to a directory of its own under dir and
// installs node-postgres there. On failure it returns nil and why.
func setupNode(ctx context.Context, dir, pgDSN string, log io.Writer) (*nodeRoute, string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "node is not installed"
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, "npm is not installed"
	}
	nd := filepath.Join(dir, "node-route")
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return nil, err.Error()
	}
	if err := os.WriteFile(filepath.Join(nd, "package.json"), []byte(`{"private": true, "name": "benchexport-node-route"}`+"\n"), 0o644); err != nil {
		return nil, err.Error()
	}
	script := filepath.Join(nd, "server.js")
	if err := os.WriteFile(script, []byte(nodeScript), 0o644); err != nil {
		return nil, err.Error()
	}
	fmt.Fprintln(log, "installing node-postgres for the original route (npm install pg)...")
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ictx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "pg@8")
	cmd.Dir = nd
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("npm install pg failed (%v): %s", err, strings.TrimSpace(lastLines(string(b), 3)))
	}
	return &nodeRoute{node: node, script: script, pgDSN: pgDSN}, ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// start runs the Node server for the dataset's big account. TZ=UTC:
// node-postgres reads a timestamp without zone as local time, where
// Prisma reads it as UTC.
func (n *nodeRoute) start(r *runner, ds dataset, user string) (*process, error) {
	return startProcess(r.ctx, r.dir, []string{n.node, n.script}, true,
		"TZ=UTC", "BENCH_PG="+n.pgDSN, "BENCH_SCHEMA="+ds.schema, "BENCH_USER="+user)
}

// run times one export of the big account, in a fresh process.
func (n *nodeRoute) run(r *runner, ds dataset) (sample, error) {
	p, err := n.start(r, ds, ds.userID)
	if err != nil {
		return sample{}, err
	}
	defer p.stop()
	return r.timedFetch(p, nil)
}

// verify checks, outside any timing, that the Node route exports the same
// records as the library (as sets: it does not order them), with NULL
// models as "" as the contract has them (the original wrote null).
func (n *nodeRoute) verify(r *runner, ds dataset) error {
	p, err := n.start(r, ds, ds.userID)
	if err != nil {
		return err
	}
	defer p.stop()
	var body strings.Builder
	if status, _, err := fetch(r.ctx, p.addr, nil, &body); err != nil || status != 200 {
		return fmt.Errorf("the Node route: status %d, %v\n%s", status, err, p.logTail())
	}
	var doc naiveDocument
	if err := json.Unmarshal([]byte(body.String()), &doc); err != nil {
		return fmt.Errorf("the Node route's export does not decode: %w", err)
	}
	got := naiveLines(doc)
	lib, err := startProcess(r.ctx, r.dir, append([]string{r.server}, ds.dbArgs()...), true)
	if err != nil {
		return err
	}
	defer lib.stop()
	libDoc, err := r.libraryDocument(lib, ds.userID, "")
	if err != nil {
		return err
	}
	want := lines(libDoc)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				return fmt.Errorf("%s: the Node route's export and the library's differ: %s, library %s", ds.title(), got[i], want[i])
			}
		}
		return fmt.Errorf("%s: the Node route's export has %d lines, the library's %d", ds.title(), len(got), len(want))
	}
	return nil
}
