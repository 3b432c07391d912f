/**
 * An event recorder on `events.k8s.io/v1`. Repeats of the same event (same object, type, reason,
 * action and note) are aggregated into one Event with a growing `series.count`, written at most
 * once per `seriesPatchIntervalMs`, so a hot loop cannot flood the API server. Recording never
 * throws: failures are logged.
 *
 * @module
 */

import type { KubeObject, ResourceDescriptor } from "../client/resource.ts";
import { ResourceClient } from "../client/resource_client.ts";
import type { Transport } from "../client/transport.ts";
import { microTime } from "../apimachinery/time.ts";
import { type Logger, silentLogger } from "./log.ts";

/** Descriptor of `events.k8s.io/v1` events. */
export const EVENT_DESCRIPTOR: ResourceDescriptor = {
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
};

/** A reference to the object an event is about. */
export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

/** `events.k8s.io/v1` Event (the fields the recorder writes). */
export interface EventV1 extends KubeObject {
  eventTime: string;
  series?: { count: number; lastObservedTime: string };
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  regarding: ObjectReference;
  related?: ObjectReference;
  note?: string;
  type: "Normal" | "Warning";
}

/** One event to record. */
export interface EventInput {
  /** The object the event is about (an object or a reference). */
  regarding: KubeObject | ObjectReference;
  related?: KubeObject | ObjectReference;
  type: "Normal" | "Warning";
  /** CamelCase reason, e.g. `Connected`. */
  reason: string;
  /** What was done or failed, e.g. `Reconcile`. */
  action: string;
  /** Human-readable message (at most 1 KiB is kept). */
  note?: string;
}

/** Options of {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  /** e.g. `kubeocean.io/manager`. */
  controller: string;
  /** This replica, e.g. the pod name. */
  instance?: string;
  log?: Logger;
  /** Minimum interval between series updates of one event (default 10 s). */
  seriesPatchIntervalMs?: number;
  now?: () => number;
}

interface SeriesState {
  name: string;
  namespace: string;
  count: number;
  written: number;
  lastWrite: number;
  timer?: ReturnType<typeof setTimeout>;
  created: Promise<boolean>;
}

/** Turns an object or a reference into an ObjectReference. */
export function referenceTo(target: KubeObject | ObjectReference): ObjectReference {
  if ("metadata" in target && target.metadata) {
    const m = target.metadata;
    return {
      apiVersion: target.apiVersion,
      kind: target.kind,
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
    };
  }
  return target as ObjectReference;
}

/** Records events with aggregation of repeats. */
export class EventRecorder {
  readonly #events: ResourceClient<EventV1>;
  readonly #series = new Map<string, SeriesState>();
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #interval: number;
  readonly instance: string;

  constructor(readonly transport: Transport, readonly options: EventRecorderOptions) {
    this.#events = new ResourceClient<EventV1>(transport, EVENT_DESCRIPTOR);
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#interval = options.seriesPatchIntervalMs ?? 10_000;
    this.instance = options.instance ?? Deno.hostname();
  }

  /** Records `input`; returns once the first occurrence is written (repeats return at once). */
  async publish(input: EventInput): Promise<void> {
    const regarding = referenceTo(input.regarding);
    const note = fitBytes(input.note ?? "", NOTE_LIMIT_BYTES);
    const key = JSON.stringify([
      regarding.uid ?? `${regarding.namespace}/${regarding.kind}/${regarding.name}`,
      input.type,
      input.reason,
      input.action,
      note,
    ]);
    const now = this.#now();
    const existing = this.#series.get(key);
    if (existing) {
      existing.count++;
      this.#scheduleSeriesWrite(existing);
      return;
    }
    const namespace = regarding.namespace || "default";
    const name = `${regarding.name ?? "event"}.${now.toString(16)}${crypto.randomUUID().slice(0, 6)}`;
    const state: SeriesState = {
      name,
      namespace,
      count: 1,
      written: 1,
      lastWrite: now,
      created: Promise.resolve(false),
    };
    this.#series.set(key, state);
    state.created = this.#events.namespace(namespace).create({
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name, namespace },
      eventTime: microTime(now),
      reportingController: this.options.controller,
      reportingInstance: this.instance,
      action: input.action,
      reason: input.reason,
      regarding,
      related: input.related ? referenceTo(input.related) : undefined,
      note,
      type: input.type,
    }).then(() => true, (err) => {
      this.#log.warn("failed to record event", { reason: input.reason, error: err });
      this.#series.delete(key);
      return false;
    });
    await state.created;
    // Forget series after a while so memory stays bounded and old series are not patched forever.
    setTimeout(() => {
      if (this.#series.get(key) === state && !state.timer) this.#series.delete(key);
    }, 6 * 60_000).unref?.();
  }

  #scheduleSeriesWrite(state: SeriesState): void {
    if (state.timer) return;
    const wait = Math.max(0, state.lastWrite + this.#interval - this.#now());
    state.timer = setTimeout(async () => {
      state.timer = undefined;
      if (!await state.created || state.count === state.written) return;
      const count = state.count;
      state.lastWrite = this.#now();
      try {
        await this.#events.namespace(state.namespace).patch(state.name, {
          series: { count, lastObservedTime: microTime(state.lastWrite) },
        }, { type: "merge" });
        state.written = count;
      } catch (err) {
        this.#log.warn("failed to update event series", { event: state.name, error: err });
      }
    }, wait);
  }

  /** Writes pending series updates now and stops timers (call on shutdown). */
  async flush(): Promise<void> {
    const pending = [...this.#series.values()].filter((s) => s.timer);
    for (const state of pending) clearTimeout(state.timer);
    await Promise.all(pending.map(async (state) => {
      state.timer = undefined;
      if (!await state.created || state.count === state.written) return;
      await this.#events.namespace(state.namespace).patch(state.name, {
        series: { count: state.count, lastObservedTime: microTime(this.#now()) },
      }, { type: "merge" }).catch(() => {});
      state.written = state.count;
    }));
  }
}

/** The API server's limit of an Event's note, in bytes of UTF-8. */
const NOTE_LIMIT_BYTES = 1024;

/** `text` cut at a character boundary to at most `limit` bytes of UTF-8 (with `…` when cut). */
export function fitBytes(text: string, limit: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= limit) return text;
  let bytes = 3; // the ellipsis
  let end = 0;
  for (const char of text) {
    const size = encoder.encode(char).length;
    if (bytes + size > limit) break;
    bytes += size;
    end += char.length;
  }
  return `${text.slice(0, end)}…`;
}
