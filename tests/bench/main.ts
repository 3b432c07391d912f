/**
 * `deno task bench <name>`: benchmarks against real local clusters. Each reports ratios against a
 * baseline measured in the same run; see the README's Measurements section.
 *
 * @module
 */

import { benchInformer } from "./informer.ts";
import { benchNodes } from "./nodes.ts";
import { benchProxier } from "./proxier.ts";
import { benchScale } from "./scale.ts";
import { benchSync } from "./sync.ts";

const benches: Record<string, (args: string[]) => Promise<void>> = {
  informer: benchInformer,
  nodes: benchNodes,
  proxier: benchProxier,
  scale: benchScale,
  sync: benchSync,
};

const [name, ...rest] = Deno.args;
const bench = benches[name ?? ""];
if (!bench) {
  console.error(`usage: deno task bench <${Object.keys(benches).join("|")}> [options]`);
  Deno.exit(2);
}
await bench(rest);
Deno.exit(0); // signal listeners (cleanup on Ctrl-C) would otherwise keep the process alive
