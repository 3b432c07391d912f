/**
 * `deno task demo`: brings up a computing cluster and two kwok worker clusters on loopback and
 * explains how to use them; Ctrl-C stops everything. `--exit-when-ready` exits once they are up.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Environment } from "../../toolkit/envtest/environment.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "exit-when-ready": { type: "boolean", default: false },
    dir: { type: "string", default: ".demo" },
    nodes: { type: "string", default: "3" },
  },
});

const log = (line: string) => console.error(`[demo] ${line}`);
const nodes = Number(values.nodes);
const env = await Environment.start({
  dir: values.dir,
  log,
  clusters: [
    { name: "computing", controlPlane: true },
    { name: "worker1", nodes },
    { name: "worker2", nodes },
  ],
});

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log("stopping every cluster …");
    await env.stop();
    log("done: nothing left running");
  }
  Deno.exit(code);
}

const kubectl = env.binaries.kubectl;
console.log(`
Local clusters are up (state in ${env.dir}):
${env.clusters.map((c) => `  ${c.name.padEnd(10)} ${c.server}  nodes: ${c.state.nodes.length}`).join("\n")}

Try:
  ${kubectl} --kubeconfig ${env.kubeconfig} --context worker1 get nodes
  ${kubectl} --kubeconfig ${env.kubeconfig} --context computing get ns
`);

if (values["exit-when-ready"]) await shutdown(0);
Deno.addSignalListener("SIGINT", () => void shutdown(130));
Deno.addSignalListener("SIGTERM", () => void shutdown(143));
console.log("Press Ctrl-C to stop and clean up.");
