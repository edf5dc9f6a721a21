// Parses each line of stdin with one of Grafana's query grammars and prints the lines
// the grammar rejects (an error node in the tree), one per line, as JSON. Exit code 1
// when any is rejected.
//
//   node tests/grammars/check.mjs traceql < queries.txt
//   node tests/grammars/check.mjs logql < queries.txt
import { readFileSync } from "node:fs";

const which = process.argv[2];
const grammars = {
  traceql: async () => (await import("@grafana/lezer-traceql")).parser,
  logql: async () => (await import("@grafana/lezer-logql")).parser,
};
if (!grammars[which]) {
  console.error(`usage: check.mjs ${Object.keys(grammars).join("|")} < queries`);
  process.exit(2);
}
const parser = await grammars[which]();
const rejected = [];
for (const line of readFileSync(0, "utf8").split("\n")) {
  const q = line.trim();
  if (!q) continue;
  let bad = null;
  parser.parse(q).iterate({
    enter: (n) => {
      if (n.type.isError && bad === null) bad = n.from;
    },
  });
  if (bad !== null) rejected.push({ query: q, at: bad });
}
for (const r of rejected) console.log(JSON.stringify(r));
process.exit(rejected.length ? 1 : 0);
