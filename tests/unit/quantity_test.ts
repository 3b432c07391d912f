import assert from "node:assert/strict";
import { parseQuantity, Quantity, sumQuantities } from "../../toolkit/apimachinery/quantity.ts";

// Input → canonical string, following apimachinery's ParseQuantity + CanonicalizeBytes:
// decimal mantissas lose trailing zeros and exponents drop to a multiple of 3; binary values
// use the largest dividing power of 1024 unless below 1024 or fractional; values round up to nano.
const CANONICAL: [string, string][] = [
  ["0", "0"],
  ["0Gi", "0"],
  ["-0", "0"],
  ["0.0", "0"],
  ["1", "1"],
  ["+1", "+1"], // already canonical by apimachinery's test: the input is printed back
  ["010", "010"], // leading zeros are ignored when judging, and the input is kept
  ["0010.5", "10500m"],
  [".", "0"], // Kubernetes reads a bare point, a bare sign or a bare suffix as zero
  ["+", "0"],
  ["Gi", "0"],
  ["-1", "-1"],
  ["1.5", "1500m"],
  [".5", "500m"],
  ["5.", "5."],
  ["0.1", "100m"],
  ["0.001", "1m"],
  ["0.0001", "100u"],
  ["0.000001", "1u"],
  ["0.0000001", "100n"],
  ["1n", "1n"],
  ["0.1n", "1n"], // rounded up to the smallest representable amount
  ["-0.1n", "-1n"], // rounded away from zero
  ["1.0000000001", "1000000001n"],
  ["100m", "100m"],
  ["1000m", "1"],
  ["1500m", "1500m"],
  ["2500m", "2500m"],
  ["10m", "10m"],
  ["100u", "100u"],
  ["1000u", "1m"],
  ["1k", "1k"],
  ["1000", "1k"],
  ["1500", "1500"],
  ["1023", "1023"],
  ["1024", "1024"],
  ["2048", "2048"],
  ["12000", "12k"],
  ["1M", "1M"],
  ["1000k", "1M"],
  ["1500M", "1500M"],
  ["1000M", "1G"],
  ["1G", "1G"],
  ["0.5G", "500M"],
  ["1T", "1T"],
  ["1P", "1P"],
  ["1E", "1E"],
  ["1e3", "1e3"],
  ["1E3", "1E3"],
  ["1.0E3", "1e3"],
  ["12e6", "12e6"],
  ["1.5e3", "1500"],
  ["1e-3", "1e-3"],
  ["100e-3", "100e-3"],
  ["1000e-3", "1"],
  ["1e0", "1e0"], // kept as written
  ["1.0e0", "1"],
  ["1Ki", "1Ki"],
  ["1.5Ki", "1536"],
  ["0.5Ki", "512"],
  ["1024Ki", "1Mi"],
  ["1536Ki", "1536Ki"],
  ["1.5Mi", "1536Ki"],
  ["1Mi", "1Mi"],
  ["0.5Gi", "512Mi"],
  ["1.5Gi", "1536Mi"],
  ["1Gi", "1Gi"],
  ["8Gi", "8Gi"],
  ["1024Mi", "1Gi"],
  ["1025Mi", "1025Mi"],
  ["12Ki", "12Ki"],
  ["1Ti", "1Ti"],
  ["100Pi", "100Pi"],
  ["1Ei", "1Ei"],
  ["7Ei", "7Ei"],
  ["8Ei", "9223372036854775807"], // 2^63 is capped at MaxInt64, which has no binary suffix
  ["-1.5Gi", "-1536Mi"],
  ["0.5Mi", "512Ki"],
  ["0.1Ki", "102400m"], // 102.4, below 1024 → decimal
  ["9223372036854775807", "9223372036854775807"],
  ["9223372036854775808", "9223372036854775807"], // beyond 2^63-1: capped
  ["1e100", "9223372036854775807"],
  ["123456789012", "123456789012"],
];

Deno.test("quantity: canonical form of every suffix and exponent", () => {
  for (const [input, expected] of CANONICAL) {
    assert.equal(Quantity.parse(input).toString(), expected, `parse(${JSON.stringify(input)})`);
  }
  assert.ok(CANONICAL.length >= 70, `${CANONICAL.length} cases`);
});

Deno.test("quantity: canonical output parses back to the same value and string", () => {
  for (const [input] of CANONICAL) {
    const once = Quantity.parse(input);
    const twice = Quantity.parse(once.toString());
    assert.ok(twice.equals(once), input);
    assert.equal(Quantity.parse(twice.toString()).toString(), twice.toString(), input);
  }
});

Deno.test("quantity: invalid input is rejected with a message quoting it", () => {
  const invalid = [
    "",
    "1 Gi",
    " 1",
    "1 ",
    "1gi",
    "1.2.3",
    "1.1.M",
    "1+1.0M",
    "--1",
    "1e",
    "-3.01e-",
    "1K",
    "abc",
    "1Gi1",
  ];
  for (const bad of [...invalid, "1.5.5", "1e3.5", "0.1mi", "0.1am", ".5i", "1i"]) {
    assert.throws(
      () => Quantity.parse(bad),
      (e: Error) => e.message.includes(`"${bad}"`),
      `should reject ${JSON.stringify(bad)}`,
    );
  }
});

Deno.test("quantity: sums across suffixes keep the receiver's format", () => {
  const sum = (a: string, b: string) => Quantity.parse(a).add(Quantity.parse(b)).toString();
  assert.equal(sum("1Gi", "512Mi"), "1536Mi");
  assert.equal(sum("1", "500m"), "1500m");
  assert.equal(sum("100m", "900m"), "1");
  assert.equal(sum("1k", "1Ki"), "2024");
  assert.equal(sum("1Ki", "1k"), "2024"); // 2024 is not a multiple of 1024: decimal form
  assert.equal(sum("1Mi", "1Mi"), "2Mi");
  assert.equal(sum("0", "1Gi"), "1Gi"); // a zero receiver takes the other's format
  assert.equal(sum("1e3", "1"), "1001");
  assert.equal(sum("1G", "1"), "1000000001");
  assert.equal(Quantity.parse("1").sub(Quantity.parse("1500m")).toString(), "-500m");
  assert.equal(Quantity.parse("1Gi").sub(Quantity.parse("1Gi")).toString(), "0");
  assert.equal(Quantity.parse("2Gi").sub(Quantity.parse("512Mi")).toString(), "1536Mi");
  assert.equal(sumQuantities(["100m", "200m", "300m", "400m"].map(parseQuantity)).toString(), "1");
  assert.equal(sumQuantities([]).toString(), "0");
});

Deno.test("quantity: comparison is by value across formats", () => {
  assert.equal(Quantity.parse("1Gi").compare(Quantity.parse("1073741824")), 0);
  assert.equal(Quantity.parse("1000m").compare(Quantity.parse("1")), 0);
  assert.equal(Quantity.parse("1k").compare(Quantity.parse("1Ki")), -1);
  assert.equal(Quantity.parse("1e3").compare(Quantity.parse("999")), 1);
  assert.equal(Quantity.parse("-1").compare(Quantity.parse("0")), -1);
  assert.ok(Quantity.parse("1.5Gi").equals(Quantity.parse("1536Mi")));
  assert.equal(Quantity.min(Quantity.parse("2"), Quantity.parse("1500m")).toString(), "1500m");
  assert.equal(Quantity.max(Quantity.parse("2"), Quantity.parse("1500m")).toString(), "2");
  assert.equal(Quantity.parse("0Mi").isZero(), true);
  assert.equal(Quantity.parse("-3").sign, -1);
});

Deno.test("quantity: percentages truncate toward zero to milli-units or whole units", () => {
  const pct = (q: string, p: number, precision?: "milli" | "unit") =>
    Quantity.parse(q).mulPercent(p, precision).toString();
  assert.equal(pct("10", 50), "5");
  assert.equal(pct("3", 33), "990m");
  assert.equal(pct("100m", 33), "33m");
  assert.equal(pct("1", 1), "10m");
  assert.equal(pct("7", 0), "0");
  assert.equal(pct("7", 100), "7");
  assert.equal(pct("1Gi", 50, "unit"), "512Mi");
  assert.equal(pct("1Gi", 33, "unit"), "354334801"); // 354334801.92 bytes, truncated
  assert.equal(pct("110", 50, "unit"), "55");
  assert.equal(pct("11", 50, "unit"), "5"); // pods never become fractional
  assert.equal(pct("1", 99, "unit"), "0");
  assert.equal(pct("15500m", 10), "1550m");
  assert.throws(() => Quantity.parse("1").mulPercent(1.5), /non-negative integer/);
  assert.throws(() => Quantity.parse("1").mulPercent(-1), /non-negative integer/);
});

Deno.test("quantity: milli-values and values round up like Kubernetes", () => {
  assert.equal(Quantity.parse("1").milliValue(), 1000n);
  assert.equal(Quantity.parse("1.5").milliValue(), 1500n);
  assert.equal(Quantity.parse("1n").milliValue(), 1n);
  assert.equal(Quantity.parse("-1n").milliValue(), -1n);
  assert.equal(Quantity.parse("1Ki").milliValue(), 1024000n);
  assert.equal(Quantity.parse("100m").value(), 1n);
  assert.equal(Quantity.parse("1500m").value(), 2n);
  assert.equal(Quantity.parse("1Gi").value(), 1073741824n);
  assert.equal(Quantity.parse("-1500m").value(), -2n);
  assert.equal(Quantity.fromMilli(1500).toString(), "1500m");
  assert.equal(Quantity.fromNumber(2048, "BinarySI").toString(), "2Ki");
  assert.throws(() => Quantity.fromNumber(1.5), /integer/);
  assert.equal(Quantity.parse("250m").toNumber(), 0.25);
  assert.equal(JSON.stringify({ cpu: Quantity.parse("0.5") }), '{"cpu":"500m"}');
});
