/**
 * The Deno permissions each subcommand keeps. One binary (and `deno task run`) serves every
 * subcommand with the union of their permissions; at start the entrypoint revokes what the chosen
 * subcommand does not need, so that, say, a manager that only reads kubeconfigs from Secrets cannot
 * run a program even if a bug tried to.
 *
 * @module
 */

/** A permission a subcommand gives up at start (`--allow-write` is not granted at all). */
export type Revocation = "run" | "write" | "ffi";

/**
 * What `command` gives up: nothing of Kubeocean writes files or loads native code; programs run
 * only for exec credential plugins of a kubeconfig the operator gave on the command line
 * (`--kubeconfig`, `bind`/`unbind`/`forecast`) or of kubeconfig Secrets trusted with
 * `--trust-kubeconfig-secrets=true`. In a cluster (no `--kubeconfig`) a manager or syncer runs none.
 */
export function revocationsFor(command: string, args: readonly string[]): Revocation[] {
  const revoked: Revocation[] = ["write", "ffi"];
  const operatorKubeconfig = args.some((a) => a === "--kubeconfig" || a.startsWith("--kubeconfig="));
  const trusted = args.includes("--trust-kubeconfig-secrets=true");
  const mayRunPlugins = command === "bind" || command === "unbind" || command === "forecast" ||
    operatorKubeconfig || trusted;
  if (!mayRunPlugins) revoked.push("run");
  return revoked;
}

/** Revokes what `command` does not need (see {@linkcode revocationsFor}). */
export function narrowPermissions(command: string, args: readonly string[]): void {
  for (const name of revocationsFor(command, args)) Deno.permissions.revokeSync({ name });
}
