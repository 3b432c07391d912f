/**
 * Kubeocean's single entrypoint: `deno task run <subcommand> [flags]` locally, and the same file
 * compiled into the image.
 *
 * ```
 * manager   ClusterBinding lifecycle; --syncer-mode=deployment|embedded
 * syncer    one binding's syncer: --cluster-binding NAME
 * proxier   the kubelet API of one binding's virtual nodes: --cluster-binding NAME
 * bind      register a worker cluster in one command
 * unbind    undo bind
 * forecast  what a worker's policies would lend at given times
 * ```
 *
 * Common flags: --kubeconfig, --context, --metrics-bind-address, --health-probe-bind-address,
 * --leader-elect, --log-level, --log-format.
 *
 * @module
 */

import { runBind, runUnbind } from "./bind/bind.ts";
import { runForecast } from "./forecast/run.ts";
import { runManager } from "./manager/run.ts";
import { narrowPermissions } from "./permissions.ts";
import { runProxier } from "./proxier/run.ts";
import { runSyncer } from "./syncer/run.ts";

const USAGE = `usage: kubeocean <manager|syncer|proxier|bind|unbind|forecast> [flags]

  manager  [--syncer-mode=deployment|embedded] [--namespace NS] [--image IMAGE]
           [--kube-client-qps 300 --kube-client-burst 600] [common flags]
           embedded mode serves the kubelet API: [--proxier-address IP --proxier-port 10250]
           [--proxier-listen-address 0.0.0.0] [--proxier-tls-cert-file F --proxier-tls-private-key-file F]
           [--proxier-client-ca-file F]
  syncer   --cluster-binding NAME [--proxier-address IP | --proxier-pods-namespace NS] [--proxier-port 10250]
           [--virtual-client-qps 300 --virtual-client-burst 600]
           [--physical-client-qps 300 --physical-client-burst 600] [common flags]
  proxier  --cluster-binding NAME [--listen-address 0.0.0.0] [--listen-port 10250] [--advertise-address IP]
           [--tls-cert-file F --tls-private-key-file F] [--client-ca-file F] [common flags]
           (without certificate files: a kubernetes.io/kubelet-serving CSR, approved and renewed by the proxier)
  bind     --kubeconfig COMPUTING --worker-kubeconfig WORKER --name NAME --cluster-id ID --mount-namespace NS
           [--context C] [--worker-context C] [--worker-server URL] [--wait SECONDS]
           [--pod-security restricted|baseline|privileged] [--allow-metadata-egress]
  unbind   --name NAME [--kubeconfig COMPUTING] [--worker-kubeconfig WORKER]
  forecast --worker-kubeconfig WORKER [--worker-context C] [--cluster NAME] [--policy FILE] [-o table|json]
           [--at TIME | --from TIME --to TIME [--step 1h]] [--kubeconfig COMPUTING]
           TIME: RFC 3339 with an offset, or now; at most 10000 instants over at most 366 days

common flags: --kubeconfig PATH --context NAME --metrics-bind-address :8080 --health-probe-bind-address :8081
              --leader-elect --log-level debug|info|warn|error --log-format text|json`;

const commands: Record<string, (args: string[]) => Promise<void>> = {
  manager: runManager,
  syncer: runSyncer,
  bind: runBind,
  unbind: runUnbind,
  proxier: runProxier,
  forecast: runForecast,
};

if (import.meta.main) {
  const [command, ...args] = Deno.args;
  const run = commands[command ?? ""];
  if (!run) {
    console.error(
      command && command !== "--help" && command !== "-h"
        ? `unknown subcommand "${command}"\n${USAGE}`
        : USAGE,
    );
    Deno.exit(command === "--help" || command === "-h" ? 0 : 2);
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  narrowPermissions(command!, args);
  try {
    await run(args);
    Deno.exit(0);
  } catch (err) {
    console.error(`kubeocean ${command}: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
