import assert from "node:assert/strict";
import { diffTree, generate, writeTree } from "../../codegen/main.ts";

const here = new URL(".", import.meta.url).pathname;
const goldenDir = `${here}golden`;

/** Generates the fixture modules as the golden tree expects them (imports relative to tests/codegen/golden/<g>/<v>/). */
async function generateFixtures() {
  return await generate({
    openapi: new Map([[
      "tests/codegen/fixtures/openapi_fixture.json",
      JSON.parse(await Deno.readTextFile(`${here}fixtures/openapi_fixture.json`)),
    ]]),
    crds: await Promise.all(["crd_fixture.yaml", "crd_conditions_fixture.yaml"].map(async (name) => ({
      source: `tests/codegen/fixtures/${name}`,
      text: await Deno.readTextFile(`${here}fixtures/${name}`),
    }))),
  }, {
    toolkit: "../../../../../toolkit/client/mod.ts",
    json: "../../../../../toolkit/apimachinery/json.ts",
    apisRoot: "../..",
    generator: "kubeocean codegen",
  });
}

Deno.test("codegen: fixture schemas generate exactly the golden files (UPDATE_GOLDEN=1 rewrites them)", async () => {
  const files = await generateFixtures();
  if (Deno.env.get("UPDATE_GOLDEN")) await writeTree(goldenDir, files);
  assert.deepEqual(await diffTree(goldenDir, files), []);
});

Deno.test("codegen: output is deterministic", async () => {
  const [a, b] = [await generateFixtures(), await generateFixtures()];
  assert.deepEqual(a, b);
});
