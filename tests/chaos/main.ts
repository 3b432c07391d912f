/**
 * `deno task chaos [--quick] [--only NAME[,NAME]] [--seed N]`: fault injection against Kubeocean
 * on real local clusters (see `world.ts`). Runs the selected scenarios one after another (`--quick`:
 * those marked quick, with smaller counts; `--only`: exactly the named ones), prints progress on
 * stderr, then a table on stdout whose last line is the summary
 * `chaos: N scenarios, P passed, lost L, duplicates D, orphans O`. Exits 0 only when every
 * scenario passed with nothing lost, duplicated or orphaned. Logs of the Kubeocean processes are
 * kept (their directory is printed) when something failed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatReport, succeeded } from "./report.ts";
import { Suite } from "./runner.ts";
import { SCENARIOS } from "./scenarios/mod.ts";

const USAGE = `usage: deno task chaos [--quick] [--only NAME[,NAME]] [--seed N]
scenarios: ${SCENARIOS.map((s) => `${s.name}${s.quick ? " (quick)" : ""}`).join(", ")}`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const only = values.only?.split(",").map((n) => n.trim()).filter(Boolean);
const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(", ")}\n${USAGE}`);
  Deno.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed: "${values.seed}" is not an integer`);
  Deno.exit(2);
}
const selected = SCENARIOS.filter((s) => only ? only.includes(s.name) : !values.quick || s.quick);

const started = Date.now();
const log = (line: string) =>
  console.error(`[chaos ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);
const dir = await Deno.makeTempDir({ prefix: "kubeocean-chaos-" });
const suite = new Suite({ quick: values.quick, seed, log }, dir);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    log(`${signal}: stopping every process and cluster of the suite …`);
    await suite.stop(true).catch(() => {});
    Deno.exit(signal === "SIGINT" ? 130 : 143);
  });
}

log(`${selected.length} scenario(s): ${selected.map((s) => s.name).join(", ")}; seed ${seed}`);
const results = await suite.run(selected);
const ok = succeeded(results);
await suite.stop(ok);
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s${ok ? "" : `; logs and state kept in ${dir}`}`);
console.log(formatReport(results));
Deno.exit(ok ? 0 : 1);
