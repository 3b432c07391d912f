/**
 * `deno task codegen`: typed API modules from OpenAPI v3 and CRD schemas.
 *
 * ```
 * deno task codegen                 regenerate apis/ (built-in groups from codegen/openapi/, CRDs from deploy/crds/)
 * deno task codegen --check         fail, listing the files that differ, when apis/ is not what codegen produces
 * deno task codegen crd FILE|DIR… --out DIR [--toolkit SPECIFIER] [--apis SPECIFIER]
 *                                   types and typed clients for your own CRDs, into a directory of your choice;
 *                                   --toolkit is where Kubeocean is (its root mod.ts or its
 *                                   toolkit/client/mod.ts; default: this checkout, relative to DIR), --apis
 *                                   its apis/ directory
 * deno task codegen refresh [--kubeconfig PATH] [--context NAME]
 *                                   re-download the OpenAPI v3 documents (default: from a fresh local cluster)
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { addBuiltinDocuments } from "./builtin.ts";
import { addCrds, parseCrds } from "./crd.ts";
import { emitModule, type EmitOptions, type GeneratedFile } from "./emit_module.ts";
import { formatFiles } from "./format.ts";
import { emptyModel } from "./model.ts";
import type { OpenApiDocument } from "./schema.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The Kubernetes version whose OpenAPI documents are pinned. */
export const OPENAPI_VERSION = "v1.36.3";
const OPENAPI_DIR = `codegen/openapi/${OPENAPI_VERSION}`;
const GENERATOR = "kubeocean codegen";

const USAGE = `usage:
  deno task codegen [--check]
  deno task codegen crd FILE|DIR... --out DIR [--toolkit SPECIFIER] [--apis SPECIFIER]
  deno task codegen refresh [--kubeconfig PATH] [--context NAME]`;

/** Reads every `*.json` OpenAPI document of a directory. */
export async function readOpenApiDir(dir: string): Promise<Map<string, OpenApiDocument>> {
  const documents = new Map<string, OpenApiDocument>();
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".json")).map((e) =>
    e.name
  ).sort();
  for (const name of names) {
    documents.set(
      `${dir.replace(`${ROOT}/`, "")}/${name}`,
      JSON.parse(await Deno.readTextFile(`${dir}/${name}`)),
    );
  }
  return documents;
}

/** Every `*.yaml`/`*.yml`/`*.json` file among `paths` (directories are searched, not recursively). */
async function manifestFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      for (const entry of [...Deno.readDirSync(path)].sort((a, b) => a.name.localeCompare(b.name))) {
        if (entry.isFile && /\.(ya?ml|json)$/.test(entry.name)) {
          files.push(`${path.replace(/\/$/, "")}/${entry.name}`);
        }
      }
    } else {
      files.push(path);
    }
  }
  return files;
}

/** Inputs of {@linkcode generate}: OpenAPI documents (name → document) and CRD manifests. */
export interface GenerateInput {
  openapi?: Map<string, OpenApiDocument>;
  crds?: { source: string; text: string }[];
}

/** Generates formatted modules for `input` with `options`' import specifiers. */
export async function generate(input: GenerateInput, options: EmitOptions): Promise<GeneratedFile[]> {
  const model = emptyModel();
  if (input.openapi) addBuiltinDocuments(model, input.openapi);
  for (const crd of input.crds ?? []) addCrds(model, parseCrds(crd.text, crd.source), crd.source);
  const files = [...model.modules.values()].sort((a, b) => a.dir.localeCompare(b.dir))
    .flatMap((module) => emitModule(model, module, options));
  return await formatFiles(files);
}

/** Generates the project's `apis/` tree (built-in groups plus `deploy/crds/`). */
export async function generateProjectApis(): Promise<GeneratedFile[]> {
  const crds = [];
  for (const file of await manifestFiles([`${ROOT}/deploy/crds`]).catch(() => [])) {
    crds.push({ source: file.replace(`${ROOT}/`, ""), text: await Deno.readTextFile(file) });
  }
  return await generate({ openapi: await readOpenApiDir(`${ROOT}/${OPENAPI_DIR}`), crds }, {
    toolkit: "../../../toolkit/client/mod.ts",
    json: "../../../toolkit/apimachinery/json.ts",
    apisRoot: "../..",
    generator: GENERATOR,
  });
}

/** Generates modules for the CRDs in `paths` (files or directories). */
export async function generateCrdApis(paths: string[], options: EmitOptions): Promise<GeneratedFile[]> {
  const files = await manifestFiles(paths);
  if (files.length === 0) throw new Error(`no CRD manifests found in ${paths.join(", ")}`);
  const crds = await Promise.all(
    files.map(async (file) => ({ source: file, text: await Deno.readTextFile(file) })),
  );
  const generated = await generate({ crds }, options);
  if (generated.length === 0) throw new Error(`no CustomResourceDefinition found in ${files.join(", ")}`);
  return generated;
}

/** Compares `files` with `dir`: files that differ, are missing, or are extra. */
export async function diffTree(dir: string, files: GeneratedFile[]): Promise<string[]> {
  const problems: string[] = [];
  const expected = new Set(files.map((f) => f.path));
  for (const file of files) {
    const current = await Deno.readTextFile(`${dir}/${file.path}`).catch(() => undefined);
    if (current === undefined) problems.push(`missing: ${file.path}`);
    else if (current !== file.content) problems.push(`differs: ${file.path}`);
  }
  for (const existing of await listTree(dir)) {
    if (!expected.has(existing)) problems.push(`not generated: ${existing}`);
  }
  return problems.sort();
}

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
      const path = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory) out.push(...await listTree(dir, path));
      else out.push(path);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

/** Replaces the contents of `dir` with `files`. */
export async function writeTree(dir: string, files: GeneratedFile[]): Promise<void> {
  const expected = new Set(files.map((f) => f.path));
  for (const existing of await listTree(dir)) {
    if (!expected.has(existing)) await Deno.remove(`${dir}/${existing}`);
  }
  for (const file of files) {
    const path = `${dir}/${file.path}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const current = await Deno.readTextFile(path).catch(() => undefined);
    if (current !== file.content) await Deno.writeTextFile(path, file.content);
  }
}

async function refresh(kubeconfig?: string, context?: string): Promise<void> {
  const { refreshOpenApi } = await import("./refresh.ts");
  await refreshOpenApi(`${ROOT}/${OPENAPI_DIR}`, { kubeconfig, context });
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      check: { type: "boolean", default: false },
      out: { type: "string" },
      toolkit: { type: "string" },
      apis: { type: "string" },
      kubeconfig: { type: "string" },
      context: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals[0];
  if (command === "refresh") {
    await refresh(values.kubeconfig, values.context);
    return 0;
  }
  if (command === "crd") {
    const inputs = positionals.slice(1);
    if (inputs.length === 0 || !values.out) {
      console.error(`codegen crd needs CRD files or directories and --out DIR\n${USAGE}`);
      return 2;
    }
    const out = values.out.replace(/\/$/, "");
    const started = performance.now();
    const files = await generateCrdApis(inputs, {
      ...toolkitSpecifiers(values.toolkit ?? relativeSpecifier(`${out}/g/v`, `${ROOT}/mod.ts`)),
      apisRoot: values.apis ?? relativeSpecifier(`${out}/g/v`, `${ROOT}/apis`),
      generator: GENERATOR,
    });
    if (values.check) return report(await diffTree(out, files));
    await writeTree(out, files);
    console.error(
      `codegen: wrote ${files.length} files to ${out} in ${Math.round(performance.now() - started)} ms`,
    );
    return 0;
  }
  if (command) {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  const started = performance.now();
  const files = await generateProjectApis();
  if (values.check) return report(await diffTree(`${ROOT}/apis`, files));
  await writeTree(`${ROOT}/apis`, files);
  console.error(
    `codegen: ${files.length} files in apis/ generated in ${Math.round(performance.now() - started)} ms`,
  );
  return 0;
}

function report(problems: string[]): number {
  if (problems.length === 0) {
    console.error("codegen --check: generated code is up to date");
    return 0;
  }
  console.error(
    `codegen --check: ${problems.length} file(s) are not what codegen produces (run \`deno task codegen\`):`,
  );
  for (const p of problems) console.error(`  ${p}`);
  return 1;
}

/**
 * The client-module and JSON-types specifiers generated code imports, from a specifier of
 * Kubeocean's root `mod.ts` (as `--toolkit` always took) or of its `toolkit/client/mod.ts`:
 * `../kubeocean/mod.ts` → `../kubeocean/toolkit/client/mod.ts` and
 * `../kubeocean/toolkit/apimachinery/json.ts`.
 */
export function toolkitSpecifiers(specifier: string): Pick<EmitOptions, "toolkit" | "json"> {
  const base = specifier.endsWith("toolkit/client/mod.ts")
    ? specifier.slice(0, -"toolkit/client/mod.ts".length)
    : specifier.endsWith("mod.ts")
    ? specifier.slice(0, -"mod.ts".length)
    : undefined;
  if (base === undefined || !base.endsWith("/")) {
    throw new Error(
      `--toolkit ${specifier}: expected a specifier of Kubeocean's mod.ts or toolkit/client/mod.ts`,
    );
  }
  return { toolkit: `${base}toolkit/client/mod.ts`, json: `${base}toolkit/apimachinery/json.ts` };
}

/** A relative import specifier from a module in `fromDir` to the absolute file `to`. */
export function relativeSpecifier(fromDir: string, to: string): string {
  const from = absolute(fromDir).split("/").filter(Boolean);
  const target = absolute(to).split("/").filter(Boolean);
  let i = 0;
  while (i < from.length && i < target.length && from[i] === target[i]) i++;
  const up = from.length - i;
  const rest = target.slice(i).join("/");
  return up === 0 ? `./${rest}` : `${"../".repeat(up)}${rest}`;
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`codegen: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
