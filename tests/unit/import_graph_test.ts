/**
 * The project's import graph keeps its shape: generated APIs and production code never load test
 * infrastructure, no module imports itself through others, and the syncer's halves meet only in
 * the syncer context and the provider seam. Read from `deno info --json`, so it is the graph
 * Deno actually loads.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

/** Local modules reachable from `entry`, each with the local modules it imports. */
async function graphOf(entry: string): Promise<Map<string, string[]>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--frozen", entry],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: ModuleInfo[] };
  const local = (specifier: string | undefined) =>
    specifier?.startsWith(ROOT.href) ? specifier.slice(ROOT.href.length) : undefined;
  const graph = new Map<string, string[]>();
  for (const module of info.modules) {
    const path = local(module.specifier);
    if (!path) continue;
    const imports = (module.dependencies ?? []).flatMap((
      d,
    ) => [local(d.code?.specifier), local(d.type?.specifier)])
      .filter((p): p is string => p !== undefined);
    graph.set(path, [...new Set(imports)]);
  }
  return graph;
}

/** Every local TypeScript file under `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await filesUnder(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** One graph of everything the project's entry points load. */
async function projectGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const entry of ["mod.ts", "testing.ts", "controllers/main.ts", "controllers/demo/main.ts"]) {
    for (const [path, imports] of await graphOf(entry)) graph.set(path, imports);
  }
  for (const file of [...await filesUnder("apis"), ...await filesUnder("controllers")]) {
    if (!graph.has(file)) { for (const [path, imports] of await graphOf(file)) graph.set(path, imports); }
  }
  return graph;
}

/** The cycles of a graph (strongly connected components with more than one module, or a self-import). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    indexOf.set(node, index);
    low.set(node, index++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indexOf.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indexOf.get(next)!));
      }
    }
    if (low.get(node) === indexOf.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || graph.get(node)?.includes(node)) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!indexOf.has(node)) visit(node);
  return found;
}

const graph = await projectGraph();
const importsOf = (prefix: string) =>
  [...graph].filter(([path]) => path.startsWith(prefix)).flatMap(([path, imports]) =>
    imports.map((to) => ({ from: path, to }))
  );

Deno.test("import graph: generated APIs import the client module only, never the root module or test code", () => {
  const bad = importsOf("apis/").filter(({ to }) =>
    to === "mod.ts" || to === "testing.ts" || to.startsWith("toolkit/envtest/") ||
    to.startsWith("toolkit/testing/")
  );
  assert.deepEqual(bad, []);
  assert.ok(importsOf("apis/").some(({ to }) => to === "toolkit/client/mod.ts"));
});

Deno.test("import graph: the entrypoint and the root module load no test infrastructure", async () => {
  for (const entry of ["controllers/main.ts", "mod.ts"]) {
    const loaded = [...(await graphOf(entry)).keys()];
    assert.deepEqual(
      loaded.filter((p) =>
        p.startsWith("toolkit/envtest/") || p.startsWith("toolkit/testing/") || p === "testing.ts"
      ),
      [],
      entry,
    );
  }
});

Deno.test("import graph: no import cycles", () => {
  assert.deepEqual(cycles(graph), []);
});

Deno.test("import graph: the syncer never imports the manager; its halves meet only in the context and the seam", () => {
  assert.deepEqual(
    importsOf("controllers/syncer/").filter(({ to }) => to.startsWith("controllers/manager/")),
    [],
  );
  const crossing = (from: string, to: string) => importsOf(from).filter((i) => i.to.startsWith(to));
  assert.deepEqual(crossing("controllers/syncer/topdown/", "controllers/syncer/bottomup/"), []);
  assert.deepEqual(crossing("controllers/syncer/bottomup/", "controllers/syncer/topdown/"), []);
  assert.deepEqual(crossing("controllers/syncer/topdown/", "controllers/syncer/worker/"), []);
  assert.deepEqual(crossing("controllers/syncer/worker/", "controllers/syncer/topdown/"), []);
  assert.deepEqual(crossing("controllers/syncer/worker/", "controllers/syncer/bottomup/"), []);
});
