/**
 * Formats generated files with `deno fmt` (the same settings as the repository: line width 110),
 * so generated code passes `deno fmt --check` and the output is deterministic.
 *
 * @module
 */

import type { GeneratedFile } from "./emit_module.ts";

/** Returns `files` formatted by `deno fmt`. */
export async function formatFiles(files: GeneratedFile[]): Promise<GeneratedFile[]> {
  const dir = await Deno.makeTempDir({ prefix: "kubeocean-codegen-" });
  try {
    for (const file of files) {
      const path = `${dir}/${file.path}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(path, file.content);
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--no-config", "--line-width", "110", "--quiet", dir],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!output.success) {
      throw new Error(`deno fmt failed on generated code:\n${new TextDecoder().decode(output.stderr)}`);
    }
    return await Promise.all(
      files.map(async (f) => ({ path: f.path, content: await Deno.readTextFile(`${dir}/${f.path}`) })),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
