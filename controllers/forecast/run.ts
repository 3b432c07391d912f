/**
 * `kubeocean forecast`: what a worker's ResourceLeasingPolicies would lend at given times.
 *
 * ```
 * forecast --worker-kubeconfig W [--worker-context C] [--cluster NAME]
 *          [--at TIME | --from T1 --to T2 --step 1h] [--policy FILE] [-o table|json]
 *          [--kubeconfig COMPUTING [--context C]]
 * ```
 *
 * Times are RFC 3339 with an offset (`2026-12-05T02:00:00Z`, `…+08:00`) or `now`; steps are
 * minutes, hours or days (`30m`, `1h`, `1d`). `--policy` previews policies from a YAML file as if
 * applied (replacing one of the same name). With `--kubeconfig` the bindings' node selectors in
 * the computing cluster apply too. Read-only in both clusters.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { CoreV1Api } from "../../apis/core/v1/mod.ts";
import { KubeoceanIoV1beta1Api, type ResourceLeasingPolicy } from "../../apis/kubeocean.io/v1beta1/mod.ts";
import { rfc3339 } from "../../toolkit/apimachinery/time.ts";
import { KubeClient } from "../../toolkit/client/client.ts";
import { isNotFound } from "../../toolkit/client/errors.ts";
import { policyProblem } from "../syncer/bottomup/policy_selection.ts";
import { forecast, type ForecastBinding, forecastInstants, forecastTable } from "./forecast.ts";

/** Parses `now` or an RFC 3339 time with an offset; `flag` names it in errors. */
export function parseInstant(flag: string, text: string, now: Date): Date {
  if (text === "now") return now;
  const rfc3339Pattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
  if (!rfc3339Pattern.test(text)) {
    throw new Error(
      `${flag}: "${text}" is not an RFC 3339 time with an offset (e.g. 2026-12-05T02:00:00Z or 2026-12-05T10:00:00+08:00) or "now"`,
    );
  }
  const [y, m, d, hh, mm] = text.split(/[-T:]/).map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  const instant = new Date(text);
  if (
    day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d || hh > 23 || mm > 59 ||
    Number.isNaN(instant.getTime())
  ) {
    throw new Error(`${flag}: "${text}" is not a time of the calendar`);
  }
  return instant;
}

/** Parses a step such as `30m`, `1h` or `1d` into milliseconds. */
export function parseStep(text: string): number {
  const match = /^(\d+)(m|h|d)$/.exec(text);
  if (!match) {
    throw new Error(`--step: "${text}" is not a duration in minutes, hours or days (e.g. 30m, 1h, 1d)`);
  }
  return Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "m" | "h" | "d"];
}

/** Reads the policies of a YAML file, each checked as the syncer checks it. */
export async function readPolicyFile(path: string): Promise<ResourceLeasingPolicy[]> {
  return parsePolicies(await Deno.readTextFile(path), path);
}

/** The policies of YAML `text` (from `path`, for messages), each checked as the syncer checks it. */
export function parsePolicies(text: string, path: string): ResourceLeasingPolicy[] {
  const documents = parseAllDocuments(text);
  const policies: ResourceLeasingPolicy[] = [];
  for (const [i, document] of (Array.isArray(documents) ? documents : [documents]).entries()) {
    if (document.errors.length) {
      throw new Error(`--policy ${path}: document ${i + 1}: ${document.errors[0].message}`);
    }
    const object = document.toJS() as ResourceLeasingPolicy | null;
    if (!object) continue;
    const name = object.metadata?.name;
    if (object.kind !== "ResourceLeasingPolicy" || !name) {
      throw new Error(
        `--policy ${path}: document ${i + 1} is not a ResourceLeasingPolicy with metadata.name`,
      );
    }
    if (!object.spec?.cluster) throw new Error(`--policy ${path}: ${name}: spec.cluster is required`);
    const problem = policyProblem(object);
    if (problem) throw new Error(`--policy ${path}: ${name}: ${problem}`);
    policies.push(object);
  }
  if (!policies.length) throw new Error(`--policy ${path}: no ResourceLeasingPolicy in the file`);
  return policies;
}

/** The applied policies with the previewed ones in place (same name replaced, new ones youngest). */
export function withPreview(
  applied: readonly ResourceLeasingPolicy[],
  preview: readonly ResourceLeasingPolicy[],
  now: Date,
): ResourceLeasingPolicy[] {
  const byName = new Map(applied.map((p) => [p.metadata!.name!, p]));
  for (const p of preview) {
    const existing = byName.get(p.metadata!.name!);
    byName.set(p.metadata!.name!, {
      ...p,
      metadata: {
        ...p.metadata,
        creationTimestamp: existing?.metadata?.creationTimestamp ?? rfc3339(now),
      },
    });
  }
  return [...byName.values()];
}

/** Runs `forecast` with command-line `args`. */
export async function runForecast(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "worker-kubeconfig": { type: "string" },
      "worker-context": { type: "string" },
      kubeconfig: { type: "string" },
      context: { type: "string" },
      cluster: { type: "string" },
      at: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      step: { type: "string", default: "1h" },
      policy: { type: "string" },
      output: { type: "string", short: "o", default: "table" },
    },
  });
  if (!values["worker-kubeconfig"]) throw new Error("--worker-kubeconfig is required");
  if (values.output !== "table" && values.output !== "json") {
    throw new Error(`-o: "${values.output}" is not table or json`);
  }
  const now = new Date();
  let instants: Date[];
  if (values.at !== undefined) {
    if (values.from !== undefined || values.to !== undefined) {
      throw new Error("--at: use either --at, or --from and --to");
    }
    instants = [parseInstant("--at", values.at, now)];
  } else if (values.from !== undefined || values.to !== undefined) {
    if (values.from === undefined || values.to === undefined) throw new Error("--from and --to go together");
    instants = forecastInstants(
      parseInstant("--from", values.from, now),
      parseInstant("--to", values.to, now),
      parseStep(values.step!),
    );
  } else instants = [now];
  const preview = values.policy ? await readPolicyFile(values.policy) : [];

  const worker = await KubeClient.load({
    kubeconfig: values["worker-kubeconfig"],
    context: values["worker-context"],
  });
  const computing = values.kubeconfig
    ? await KubeClient.load({ kubeconfig: values.kubeconfig, context: values.context })
    : undefined;
  try {
    const core = new CoreV1Api(worker);
    const [nodes, pods, applied] = await Promise.all([
      core.nodes().list({}),
      core.pods().list({ fieldSelector: "status.phase!=Succeeded,status.phase!=Failed" }),
      new KubeoceanIoV1beta1Api(worker).resourceleasingpolicies().list({}),
    ]);
    const policies = withPreview(applied.items, preview, now);
    const names = values.cluster
      ? [values.cluster]
      : [...new Set(policies.map((p) => p.spec!.cluster))].sort();
    const bindings: ForecastBinding[] = [];
    for (const name of names) {
      if (!computing) {
        bindings.push({ name });
        continue;
      }
      try {
        const binding = await new KubeoceanIoV1beta1Api(computing).clusterbindings().get(name);
        bindings.push({ name, nodeSelector: binding.spec?.nodeSelector });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        throw new Error(`--cluster: no ClusterBinding "${name}" in the computing cluster`);
      }
    }
    const steps = forecast({ nodes: nodes.items, pods: pods.items, policies }, bindings, instants);
    if (values.output === "json") {
      console.log(JSON.stringify(
        {
          capacityAsOf: rfc3339(now),
          bindingSelectorsApplied: !!computing,
          steps,
        },
        null,
        2,
      ));
    } else {
      console.log(
        `# free capacity as of ${rfc3339(now)} (the worker's own pods assumed unchanged)` +
          (computing ? "" : "; bindings' node selectors not applied (give --kubeconfig)"),
      );
      console.log(forecastTable(steps));
    }
  } finally {
    worker.close();
    computing?.close();
  }
}
