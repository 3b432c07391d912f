/**
 * Virtual node names another binding already owns. `vnode-<clusterID>-<node>` can be the same for
 * two bindings when clusterIDs contain '-' (`w` + `1-a` and `w-1` + `a`); the second binding then
 * lends nothing on that node, and says so: a Warning Event on the binding and its condition
 * `VirtualNodeNames` (False while any name is taken, naming the nodes and the owner).
 *
 * @module
 */

import type { Node } from "../../../apis/core/v1/mod.ts";
import { rfc3339 } from "../../../toolkit/apimachinery/time.ts";
import { FIELD_MANAGER, LABEL_CLUSTER_BINDING } from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";

const CONDITION = "VirtualNodeNames";

/** The virtual node names this binding could not take, and the binding's condition about them. */
export class NodeNameConflicts {
  /** Virtual node name → the binding that owns it. */
  readonly #taken = new Map<string, string>();

  constructor(readonly ctx: SyncerContext) {}

  /** Whether `node` (read after a create conflict) belongs to another binding; reports it if so. */
  async takenBy(node: Node, physicalName: string): Promise<boolean> {
    const owner = node.metadata?.labels?.[LABEL_CLUSTER_BINDING];
    if (owner === this.ctx.config.bindingName) return false;
    const vname = node.metadata!.name!;
    if (this.#taken.get(vname) !== owner) {
      this.#taken.set(vname, owner ?? "(not Kubeocean's)");
      const binding = this.ctx.binding;
      if (binding) {
        await this.ctx.recorder.publish({
          regarding: binding,
          type: "Warning",
          reason: "VirtualNodeNameTaken",
          action: "CreateVirtualNode",
          note: `worker node ${physicalName} is not lent: its virtual node name ${vname} belongs to ${
            owner ? `ClusterBinding ${owner}` : "a node Kubeocean did not create"
          } (choose clusterIDs that do not run into each other's node names)`,
        });
      }
    }
    await this.#writeCondition();
    return true;
  }

  /** The name is ours (again). */
  async released(vname: string): Promise<void> {
    if (this.#taken.delete(vname)) await this.#writeCondition();
  }

  async #writeCondition(): Promise<void> {
    const taken = [...this.#taken].sort(([a], [b]) => a.localeCompare(b));
    const message = taken.length
      ? `virtual node names taken by other owners: ${taken.map(([n, o]) => `${n} (${o})`).join(", ")}`
      : "every leased node has its virtual node";
    // Written only when the binding does not say it already (the manager's status writes may drop it).
    const current = this.ctx.binding?.status?.conditions?.find((c) => c.type === CONDITION);
    if (current ? current.message === message : taken.length === 0) return;
    // Server-side apply of this one condition: the manager owns the others.
    await this.ctx.bindings.apply(
      {
        apiVersion: "kubeocean.io/v1beta1",
        kind: "ClusterBinding",
        metadata: { name: this.ctx.config.bindingName },
        status: {
          conditions: [{
            type: CONDITION,
            status: taken.length ? "False" : "True",
            reason: taken.length ? "NameTaken" : "AllNamesOwned",
            message,
            lastTransitionTime: rfc3339(this.ctx.clock.now()),
          }],
        },
      },
      { fieldManager: `${FIELD_MANAGER}-syncer`, force: true },
      "status",
    );
  }
}
