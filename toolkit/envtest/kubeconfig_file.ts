/**
 * Writes kubeconfig files for test clusters: one per cluster with embedded credentials, and a
 * merged one with one context per cluster.
 *
 * @module
 */

import { stringify } from "yaml";

/** One cluster plus one user, as embedded PEM data. */
export interface KubeconfigEntry {
  /** Used as the cluster, user and context name. */
  name: string;
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  /** User name; defaults to `<name>-admin`. */
  user?: string;
}

function b64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Renders a kubeconfig holding `entries`; the first one is the current context. */
export function renderKubeconfig(entries: KubeconfigEntry[], currentContext = entries[0]?.name): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    preferences: {},
    "current-context": currentContext,
    clusters: entries.map((e) => ({
      name: e.name,
      cluster: { server: e.server, "certificate-authority-data": b64(e.caPem) },
    })),
    users: entries.map((e) => ({
      name: e.user ?? `${e.name}-admin`,
      user: { "client-certificate-data": b64(e.certPem), "client-key-data": b64(e.keyPem) },
    })),
    contexts: entries.map((e) => ({
      name: e.name,
      context: { cluster: e.name, user: e.user ?? `${e.name}-admin` },
    })),
  });
}

/** Writes a kubeconfig file readable only by its owner. */
export async function writeKubeconfig(path: string, entries: KubeconfigEntry[]): Promise<void> {
  await Deno.writeTextFile(path, renderKubeconfig(entries), { mode: 0o600 });
}
