/**
 * The syncer's heartbeat: a `coordination.k8s.io/v1` Lease per binding in the syncer's namespace,
 * renewed by the leading syncer replica while it runs, with what it can vouch for in an annotation.
 * The manager reads it to decide whether a binding's syncer works (SyncerReady) and whether the
 * worker answers it (Connected) — never from replica counts, which say nothing about a leader
 * that renews its election lease while its work is stuck.
 *
 * @module
 */

import type { Lease } from "../../apis/coordination.k8s.io/v1/mod.ts";
import { ANNOTATION_SYNCER_HEALTH } from "./names.ts";

/** What a syncer reports about itself. */
export interface SyncerHealth {
  /** Whether it syncs: caches listed and the worker's API server answers. */
  ready: boolean;
  /** CamelCase reason, e.g. `Syncing`, `CachesNotSynced`, `WorkerUnreachable`, `KubeconfigUnreadable`. */
  reason: string;
  /** For people: what it waits for or what failed. */
  message: string;
  /** Whether the worker's API server answers (false once it counts as down). */
  workerReachable: boolean;
}

/** The heartbeat Lease name of binding `binding`. */
export function heartbeatLeaseName(binding: string): string {
  return `kubeocean-syncer-${binding}-heartbeat`;
}

/** Heartbeats are written this often. */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A heartbeat older than this counts as stale (three missed renewals). */
export const HEARTBEAT_DURATION_SECONDS = 30;

/** What the manager makes of a heartbeat Lease at `now`. */
export interface HeartbeatReading {
  /** Fresh and ready. */
  ready: boolean;
  reason: string;
  message: string;
  /** False when the syncer says the worker does not answer (undefined without a fresh report). */
  workerReachable?: boolean;
  /** When the heartbeat goes stale, if it is fresh now. */
  staleAt?: Date;
}

/** Reads a heartbeat Lease (or its absence) at `now`. */
export function readHeartbeat(lease: Lease | undefined, name: string, now: Date): HeartbeatReading {
  if (!lease) {
    return {
      ready: false,
      reason: "NoHeartbeat",
      message: `no heartbeat from the syncer yet (Lease ${name})`,
    };
  }
  const holder = lease.spec?.holderIdentity || "the syncer";
  const health = parseHealth(lease.metadata?.annotations?.[ANNOTATION_SYNCER_HEALTH]);
  const renewed = Date.parse(lease.spec?.renewTime ?? "");
  const durationMs = (lease.spec?.leaseDurationSeconds ?? HEARTBEAT_DURATION_SECONDS) * 1000;
  const ageSeconds = Number.isFinite(renewed)
    ? Math.max(0, Math.round((now.getTime() - renewed) / 1000))
    : NaN;
  if (!Number.isFinite(renewed) || now.getTime() - renewed > durationMs) {
    const last = health ? `; it last reported ${health.reason}: ${health.message}` : "";
    return {
      ready: false,
      reason: "HeartbeatStale",
      message: `no heartbeat from ${holder} for ${
        Number.isFinite(ageSeconds) ? `${ageSeconds} s` : "ever"
      }${last}`,
    };
  }
  if (!health) {
    return { ready: false, reason: "HeartbeatUnreadable", message: `${holder} wrote no readable health` };
  }
  return {
    ready: health.ready,
    reason: health.reason,
    message: `${holder}: ${health.message}`,
    workerReachable: health.workerReachable,
    staleAt: new Date(renewed + durationMs),
  };
}

function parseHealth(text: string | undefined): SyncerHealth | undefined {
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (!value || typeof value !== "object") return undefined;
    const { ready, reason, message, workerReachable } = value as Record<string, unknown>;
    if (typeof ready !== "boolean" || typeof reason !== "string" || typeof message !== "string") {
      return undefined;
    }
    return { ready, reason, message, workerReachable: workerReachable !== false };
  } catch {
    return undefined;
  }
}
