/**
 * Kubernetes resource quantities (`resource.Quantity`) with exact decimal arithmetic.
 *
 * A quantity is `unscaled × 10^scale` with a BigInt `unscaled`, so `1.5Gi`, `100m` and `1e3` are
 * exact and sums never drift. Parsing and canonical formatting follow
 * `k8s.io/apimachinery/pkg/api/resource`:
 *
 * - forms: `[+-]digits[.digits]` followed by a binary suffix (`Ki Mi Gi Ti Pi Ei`), a decimal
 *   suffix (`n u m "" k M G T P E`) or a decimal exponent (`e3`, `E-3`);
 * - values are rounded **up** (away from zero) to nano units (`0.1n` → `1n`) and capped at
 *   ±(2⁶³−1);
 * - canonical form: for decimal formats the mantissa loses its trailing zeros and the exponent is
 *   lowered to a multiple of 3 (`1000M` → `1G`, `0.1` → `100m`, `1500M` stays `1500M`); binary
 *   quantities print with the largest power of 1024 that divides them (`1.5Gi` → `1536Mi`) but
 *   fall back to the decimal form below 1024 or when they are not whole (`0.5Ki` → `512`).
 *
 * @module
 */

/** How a quantity prints: binary suffixes, decimal suffixes or decimal exponents. */
export type QuantityFormat = "BinarySI" | "DecimalSI" | "DecimalExponent";

const DECIMAL_SUFFIXES: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIXES: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_BY_EXPONENT = new Map(Object.entries(DECIMAL_SUFFIXES).map(([s, e]) => [e, s]));
const BINARY_BY_EXPONENT = new Map<number, string>([
  [0, ""],
  ...Object.entries(BINARY_SUFFIXES).map(([s, e]) => [e, s] as [number, string]),
]);
const MAX = (1n << 63n) - 1n;
const NANO_SCALE = -9;
const NUMBER = /^([+-]?)(\d*)(?:\.(\d*))?(.*)$/;

function pow10(n: number): bigint {
  return 10n ** BigInt(n);
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

/** Divides rounding away from zero. */
function divRoundUp(value: bigint, divisor: bigint): bigint {
  const q = value / divisor;
  return value % divisor === 0n ? q : q + (value < 0n ? -1n : 1n);
}

/** An immutable, exact Kubernetes quantity. */
export class Quantity {
  private constructor(
    /** The value is `unscaled × 10^scale`. */
    readonly unscaled: bigint,
    readonly scale: number,
    readonly format: QuantityFormat,
    /** The parsed input, kept when it is already canonical (Kubernetes prints it back as is). */
    readonly text?: string,
  ) {}

  /**
   * Parses a quantity string; throws an error quoting the input when it is not one. Like
   * Kubernetes, leading zeros are ignored, a bare sign or `.` is zero, and an input that is
   * already in canonical form (by apimachinery's own test) is printed back unchanged, so
   * `toString()` equals what the API server stores (`1E3` stays `1E3`, `+1` stays `+1`).
   */
  static parse(text: string): Quantity {
    const fail = (why: string) => new Error(`invalid quantity "${text}": ${why}`);
    if (typeof text !== "string" || text.length === 0) throw fail("empty");
    const match = NUMBER.exec(text);
    if (!match) throw fail("not a number");
    const [, sign, rawWhole, fraction = "", suffix] = match;
    if (!/^[eEinumkKMGTP]*([+-]?\d+)?$/.test(suffix)) throw fail(`bad suffix "${suffix}"`);
    const whole = rawWhole.replace(/^0+/, "") || "0";
    let format: QuantityFormat;
    let exponent: number;
    let binary = false;
    if (suffix in DECIMAL_SUFFIXES) {
      format = "DecimalSI";
      exponent = DECIMAL_SUFFIXES[suffix];
    } else if (suffix in BINARY_SUFFIXES) {
      format = "BinarySI";
      exponent = BINARY_SUFFIXES[suffix];
      binary = true;
    } else if (/^[eE][+-]?\d+$/.test(suffix)) {
      format = "DecimalExponent";
      exponent = Number(suffix.slice(1));
      if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 1000) throw fail("exponent out of range");
    } else {
      throw fail(`unknown suffix "${suffix}"`);
    }
    let unscaled = BigInt(whole + fraction);
    let scale = -fraction.length;
    if (binary) unscaled *= 1n << BigInt(exponent);
    else scale += exponent;
    if (sign === "-") unscaled = -unscaled;
    const q = Quantity.#normalise(unscaled, scale, format);
    return keepsInput(text, whole, fraction, exponent, binary)
      ? new Quantity(q.unscaled, q.scale, q.format, text)
      : q;
  }

  /** Rounds up to nano units, caps at ±(2⁶³−1), and demotes sub-1 binary values to DecimalSI. */
  static #normalise(unscaled: bigint, scale: number, format: QuantityFormat): Quantity {
    if (unscaled === 0n) return new Quantity(0n, 0, format);
    if (scale < NANO_SCALE) {
      unscaled = divRoundUp(unscaled, pow10(NANO_SCALE - scale));
      scale = NANO_SCALE;
    }
    // Cap |value| at MaxInt64 (compare unscaled×10^scale with MAX exactly).
    const magnitude = abs(unscaled);
    const over = scale >= 0 ? magnitude * pow10(scale) > MAX : magnitude > MAX * pow10(-scale);
    if (over) {
      unscaled = unscaled < 0n ? -MAX : MAX;
      scale = 0;
    }
    const q = new Quantity(unscaled, scale, format);
    if (format === "BinarySI" && q.#absLessThan(1n)) return new Quantity(unscaled, scale, "DecimalSI");
    return q;
  }

  /** A quantity of `milli` thousandths (e.g. `fromMilli(1500)` is `1500m`). */
  static fromMilli(milli: bigint | number, format: QuantityFormat = "DecimalSI"): Quantity {
    return Quantity.#normalise(BigInt(milli), -3, format);
  }

  /** A quantity from an integer (a non-integer number throws). */
  static fromNumber(value: bigint | number, format: QuantityFormat = "DecimalSI"): Quantity {
    if (typeof value === "number" && !Number.isInteger(value)) {
      throw new Error(
        `Quantity.fromNumber needs an integer, got ${value}; use parse("${value}") for decimals`,
      );
    }
    return Quantity.#normalise(BigInt(value), 0, format);
  }

  /** Zero, in `format`. */
  static zero(format: QuantityFormat = "DecimalSI"): Quantity {
    return new Quantity(0n, 0, format);
  }

  /** The smaller of two quantities (the first when equal). */
  static min(a: Quantity, b: Quantity): Quantity {
    return b.compare(a) < 0 ? b : a;
  }

  /** The larger of two quantities (the first when equal). */
  static max(a: Quantity, b: Quantity): Quantity {
    return b.compare(a) > 0 ? b : a;
  }

  /** Both values over a common scale. */
  static #align(a: Quantity, b: Quantity): [bigint, bigint, number] {
    const scale = Math.min(a.scale, b.scale);
    return [a.unscaled * pow10(a.scale - scale), b.unscaled * pow10(b.scale - scale), scale];
  }

  #absLessThan(limit: bigint): boolean {
    const magnitude = abs(this.unscaled);
    return this.scale >= 0 ? magnitude * pow10(this.scale) < limit : magnitude < limit * pow10(-this.scale);
  }

  /** -1, 0 or 1 as this is less than, equal to or greater than `other` (formats are ignored). */
  compare(other: Quantity): -1 | 0 | 1 {
    const [a, b] = Quantity.#align(this, other);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Whether both have the same value (whatever their formats). */
  equals(other: Quantity): boolean {
    return this.compare(other) === 0;
  }

  /** Whether the value is zero. */
  isZero(): boolean {
    return this.unscaled === 0n;
  }

  /** -1, 0 or 1. */
  get sign(): -1 | 0 | 1 {
    return this.unscaled < 0n ? -1 : this.unscaled > 0n ? 1 : 0;
  }

  /** This plus `other`, exactly; keeps this format (`other`'s when this is zero), like Kubernetes. */
  add(other: Quantity): Quantity {
    const [a, b, scale] = Quantity.#align(this, other);
    return Quantity.#normalise(a + b, scale, this.isZero() ? other.format : this.format);
  }

  /** This minus `other`, exactly; keeps this format (`other`'s when this is zero). */
  sub(other: Quantity): Quantity {
    const [a, b, scale] = Quantity.#align(this, other);
    return Quantity.#normalise(a - b, scale, this.isZero() ? other.format : this.format);
  }

  /** The negated value. */
  neg(): Quantity {
    return new Quantity(-this.unscaled, this.scale, this.format);
  }

  /**
   * `percent`% of this value (a non-negative integer percentage), truncated toward zero to
   * `precision`: `"milli"` (thousandths, for CPU) or `"unit"` (whole units, for bytes, pods and
   * extended resources, which must not become fractional). Keeps this format.
   */
  mulPercent(percent: number, precision: "milli" | "unit" = "milli"): Quantity {
    if (!Number.isInteger(percent) || percent < 0) {
      throw new Error(`percentage must be a non-negative integer, got ${percent}`);
    }
    const step = precision === "milli" ? -3 : 0;
    // value × percent / 100, expressed in units of 10^step, truncated toward zero.
    const shift = this.scale - step - 2;
    const numerator = this.unscaled * BigInt(percent);
    const scaled = shift >= 0 ? numerator * pow10(shift) : numerator / pow10(-shift);
    return Quantity.#normalise(scaled, step, this.format);
  }

  /** The value in thousandths, rounded up (away from zero) like Kubernetes' `MilliValue()`. */
  milliValue(): bigint {
    const shift = this.scale + 3;
    return shift >= 0 ? this.unscaled * pow10(shift) : divRoundUp(this.unscaled, pow10(-shift));
  }

  /** The value rounded up (away from zero) to an integer, like Kubernetes' `Value()`. */
  value(): bigint {
    return this.scale >= 0
      ? this.unscaled * pow10(this.scale)
      : divRoundUp(this.unscaled, pow10(-this.scale));
  }

  /** An approximate floating-point value, for metrics and logs only (never for arithmetic). */
  toNumber(): number {
    return Number(this.unscaled) * 10 ** this.scale;
  }

  /** The canonical string, exactly as the API server prints it. */
  toString(): string {
    if (this.text !== undefined) return this.text;
    if (this.unscaled === 0n) return "0";
    if (this.format === "BinarySI" && !this.#absLessThan(1024n)) {
      const whole = this.#wholeValue();
      if (whole !== undefined) {
        let mantissa = whole;
        let exponent = 0;
        while (exponent < 60 && mantissa % 1024n === 0n) {
          mantissa /= 1024n;
          exponent += 10;
        }
        return `${mantissa}${BINARY_BY_EXPONENT.get(exponent)}`;
      }
    }
    // Decimal: strip factors of ten, then lower the exponent to a multiple of three.
    let mantissa = this.unscaled;
    let exponent = this.scale;
    while (mantissa % 10n === 0n) {
      mantissa /= 10n;
      exponent++;
    }
    while (exponent % 3 !== 0) {
      mantissa *= 10n;
      exponent--;
    }
    if (this.format === "DecimalExponent") return exponent === 0 ? `${mantissa}` : `${mantissa}e${exponent}`;
    return `${mantissa}${DECIMAL_BY_EXPONENT.get(exponent) ?? `e${exponent}`}`;
  }

  #wholeValue(): bigint | undefined {
    if (this.scale >= 0) return this.unscaled * pow10(this.scale);
    const divisor = pow10(-this.scale);
    return this.unscaled % divisor === 0n ? this.unscaled / divisor : undefined;
  }

  /** The canonical string (quantities serialise as strings). */
  toJSON(): string {
    return this.toString();
  }
}

/**
 * Whether apimachinery keeps the input string of a parsed quantity: it must take the int64 fast
 * path (few enough digits, no finer than nano, no overflow) and look canonical — binary: a whole
 * mantissa that is not a multiple of 8; decimal: a scale that is a multiple of 3, digits without
 * a leading zero or three trailing zeros.
 */
function keepsInput(
  text: string,
  whole: string,
  fraction: string,
  exponent: number,
  binary: boolean,
): boolean {
  if (text === "0") return true;
  const digits = whole + fraction;
  if (binary) {
    if (fraction.length > 0) return false;
    const precision = 15 - whole.length - Math.trunc((exponent * 3) / 10) - 1;
    if (precision < 0) return false;
    const value = BigInt(whole);
    if ((value << BigInt(exponent)) > MAX) return false;
    return exponent % 10 === 0 && (value & 7n) !== 0n;
  }
  if (18 - digits.length < 0) return false;
  const scale = exponent - fraction.length;
  if (scale < NANO_SCALE || BigInt(digits) > MAX) return false;
  return scale % 3 === 0 && !digits.endsWith("000") && digits[0] !== "0";
}

/** Parses a quantity (see {@linkcode Quantity.parse}). */
export function parseQuantity(text: string): Quantity {
  return Quantity.parse(text);
}

/** The sum of `quantities` (zero for an empty list), keeping the first non-zero format. */
export function sumQuantities(quantities: readonly Quantity[]): Quantity {
  return quantities.reduce((sum, q) => sum.add(q), Quantity.zero());
}
