/**
 * Capacity figures of the binding's nodes as Prometheus gauges: per node and resource (origin =
 * the physical node's allocatable, available = leased, physical usage = requests of the node's own
 * pods, virtual usage = requests of pods on the virtual node), their sums over the binding
 * (`kubeocean_syncer_cluster_*`), and the number of virtual nodes. Quantities are in base units:
 * cores for cpu, bytes for memory and storage.
 *
 * @module
 */

import type { Pod } from "../../../apis/core/v1/mod.ts";
import { Quantity } from "../../../toolkit/apimachinery/quantity.ts";
import type { SyncerContext } from "../context.ts";
import { effectiveRequests, isNonTerminal } from "./capacity.ts";

type Figure = "origin" | "available" | "physicalUsage" | "virtualUsage";

const FIGURES: readonly Figure[] = ["origin", "available", "physicalUsage", "virtualUsage"];

/** The last figures of each leased node, and the gauges derived from them. */
export class NodeFigures {
  /** Physical node → figure → resource → value. */
  readonly #nodes = new Map<string, Record<Figure, Record<string, number>>>();
  /** Resources of the sums last written (several bindings share a registry: only ours are removed). */
  #summed: Record<Figure, string[]> = { origin: [], available: [], physicalUsage: [], virtualUsage: [] };

  constructor(readonly ctx: SyncerContext) {}

  /** Records the figures of one leased node. */
  record(
    physicalName: string,
    allocatable: Record<string, string>,
    ownPods: Pod[],
    leased: Record<string, Quantity>,
    virtualPods: Pod[],
  ): void {
    const used = requestSums(ownPods);
    const virtualUsed = requestSums(virtualPods.filter(isNonTerminal));
    const figures: Record<Figure, Record<string, number>> = {
      origin: {},
      available: {},
      physicalUsage: {},
      virtualUsage: {},
    };
    for (const [resource, value] of Object.entries(allocatable)) {
      figures.origin[resource] = quantityValue(value);
      figures.available[resource] = leased[resource]?.toNumber() ?? 0;
      figures.physicalUsage[resource] = used[resource] ?? 0;
      figures.virtualUsage[resource] = virtualUsed[resource] ?? 0;
    }
    this.#clearNode(physicalName);
    this.#nodes.set(physicalName, figures);
    const binding = this.ctx.config.bindingName;
    for (const figure of FIGURES) {
      for (const [resource, value] of Object.entries(figures[figure])) {
        this.ctx.metrics[figure].set({ cluster_binding: binding, node: physicalName, resource }, value);
      }
    }
    this.#updateSums();
  }

  /** Forgets a node that is no longer leased. */
  clear(physicalName: string): void {
    this.#clearNode(physicalName);
    this.#nodes.delete(physicalName);
    this.#updateSums();
  }

  #clearNode(physicalName: string): void {
    const previous = this.#nodes.get(physicalName);
    if (!previous) return;
    const binding = this.ctx.config.bindingName;
    for (const figure of FIGURES) {
      for (const resource of Object.keys(previous[figure])) {
        this.ctx.metrics[figure].remove({ cluster_binding: binding, node: physicalName, resource });
      }
    }
  }

  #updateSums(): void {
    const binding = this.ctx.config.bindingName;
    const gauges = {
      origin: this.ctx.metrics.clusterOrigin,
      available: this.ctx.metrics.clusterAvailable,
      physicalUsage: this.ctx.metrics.clusterPhysicalUsage,
      virtualUsage: this.ctx.metrics.clusterVirtualUsage,
    };
    for (const figure of FIGURES) {
      const sums: Record<string, number> = {};
      for (const node of this.#nodes.values()) {
        for (const [resource, value] of Object.entries(node[figure])) {
          sums[resource] = (sums[resource] ?? 0) + value;
        }
      }
      for (const resource of this.#summed[figure]) {
        if (!(resource in sums)) gauges[figure].remove({ cluster_binding: binding, resource });
      }
      for (const [resource, value] of Object.entries(sums)) {
        gauges[figure].set({ cluster_binding: binding, resource }, value);
      }
      this.#summed[figure] = Object.keys(sums);
    }
    this.ctx.metrics.vnodes.set({ cluster_binding: binding }, this.#nodes.size);
  }
}

function requestSums(pods: Pod[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const pod of pods) {
    for (const [resource, q] of Object.entries(effectiveRequests(pod))) {
      sums[resource] = (sums[resource] ?? 0) + q.toNumber();
    }
  }
  return sums;
}

/** A quantity in its base unit ("16Gi" → 17179869184, "500m" → 0.5); 0 when it cannot be parsed. */
function quantityValue(value: string): number {
  try {
    return Quantity.parse(value).toNumber();
  } catch {
    return 0;
  }
}
