/**
 * Node selector matching (core `NodeSelector`): terms are ORed, expressions within a term ANDed;
 * `matchFields` supports `metadata.name`. An absent selector, or one without terms, matches
 * every node.
 *
 * @module
 */

/** A node selector requirement. */
export interface Requirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" | string;
  values?: string[];
}

/** A node selector (`nodeSelectorTerms`). */
export interface NodeSelectorLike {
  nodeSelectorTerms?: { matchExpressions?: Requirement[]; matchFields?: Requirement[] }[];
}

function matches(requirement: Requirement, value: string | undefined): boolean {
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
    case "Lt": {
      if (value === undefined || values.length !== 1) return false;
      const [a, b] = [Number(value), Number(values[0])];
      if (!Number.isInteger(a) || !Number.isInteger(b)) return false;
      return requirement.operator === "Gt" ? a > b : a < b;
    }
    default:
      return false;
  }
}

/** Whether a node with `name` and `labels` matches `selector`. */
export function matchesNodeSelector(
  selector: NodeSelectorLike | undefined,
  name: string,
  labels: Record<string, string> = {},
): boolean {
  const terms = selector?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return true;
  return terms.some((term) => {
    const expressions = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (expressions.length === 0 && fields.length === 0) return false; // an empty term matches nothing
    return expressions.every((r) => matches(r, labels[r.key])) &&
      fields.every((r) => matches(r, r.key === "metadata.name" ? name : undefined));
  });
}
