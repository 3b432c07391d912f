/**
 * Label and field selectors as the API server parses them, for the in-memory API server of unit
 * tests ({@linkcode MemoryApiServer}).
 *
 * @module
 */

import type { KubeObject } from "../client/resource.ts";

/** A selector that cannot be parsed; the server answers 400 BadRequest. */
export class SelectorError extends Error {
  override readonly name = "SelectorError";
}

/** A compiled selector: whether an object matches. */
export type Matcher = (object: KubeObject) => boolean;

type LabelRequirement =
  | { op: "=" | "!=" | ">" | "<"; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: string[] }
  | { op: "exists" | "!"; key: string };

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;

/** Splits on commas outside parentheses. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function checkKey(key: string, selector: string): string {
  if (!KEY.test(key)) {
    throw new SelectorError(`unable to parse requirement: invalid label key "${key}" in "${selector}"`);
  }
  return key;
}

/**
 * Parses a label selector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists),
 * `!k` (does not exist), and `k>n` / `k<n` (integers), comma-separated (all must hold).
 */
export function parseLabelSelector(selector: string | undefined): Matcher {
  if (!selector?.trim()) return () => true;
  const requirements: LabelRequirement[] = splitTopLevel(selector).map((part): LabelRequirement => {
    if (part.startsWith("!")) return { op: "!", key: checkKey(part.slice(1).trim(), selector) };
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (set) {
      const values = set[3].split(",").map((v) => v.trim());
      return { op: set[2] as "in" | "notin", key: checkKey(set[1], selector), values };
    }
    const equality = /^([^!=<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$/.exec(part);
    if (equality) {
      const op = equality[2] === "==" ? "=" : equality[2] as "=" | "!=" | ">" | "<";
      if ((op === ">" || op === "<") && !/^-?\d+$/.test(equality[3])) {
        throw new SelectorError(`unable to parse requirement: "${part}": ${op} needs an integer`);
      }
      return { op, key: checkKey(equality[1], selector), value: equality[3] };
    }
    if (/\s/.test(part)) throw new SelectorError(`unable to parse requirement: "${part}" in "${selector}"`);
    return { op: "exists", key: checkKey(part, selector) };
  });
  return (object) => {
    const labels = object.metadata?.labels ?? {};
    return requirements.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      const value = labels[r.key];
      switch (r.op) {
        case "=":
          return has && value === r.value;
        case "!=":
          return !has || value !== r.value;
        case ">":
          return has && /^-?\d+$/.test(value) && Number(value) > Number(r.value);
        case "<":
          return has && /^-?\d+$/.test(value) && Number(value) < Number(r.value);
        case "in":
          return has && r.values.includes(value);
        case "notin":
          return !has || !r.values.includes(value);
        case "exists":
          return has;
        case "!":
          return !has;
      }
    });
  };
}

/** The value at a dotted path (`spec.nodeName`) as a field selector compares it: a string, `""` when absent. */
export function fieldValue(object: unknown, path: string): string {
  let current: unknown = object;
  for (const part of path.split(".")) {
    if (typeof current !== "object" || current === null) return "";
    current = (current as Record<string, unknown>)[part];
  }
  if (current === undefined || current === null) return "";
  return typeof current === "object" ? JSON.stringify(current) : String(current);
}

/** Splits on commas not escaped with a backslash, and unescapes `\,`, `\=` and `\\`. */
function splitEscaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length) {
      current += c + text[++i];
    } else if (c === separator) {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeField(text: string): string {
  return text.replace(/\\(.)/g, "$1");
}

/**
 * Parses a field selector: `path=value`, `path==value`, `path!=value`, comma-separated. Any dotted
 * path is accepted (`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`, …),
 * where the real API server accepts only the fields each resource declares.
 */
export function parseFieldSelector(selector: string | undefined): Matcher {
  if (!selector?.trim()) return () => true;
  const requirements = splitEscaped(selector, ",").map((p) => p.trim()).filter(Boolean).map((part) => {
    const match = /^((?:[^!=\\]|\\.)+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!match) throw new SelectorError(`invalid field selector requirement "${part}" in "${selector}"`);
    return { path: unescapeField(match[1]), negate: match[2] === "!=", value: unescapeField(match[3]) };
  });
  return (object) => requirements.every((r) => (fieldValue(object, r.path) === r.value) !== r.negate);
}
