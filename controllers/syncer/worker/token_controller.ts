/**
 * Renews token Secrets before their tokens expire, and deletes the ones no twin or live virtual
 * pod of the binding uses any more (after a grace period for twins on their way).
 *
 * @module
 */

import type { Secret } from "../../../apis/core/v1/mod.ts";
import { ignoreNotFound } from "../../../toolkit/client/errors.ts";
import { Action, type Controller } from "../../../toolkit/runtime/controller.ts";
import { ANNOTATION_VIRTUAL_NAME, ANNOTATION_VIRTUAL_NAMESPACE } from "../../common/names.ts";
import type { SyncerContext } from "../context.ts";
import { UNUSED_COPY_GRACE_MS } from "./claim_controller.ts";
import { TOKEN_SECRET_PREFIX } from "./naming.ts";
import { ANNOTATION_EXPIRES, TokenMirror } from "./tokens.ts";
import type { DependencyUsage } from "./usage.ts";

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
  })
    // Reconciles read the binding: without it listed they would drop their keys.
    .requires(ctx.bindingInformer)
    // A twin going away may leave its token unused: look at the token Secrets it mounted.
    .watches(ctx.physical.core.pods(), (twin) =>
      (twin.spec?.volumes ?? [])
        .map((v) => v.secret?.secretName)
        .filter((name): name is string => !!name?.startsWith(TOKEN_SECRET_PREFIX))
        .map((name) => ({ namespace: ctx.config.mountNamespace, name })))
    .build(async (ref, rc) => {
      const secret = rc.object;
      if (!secret) tokens.forget(ref.name); // deleted: the next pod that needs it re-creates it
      if (!secret || !ctx.binding) return Action.done();
      const ns = secret.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAMESPACE];
      const serviceAccount = secret.metadata?.annotations?.[ANNOTATION_VIRTUAL_NAME];
      if (!ns || !serviceAccount) return Action.done();
      const now = ctx.clock.now().getTime();
      if (!usage.isUsed(`Token/${ns}/${serviceAccount}`)) {
        // Give freshly created twins a moment to appear before deleting their token.
        const age = now - Date.parse(secret.metadata?.creationTimestamp ?? "");
        if (age < UNUSED_COPY_GRACE_MS) return Action.requeueAfter(UNUSED_COPY_GRACE_MS - age);
        tokens.forget(secret.metadata!.name!);
        await secrets.delete(secret.metadata!.name!).catch(ignoreNotFound);
        return Action.done();
      }
      await tokens.ensure(ns, serviceAccount);
      const expires = Date.parse(secret.metadata?.annotations?.[ANNOTATION_EXPIRES] ?? "");
      const renewIn = Number.isNaN(expires) ? 60_000 : TokenMirror.renewalTime(expires) - now;
      return Action.requeueAfter(Math.max(10_000, Math.min(renewIn, ctx.config.resyncMs)));
    });
}
