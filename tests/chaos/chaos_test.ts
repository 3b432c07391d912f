/**
 * `deno task chaos --quick` as part of `deno test`: runs the suite as its own process (it owns
 * its clusters and Kubeocean processes) and checks the summary line. Slow by nature — about three
 * minutes on two cores (the suite's own budget is six); the test's name says so and it prints the
 * time it took.
 */

import assert from "node:assert/strict";

const SUMMARY = /^chaos: (\d+) scenarios, (\d+) passed, lost (\d+), duplicates (\d+), orphans (\d+)$/;

Deno.test({
  name: "chaos --quick (slow: ~3 min) — every quick scenario passes; nothing lost, duplicated or orphaned",
  // The suite is a child process; nothing of it lives in this one.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const started = Date.now();
    const verbose = Boolean(Deno.env.get("KUBEOCEAN_TEST_VERBOSE"));
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", new URL("./main.ts", import.meta.url).pathname, "--quick"],
      stdout: "piped",
      stderr: verbose ? "inherit" : "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    console.log(`${stdout.trimEnd()}\nchaos --quick took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const last = stdout.trimEnd().split("\n").at(-1) ?? "";
    const context = `${stdout}\n--- last lines of the suite's log ---\n${
      stderr.trimEnd().split("\n").slice(-40).join("\n")
    }`;
    const match = SUMMARY.exec(last);
    assert.ok(match, `no summary line:\n${context}`);
    const [, scenarios, passed, lost, duplicates, orphans] = match.map(Number);
    assert.ok(scenarios > 0, context);
    assert.equal(passed, scenarios, `scenarios failed:\n${context}`);
    assert.deepEqual({ lost, duplicates, orphans }, { lost: 0, duplicates: 0, orphans: 0 }, context);
    assert.equal(output.code, 0, context);
  },
});
