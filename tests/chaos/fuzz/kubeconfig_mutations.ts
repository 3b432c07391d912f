/**
 * Mutations of a binding's kubeconfig Secret. The base is the live binding's working kubeconfig
 * (a ServiceAccount token of the worker); each case gets its own Secret and a ClusterBinding that
 * names it, which must turn Failed naming the Secret or the kubeconfig field — or, for a harmless
 * change, be reconciled without Failed.
 *
 * @module
 */

import type { Prng } from "./prng.ts";
import { either, type Expectation, invalid, setPath, VALID, type WorldFacts } from "./mutation.ts";

/** The kubeconfig of one case, before it is written into its Secret. */
export interface KubeconfigDraft {
  /** The parsed kubeconfig, changed in place (ignored when `text` is set). */
  doc: Record<string, unknown>;
  /** Raw text instead of `doc` as YAML. */
  text?: string;
  /** Raw Secret `data` (values as sent: normally base64) instead of `{ kubeconfig: base64(text) }`. */
  data?: Record<string, string>;
}

/** What a kubeconfig mutation works on. */
export interface KubeconfigContext {
  rng: Prng;
  index: number;
  facts: WorldFacts;
  /** `namespace/name` of the case's Secret. */
  secret: string;
}

/** One way to break (or not) a kubeconfig. */
export interface KubeconfigMutation {
  name: string;
  apply(draft: KubeconfigDraft, ctx: KubeconfigContext): Expectation;
}

/** A mutation setting `path` of the kubeconfig document. */
function field(
  path: string,
  value: unknown,
  why: string,
  names: (ctx: KubeconfigContext) => Expectation,
): KubeconfigMutation {
  return {
    name: `kubeconfig ${path} = ${JSON.stringify(value)} (${why})`,
    apply(draft, ctx) {
      setPath(draft.doc, path, value);
      return names(ctx);
    },
  };
}

/** A mutation replacing the whole text. */
function text(
  name: string,
  make: (ctx: KubeconfigContext) => string,
  expect: (ctx: KubeconfigContext) => Expectation,
): KubeconfigMutation {
  return {
    name,
    apply(draft, ctx) {
      draft.text = make(ctx);
      return expect(ctx);
    },
  };
}

/** Failed, naming the Secret or one of `fields`. */
const names = (...fields: string[]) => (ctx: KubeconfigContext) => invalid(ctx.secret, ...fields);

/** Every kubeconfig mutation. */
export const KUBECONFIG_MUTATIONS: readonly KubeconfigMutation[] = [
  {
    name: "512 random bytes",
    apply(draft, ctx) {
      draft.data = { kubeconfig: base64Bytes(ctx.rng.bytes(512)) };
      return invalid(ctx.secret, "kubeconfig");
    },
  },
  text("invalid YAML", () => "{{{: not yaml: [", names("YAML", "kubeconfig")),
  text("a YAML list", () => "- a\n- b\n", names("kubeconfig")),
  text("empty", () => "", names("kubeconfig")),
  text("blank", () => "   \n\t\n", names("kubeconfig")),
  text(
    "a huge but valid kubeconfig (700 kB comment)",
    ({ rng, facts }) => `# ${rng.string(700_000)}\n${facts.kubeconfigText}`,
    () => VALID,
  ),
  {
    name: "key kubeconfig missing (data under config)",
    apply(draft, ctx) {
      draft.data = { config: base64Text(ctx.facts.kubeconfigText) };
      return invalid(ctx.secret, "kubeconfig");
    },
  },
  {
    name: "kubeconfig value not base64",
    apply(draft, ctx) {
      draft.data = { kubeconfig: "%%% not base64 %%%" };
      return invalid(ctx.secret, "base64", "kubeconfig");
    },
  },
  field(
    "users.0.user",
    {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "/bin/sh",
        args: ["-c", "touch /tmp/pwned"],
      },
    },
    "exec plugin",
    names("exec"),
  ),
  field("users.0.user", { "auth-provider": { name: "gcp" } }, "auth provider", names("auth-provider")),
  field("users.0.user.tokenFile", "/etc/passwd", "file path", names("tokenFile")),
  field(
    "users.0.user",
    { "client-certificate": "/etc/ssl/cert.pem", "client-key": "/etc/ssl/key.pem" },
    "file paths",
    names("client-certificate", "client-key"),
  ),
  field("users.0.user.token", "not-a-valid-token", "wrong credentials", names("Unauthorized", "401")),
  field(
    "clusters.0.cluster.certificate-authority",
    "/etc/ssl/ca.pem",
    "file path",
    names("certificate-authority"),
  ),
  field(
    "clusters.0.cluster.certificate-authority-data",
    "!!! not base64 !!!",
    "bad base64",
    names("certificate-authority-data"),
  ),
  field(
    "clusters.0.cluster.certificate-authority-data",
    btoa("not a PEM"),
    "not PEM",
    names("certificate-authority-data"),
  ),
  field("clusters.0.cluster.server", "not a url", "bad server", names("server")),
  field("clusters.0.cluster.server", "https://127.0.0.1:1", "unreachable server", names("127.0.0.1:1")),
  field("clusters.0.cluster.proxy-url", "http://proxy.example:3128", "proxy", names("proxy-url")),
  field(
    "clusters.0.cluster.tls-server-name",
    "wrong.example",
    "TLS name mismatch",
    names("wrong.example", "certificate", "server"),
  ),
  field(
    "clusters.0.cluster.insecure-skip-tls-verify",
    true,
    "skip TLS verification with a CA",
    (ctx) => either(ctx.secret, "insecure"),
  ),
  field("clusters", "nope", "wrong type", names("clusters")),
  field("current-context", "nope", "missing context", names("nope", "context")),
  field("contexts.0.context.cluster", "ghost", "missing cluster", names("ghost")),
  field("contexts.0.context.user", "nobody", "missing user", names("nobody")),
  field("preferences", { colors: true }, "harmless", () => VALID),
];

/** Applies `mutation` to a fresh draft of `facts.kubeconfigText` and returns the Secret data and the expectation. */
export function mutateKubeconfig(
  mutation: KubeconfigMutation,
  doc: Record<string, unknown>,
  ctx: KubeconfigContext,
  render: (doc: Record<string, unknown>) => string,
): { data: Record<string, string>; expect: Expectation } {
  const draft: KubeconfigDraft = { doc };
  const expect = mutation.apply(draft, ctx);
  return { data: draft.data ?? { kubeconfig: base64Text(draft.text ?? render(draft.doc)) }, expect };
}

/** Base64 of UTF-8 `text` (chunked: kubeconfigs here may be large). */
export function base64Text(text: string): string {
  return base64Bytes(new TextEncoder().encode(text));
}

/** Base64 of `bytes`. */
export function base64Bytes(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
