// Prints added-sections.json: the contract example with two sections a
// host added, as JSON.stringify(doc, null, 2) writes them. The Go test
// TestAddedSectionsMatchNode builds the same document and compares bytes.
// Run from this directory: node generate.mjs > added-sections.json
import { readFileSync } from "node:fs";

const doc = JSON.parse(readFileSync("../golden/contract-example.json", "utf8"));
doc.notifications = [
  {
    id: "n1",
    body: "line\n\"quoted\" <>& \u2028 \u0007 🎉",
    read: false,
    count: 3,
    big: 9007199254740993n.toString(), // as text: past 2^53
    score: 1.5,
    third: 1 / 3,
    tiny: 1.5e-7,
    small: 0.000001,
    huge: 1e21,
    large: 123456789012345680000,
    negZero: -0,
    notANumber: 0 / 0,
    infinite: 1 / 0,
    at: new Date(Date.UTC(2026, 2, 1, 0, 0, 0, 123)),
    none: null,
  },
  {},
];
doc.files = [];
process.stdout.write(JSON.stringify(doc, null, 2));
