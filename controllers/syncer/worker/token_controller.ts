/**
 * Renews token Secrets before their tokens expire, and deletes the ones no twin or live virtual
 * pod of the binding uses any more (after a grace period for twins on their way). A token Secret
 * without its owner's annotations (written by an earlier version) is deleted the same way.
 *
 * @module
 */

import type { Secret } from "../../../apis/core/v1/mod.ts";
import { ignoreNotFound } from "../../../toolkit/client/errors.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import type { SyncerContext } from "../context.ts";
import { isTerminal } from "../pod_phase.ts";
import { UNUSED_COPY_GRACE_MS } from "./claim_controller.ts";
import { TOKEN_SECRET_PREFIX } from "./naming.ts";
import { ANNOTATION_EXPIRES, TokenMirror } from "./tokens.ts";
import type { DependencyUsage } from "./usage.ts";
import { physicalPodTransform, virtualPodTransform } from "../pod_slimming.ts";

/** Index of token Secrets by their virtual pod (`namespace/name`). */
const BY_OWNER = "byTokenOwner";

function tokenOwnerKey(secret: Secret): string[] {
  const owner = TokenMirror.ownerOf(secret);
  return owner ? [`${owner.namespace}/${owner.pod}`] : [];
}

/** Builds the token Secret controller. */
export function tokenController(
  ctx: SyncerContext,
  tokens: TokenMirror,
  usage: DependencyUsage,
): Controller<Secret> {
  const secrets = ctx.physical.core.secrets(ctx.config.mountNamespace);
  return ctx.manager.controller(secrets, {
    name: `tokens/${ctx.config.bindingName}`,
    labelSelector: tokens.selector,
    indexers: { [BY_OWNER]: tokenOwnerKey },
  })
    // Reconciles read the binding: without it listed they would drop their keys.
    .requires(ctx.bindingInformer)
    // A twin going away may leave its token unused: look at the token Secrets it mounted.
    .watches(ctx.physical.core.pods(), (twin) =>
      (twin.spec?.volumes ?? [])
        .map((v) => v.secret?.secretName)
        .filter((name): name is string => !!name?.startsWith(TOKEN_SECRET_PREFIX))
        .map((name) => ({ namespace: ctx.config.mountNamespace, name })), { transform: physicalPodTransform })
    // A virtual pod that ends or goes no longer needs its token (its twin may be gone already).
    .watches(
      ctx.virtual.core.pods(),
      (pod, _event, tokenSecrets) =>
        tokenSecrets.byIndex(BY_OWNER, `${pod.metadata!.namespace}/${pod.metadata!.name}`).map((secret) => ({
          namespace: secret.metadata!.namespace!,
          name: secret.metadata!.name!,
        })),
      {
        transform: virtualPodTransform(ctx.config.clusterID),
        predicates: [(e) => e.type === "Delete" || isTerminal(e.object.status)],
      },
    )
    .build(async (ref, rc) => {
      const secret = rc.object;
      if (!secret) tokens.forget(ref.name); // deleted: the next pod that needs it re-creates it
      if (!secret || !ctx.binding) return Action.done();
      const owner = TokenMirror.ownerOf(secret);
      const now = ctx.clock.now().getTime();
      if (!owner || !usage.isUsed(`Token/${owner.namespace}/${owner.pod}`)) {
        // A live owner may be about to get its twin: give it a moment. A token whose pod is gone
        // or ended is useless (and, bound to that pod, already invalid).
        const pod = owner && ctx.virtualPodInformer.store.get(`${owner.namespace}/${owner.pod}`);
        const ownerLive = pod?.metadata?.uid === owner?.uid && !isTerminal(pod?.status);
        const age = now - Date.parse(secret.metadata?.creationTimestamp ?? "");
        if (ownerLive && age < UNUSED_COPY_GRACE_MS) return Action.requeueAfter(UNUSED_COPY_GRACE_MS - age);
        tokens.forget(secret.metadata!.name!);
        await secrets.delete(secret.metadata!.name!).catch(ignoreNotFound);
        return Action.done();
      }
      await tokens.ensure(owner);
      const expires = Date.parse(secret.metadata?.annotations?.[ANNOTATION_EXPIRES] ?? "");
      const renewIn = Number.isNaN(expires) ? 60_000 : TokenMirror.renewalTime(expires) - now;
      return Action.requeueAfter(Math.max(10_000, Math.min(renewIn, ctx.config.resyncMs)));
    });
}
