// Regenerates the golden export documents from their inputs with
// JavaScript's own JSON.stringify, the serialiser of the route this
// library replaces:
//
//   node testdata/golden/generate.mjs            (from the repository root)
//
// Each <case>.input.json holds the data with timestamps as RFC 3339
// strings, at any precision and in any zone. They become Date objects
// (which keep milliseconds, truncating the rest) and the document is built
// with its keys in the order of the old route, then printed with
// JSON.stringify(doc, null, 2), no trailing newline, into <case>.json.
// TestGolden feeds the same inputs through the Go encoder.
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? dir; // TestGoldenMatchesNode writes elsewhere

// The many-records case is generated rather than written by hand.
const many = {
  exportedAt: "2026-11-26T23:59:59.999999+00:00",
  user: { id: "cmany000000000000000000000", email: "many@example.com", name: "Many Records", plan: "network", role: "user", referralCode: null, referralCredits: 1234 },
  agents: [], scheduledTasks: [], workflows: [],
};
for (let i = 0; i < 300; i++) {
  const t = new Date(Date.UTC(2025, 0, 1) + i * 3_600_007).toISOString().replace("Z", "123+00:00");
  many.agents.push({ id: `agent_${String(i).padStart(4, "0")}`, name: `agent #${i} «${"é".repeat(i % 7)}»`, model: ["gpt-4o", "claude", ""][i % 3], status: ["running", "pending", "stopped"][i % 3], createdAt: t, updatedAt: t });
  many.scheduledTasks.push({ id: `task_${i}`, name: `task\t${i}`, cronSchedule: `${i % 60} * * * *`, enabled: i % 2 === 0, createdAt: t });
  many.workflows.push({ id: `wf_${i}`, name: `flow "${i}"`, enabled: i % 3 === 0, createdAt: t });
}
writeFileSync(join(dir, "many-records.input.json"), JSON.stringify(many, null, 1) + "\n");

const date = (s) => {
  const d = new Date(s);
  if (isNaN(d)) throw new Error(`bad timestamp ${s}`);
  return d;
};

for (const f of readdirSync(dir).filter((f) => f.endsWith(".input.json")).sort()) {
  const input = JSON.parse(readFileSync(join(dir, f), "utf8"));
  const u = input.user;
  const doc = {
    exportedAt: date(input.exportedAt),
    version: "1.0",
    user: { id: u.id, email: u.email, name: u.name, plan: u.plan, role: u.role, referralCode: u.referralCode, referralCredits: u.referralCredits },
    agents: input.agents.map((a) => ({ id: a.id, name: a.name, model: a.model, status: a.status, createdAt: date(a.createdAt), updatedAt: date(a.updatedAt) })),
    scheduledTasks: input.scheduledTasks.map((t) => ({ id: t.id, name: t.name, cronSchedule: t.cronSchedule, enabled: t.enabled, createdAt: date(t.createdAt) })),
    workflows: input.workflows.map((w) => ({ id: w.id, name: w.name, enabled: w.enabled, createdAt: date(w.createdAt) })),
  };
  writeFileSync(join(out, f.replace(".input.json", ".json")), JSON.stringify(doc, null, 2));
}
