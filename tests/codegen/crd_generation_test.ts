import assert from "node:assert/strict";
import { isMetaConditions } from "../../codegen/crd.ts";
import { generate, toolkitSpecifiers } from "../../codegen/main.ts";
import type { Schema } from "../../codegen/schema.ts";

const here = new URL(".", import.meta.url).pathname;

Deno.test("codegen crd: --toolkit names Kubeocean's root or client module; generated code imports the client module", () => {
  const expected = {
    toolkit: "../../../kubeocean/toolkit/client/mod.ts",
    json: "../../../kubeocean/toolkit/apimachinery/json.ts",
  };
  assert.deepEqual(toolkitSpecifiers("../../../kubeocean/mod.ts"), expected);
  assert.deepEqual(toolkitSpecifiers("../../../kubeocean/toolkit/client/mod.ts"), expected);
  assert.deepEqual(toolkitSpecifiers("https://example.com/kubeocean/mod.ts"), {
    toolkit: "https://example.com/kubeocean/toolkit/client/mod.ts",
    json: "https://example.com/kubeocean/toolkit/apimachinery/json.ts",
  });
  assert.throws(() => toolkitSpecifiers("../kubeocean/client.ts"), /--toolkit/);
  assert.throws(() => toolkitSpecifiers("../kubeocean/othermod.ts"), /--toolkit/);
});

Deno.test("codegen crd: CRD-only generation takes ObjectMeta and Condition from the apis root", async () => {
  const files = await generate({
    crds: [{
      source: "crd_conditions_fixture.yaml",
      text: await Deno.readTextFile(`${here}fixtures/crd_conditions_fixture.yaml`),
    }],
  }, {
    ...toolkitSpecifiers("../../../kubeocean/mod.ts"),
    apisRoot: "../../../kubeocean/apis",
    generator: "test",
  });
  const content = (name: string) =>
    files.find((f) => f.path === `fixture.kubeocean.io/v1beta1/${name}`)!.content;
  assert.match(
    content("types.ts"),
    /^import type \{ Condition, ObjectMeta \} from "\.\.\/\.\.\/\.\.\/kubeocean\/apis\/meta\/v1\/types\.ts";$/m,
  );
  assert.match(content("types.ts"), /^ {2}conditions\?: Condition\[\];$/m);
  assert.match(content("types.ts"), /^ {2}conditions\?: SprocketSpecConditionsItem\[\];$/m);
  assert.match(content("resources.ts"), /\} from "\.\.\/\.\.\/\.\.\/kubeocean\/toolkit\/client\/mod\.ts";$/m);
  assert.match(content("resources.ts"), /sprockets\(\): ResourceClient<Sprocket, "scale" \| "status">/);
});

Deno.test("codegen crd: only the exact metav1.Condition shape becomes Condition[]", () => {
  const string: Schema = { type: "string" };
  const conditions = (
    properties: Record<string, Schema>,
    required = ["type", "status", "lastTransitionTime", "reason", "message"],
  ): Schema => ({ type: "array", items: { type: "object", required, properties } });
  const standard: Record<string, Schema> = {
    type: string,
    status: { type: "string", enum: ["True", "False", "Unknown"] },
    observedGeneration: { type: "integer", format: "int64" },
    lastTransitionTime: { type: "string", format: "date-time" },
    reason: string,
    message: string,
  };
  assert.ok(isMetaConditions(conditions(standard)));
  const { observedGeneration: _, ...withoutGeneration } = standard;
  assert.ok(isMetaConditions(conditions(withoutGeneration)), "observedGeneration is optional");

  assert.ok(!isMetaConditions(conditions({ ...standard, severity: string })), "an extra field");
  const { message: _message, ...withoutMessage } = standard;
  assert.ok(
    !isMetaConditions(conditions(withoutMessage, ["type", "status", "lastTransitionTime", "reason"])),
    "a missing field",
  );
  assert.ok(!isMetaConditions(conditions(standard, ["type", "status"])), "fields not required");
  assert.ok(
    !isMetaConditions(
      conditions(standard, [
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
        "observedGeneration",
      ]),
    ),
    "observedGeneration required",
  );
  assert.ok(!isMetaConditions(conditions({ ...standard, reason: { type: "integer" } })), "a field's type");
  assert.ok(!isMetaConditions({ type: "object", properties: standard }), "not an array");
});
