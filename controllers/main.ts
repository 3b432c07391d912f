/**
 * Kubeocean's single entrypoint: `deno task run <subcommand> [flags]` locally, and the same file
 * compiled into the image.
 *
 * ```
 * manager   ClusterBinding lifecycle; --syncer-mode=deployment|embedded
 * syncer    one binding's syncer: --cluster-binding NAME
 * proxier   the kubelet API of virtual nodes (not in this release)
 * bind      register a worker cluster in one command
 * unbind    undo bind
 * ```
 *
 * Common flags: --kubeconfig, --context, --metrics-bind-address, --health-probe-bind-address,
 * --leader-elect, --log-level, --log-format.
 *
 * @module
 */

import { runBind, runUnbind } from "./bind/bind.ts";
import { runManager } from "./manager/run.ts";
import { narrowPermissions } from "./permissions.ts";
import { runSyncer } from "./syncer/run.ts";

const USAGE = `usage: kubeocean <manager|syncer|proxier|bind|unbind> [flags]

  manager  [--syncer-mode=deployment|embedded] [--namespace NS] [--image IMAGE]
           [--kube-client-qps 300 --kube-client-burst 600] [common flags]
  syncer   --cluster-binding NAME [--virtual-client-qps 300 --virtual-client-burst 600]
           [--physical-client-qps 300 --physical-client-burst 600] [common flags]
  bind     --kubeconfig COMPUTING --worker-kubeconfig WORKER --name NAME --cluster-id ID --mount-namespace NS
           [--context C] [--worker-context C] [--worker-server URL] [--wait SECONDS]
           [--pod-security restricted|baseline|privileged] [--allow-metadata-egress]
  unbind   --name NAME [--kubeconfig COMPUTING] [--worker-kubeconfig WORKER]

common flags: --kubeconfig PATH --context NAME --metrics-bind-address :8080 --health-probe-bind-address :8081
              --leader-elect --log-level debug|info|warn|error --log-format text|json`;

const commands: Record<string, (args: string[]) => Promise<void>> = {
  manager: runManager,
  syncer: runSyncer,
  bind: runBind,
  unbind: runUnbind,
  proxier: () => {
    throw new Error("the proxier (kubelet API on :10250) is not part of this release yet");
  },
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
  narrowPermissions(command!, args);
  try {
    await run(args);
    Deno.exit(0);
  } catch (err) {
    console.error(`kubeocean ${command}: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
