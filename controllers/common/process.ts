/**
 * The flags every long-running subcommand shares, and the process's toolkit {@linkcode Manager}
 * built from them (metrics and probe servers, signals and leader election live there).
 *
 * @module
 */

import type { KubeClient } from "../../toolkit/client/client.ts";
import { type LogFormat, Logger, type LogLevel } from "../../toolkit/runtime/log.ts";
import { Manager } from "../../toolkit/runtime/manager.ts";
import type { RuntimeMetrics } from "../../toolkit/runtime/metrics.ts";

/** Flags every long-running subcommand takes. */
export interface CommonFlags {
  kubeconfig?: string;
  context?: string;
  "metrics-bind-address": string;
  "health-probe-bind-address": string;
  "leader-elect": boolean;
  "log-level": string;
  "log-format": string;
}

/** `parseArgs` option definitions of {@linkcode CommonFlags}. */
export const COMMON_OPTIONS = {
  kubeconfig: { type: "string" },
  context: { type: "string" },
  "metrics-bind-address": { type: "string", default: ":8080" },
  "health-probe-bind-address": { type: "string", default: ":8081" },
  "leader-elect": { type: "boolean", default: false },
  "log-level": { type: "string", default: "info" },
  "log-format": { type: "string", default: "text" },
} as const;

/** Client-side request limits of one API client. */
export interface ClientLimits {
  qps: number;
  burst: number;
}

/**
 * Default client-side limits of the manager's and each syncer's API clients. A syncer writes about three times per pod
 * to the computing cluster (finalizer, twin annotations, status) and once or twice to the worker;
 * these keep up with a scheduler binding a few hundred pods a second. Lower them with
 * `--virtual-client-qps|burst` and `--physical-client-qps|burst`.
 */
export const DEFAULT_CLIENT_LIMITS = { qps: 300, burst: 600 };

/** Options `--<prefix>-qps` and `--<prefix>-burst` (strings, parsed by {@linkcode parseClientLimits}). */
export function clientLimitOptions(
  prefix: string,
  defaults: ClientLimits,
): Record<string, { type: "string"; default: string }> {
  return {
    [`${prefix}-qps`]: { type: "string" as const, default: String(defaults.qps) },
    [`${prefix}-burst`]: { type: "string" as const, default: String(defaults.burst) },
  };
}

/**
 * Reads `--<prefix>-qps` / `--<prefix>-burst`. A QPS of 0 or less turns client-side limiting off
 * (the API server's priority and fairness still applies); bad values name the flag.
 */
export function parseClientLimits(values: Record<string, unknown>, prefix: string): ClientLimits {
  const read = (flag: string) => {
    const text = String(values[flag]);
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) {
      throw new Error(`--${flag}: "${text}" is not a number`);
    }
    return value;
  };
  const qps = read(`${prefix}-qps`);
  const burst = read(`${prefix}-burst`);
  if (qps > 0 && burst < 1) throw new Error(`--${prefix}-burst: must be at least 1 when --${prefix}-qps > 0`);
  return { qps, burst };
}

/** `--trust-kubeconfig-secrets=true|false` of the manager and the syncer (default false). */
export const TRUST_OPTION = { "trust-kubeconfig-secrets": { type: "string", default: "false" } } as const;

/**
 * Reads `--trust-kubeconfig-secrets`: whether kubeconfigs from Secrets may run exec plugins and name
 * local files. Off by default, since whoever writes such a Secret would run code in Kubeocean.
 */
export function parseTrust(values: { "trust-kubeconfig-secrets": string }): boolean {
  const text = values["trust-kubeconfig-secrets"];
  if (text !== "true" && text !== "false") {
    throw new Error(`--trust-kubeconfig-secrets: "${text}" is not true or false`);
  }
  return text === "true";
}

/** Parses `host:port` (`:8080` binds every interface; `0` disables the server). */
function parseBindAddress(
  value: string,
  flag: string,
): { hostname: string; port: number } | undefined {
  if (value === "0") return undefined;
  const match = /^(.*):(\d+)$/.exec(value);
  if (!match) {
    throw new Error(`--${flag}: "${value}" is not HOST:PORT (use :8080, 127.0.0.1:8080 or 0 to disable)`);
  }
  return { hostname: match[1] || "0.0.0.0", port: Number(match[2]) };
}

/** The logger of the process. */
export function makeLogger(flags: CommonFlags, component: string): Logger {
  const level = flags["log-level"] as LogLevel;
  const format = flags["log-format"] as LogFormat;
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw new Error(`--log-level: "${level}" is not debug, info, warn or error`);
  }
  if (!["json", "text"].includes(format)) throw new Error(`--log-format: "${format}" is not json or text`);
  return new Logger({ level, format }, { component });
}

/**
 * The process's {@linkcode Manager} as the common flags say: metrics and probe addresses, and
 * leader election on Lease `namespace/leaseName` with `--leader-elect`.
 */
export function processManager(
  flags: CommonFlags,
  options: {
    name: string;
    client: KubeClient;
    log: Logger;
    metrics: RuntimeMetrics;
    namespace: string;
    leaseName: string;
  },
): Manager {
  const metricsAddress = parseBindAddress(flags["metrics-bind-address"], "metrics-bind-address");
  const healthAddress = parseBindAddress(flags["health-probe-bind-address"], "health-probe-bind-address");
  return new Manager({
    name: options.name,
    client: options.client,
    logger: options.log,
    metrics: options.metrics,
    metricsAddress,
    healthAddress,
    leaderElection: flags["leader-elect"]
      ? { namespace: options.namespace, name: options.leaseName }
      : undefined,
  });
}
