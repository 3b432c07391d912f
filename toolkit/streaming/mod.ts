/**
 * Streaming protocols for controllers that proxy or serve Kubernetes streams (exec, attach,
 * port-forward): SPDY/3.1 sessions as the API server and kubelets speak them, and WebSockets on a
 * `node:http(s)` upgrade socket or to a server with pinned TLS settings. Imported separately from
 * the toolkit's main module (`@kubeocean/kubeocean/streaming`) so that controllers which never
 * stream do not load them.
 *
 * @module
 */

export * from "./spdy.ts";
export * from "./websocket.ts";
