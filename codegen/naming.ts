/**
 * Names in generated code: module directories, type names, property keys and JSDoc text.
 *
 * @module
 */

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Names that must not be used as generated type names (they shadow globals or are keywords). */
const RESERVED_TYPE_NAMES = new Set([
  "Object",
  "String",
  "Number",
  "Boolean",
  "Array",
  "Date",
  "Error",
  "Function",
  "Map",
  "Set",
  "Symbol",
  "Promise",
  "Record",
  "Partial",
  "Required",
  "Readonly",
  "JsonValue",
  "JsonObject",
  "break",
  "case",
  "catch",
  "class",
  "const",
  "continue",
  "debugger",
  "default",
  "delete",
  "do",
  "else",
  "enum",
  "export",
  "extends",
  "false",
  "finally",
  "for",
  "function",
  "if",
  "import",
  "in",
  "instanceof",
  "new",
  "null",
  "return",
  "super",
  "switch",
  "this",
  "throw",
  "true",
  "try",
  "typeof",
  "var",
  "void",
  "while",
  "with",
]);

/** A property key as written in a TS interface: bare when it is an identifier, quoted otherwise. */
export function propertyKey(name: string): string {
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

/** A safe type name: PascalCase-ish, never a reserved word or global. */
export function typeName(name: string): string {
  let cleaned = name.replace(/[^A-Za-z0-9_$]/g, "_");
  if (!/^[A-Za-z_$]/.test(cleaned)) cleaned = `T${cleaned}`;
  if (RESERVED_TYPE_NAMES.has(cleaned)) cleaned = `${cleaned}_`;
  return cleaned;
}

/** `someProperty-name` → `SomePropertyName`. */
export function pascalCase(text: string): string {
  return text.split(/[^A-Za-z0-9]+/).filter(Boolean).map((part) => part[0].toUpperCase() + part.slice(1))
    .join("");
}

/** `ConfigMap` → `configMap`; keeps leading acronyms readable (`CSINode` → `csiNode`). */
export function camelCase(text: string): string {
  const match = /^([A-Z]+)(?=[A-Z][a-z]|$)/.exec(text);
  if (match) return match[1].toLowerCase() + text.slice(match[1].length);
  return text[0].toLowerCase() + text.slice(1);
}

/** Directory of a group/version module: `core/v1`, `apps/v1`, `coordination.k8s.io/v1`. */
export function moduleDir(group: string, version: string): string {
  return `${group || "core"}/${version}`;
}

/** A JSDoc block for `text` (and extra tag lines), indented by `indent`; empty when there is nothing to say. */
export function jsdoc(text: string | undefined, indent = "", tags: string[] = []): string {
  const lines = [...(text ?? "").trim().split("\n"), ...tags].map((l) =>
    l.replaceAll("*/", "*\\/").trimEnd()
  );
  while (lines.length && !lines[0]) lines.shift();
  if (lines.length === 0) return "";
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l}` : ""}`).join("\n")}\n${indent} */\n`;
}
