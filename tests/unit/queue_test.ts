import assert from "node:assert/strict";
import {
  BucketRateLimiter,
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
} from "../../toolkit/runtime/queue.ts";

Deno.test("queue: duplicate adds coalesce and a key in flight is re-queued only after done()", async () => {
  const queue = new WorkQueue<string>();
  queue.add("a");
  queue.add("a");
  queue.add("b");
  assert.equal(queue.length, 2);
  const first = await queue.get();
  assert.equal(first, "a");
  queue.add("a"); // changed while in flight
  assert.equal(queue.length, 1, "a is not handed out twice at once");
  assert.equal(await queue.get(), "b");
  queue.done("b");
  queue.done("a");
  assert.equal(queue.length, 1, "a comes back after done");
  assert.equal(await queue.get(), "a");
  queue.done("a");
  assert.equal(queue.length, 0);
});

Deno.test("queue: addAfter keeps the earliest delay and shutDown drains in-flight work", async () => {
  const queue = new WorkQueue<string>();
  queue.addAfter("k", 200);
  queue.addAfter("k", 20);
  const started = Date.now();
  assert.equal(await queue.get(), "k");
  assert.ok(Date.now() - started < 150);
  let drained = false;
  const shutdown = queue.shutDown().then(() => drained = true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(drained, false, "waits for the key in flight");
  queue.done("k");
  await shutdown;
  assert.equal(await queue.get(), undefined);
});

Deno.test("queue: per-key exponential backoff from 5 ms to 1000 s, combined with a token bucket", () => {
  const item = new ItemExponentialRateLimiter<string>(5, 1_000_000);
  const delays = Array.from({ length: 20 }, () => item.when("x"));
  assert.deepEqual(delays.slice(0, 5), [5, 10, 20, 40, 80]);
  assert.equal(delays[19], 1_000_000);
  assert.equal(item.retries("x"), 20);
  item.forget("x");
  assert.equal(item.when("x"), 5);

  let now = 0;
  const bucket = new BucketRateLimiter<string>(10, 2, () => now);
  assert.deepEqual([bucket.when("a"), bucket.when("b"), bucket.when("c")], [0, 0, 100]);
  now = 1000;
  assert.equal(bucket.when("d"), 0);

  const max = new MaxOfRateLimiter<string>(
    new ItemExponentialRateLimiter(5, 1000),
    new BucketRateLimiter(1, 1, () => 0),
  );
  assert.equal(max.when("k"), 5);
  assert.equal(max.when("k"), 1000, "bucket dominates once empty");
});
