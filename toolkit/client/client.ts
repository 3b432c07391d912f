/**
 * `KubeClient`: the entry point of the toolkit's Kubernetes client. It owns one transport per
 * configuration and hands out resource clients.
 *
 * ```ts
 * const client = await KubeClient.load({ context: "kind-kind" });
 * const configMaps = client.resource<ConfigMap>(configMapDescriptor).namespace("default");
 * console.log((await configMaps.list()).items.length);
 * client.close();
 * ```
 *
 * @module
 */

import { type ClientConfig, loadConfig, type LoadConfigOptions } from "./config.ts";
import type { KubeObject, ResourceDescriptor } from "./resource.ts";
import { ResourceClient } from "./resource_client.ts";
import { HttpTransport, type Transport, type TransportOptions } from "./transport.ts";

/** A Kubernetes API client for one cluster (one kubeconfig context or in-cluster). */
export class KubeClient {
  constructor(readonly transport: Transport) {}

  /** Loads configuration like kubectl (kubeconfig, then in-cluster) and creates a client. */
  static async load(options: LoadConfigOptions & TransportOptions = {}): Promise<KubeClient> {
    return KubeClient.fromConfig(await loadConfig(options), options);
  }

  /** Creates a client for a configuration that is already loaded. */
  static fromConfig(config: ClientConfig, options: TransportOptions = {}): KubeClient {
    return new KubeClient(new HttpTransport(config, options));
  }

  /** The configuration in use. */
  get config(): ClientConfig {
    return this.transport.config;
  }

  /** The default namespace of the configuration (context namespace, in-cluster namespace, or `default`). */
  get defaultNamespace(): string {
    return this.transport.config.namespace;
  }

  /**
   * A client for `descriptor`, bound to `namespace` when given. `S` names the subresources the
   * resource serves (e.g. `"status" | "scale"`), which enables the matching subresource methods.
   */
  resource<T extends KubeObject, S extends string = never>(
    descriptor: ResourceDescriptor,
    namespace?: string,
  ): ResourceClient<T, S> {
    return new ResourceClient<T, S>(this.transport, descriptor, namespace);
  }

  /** The server's version (`/version`). */
  async version(): Promise<{ major: string; minor: string; gitVersion: string }> {
    return await this.transport.request({ method: "GET", path: "/version" });
  }

  /** Raw GET of any API path, parsed as JSON. */
  async getRaw<T = unknown>(path: string): Promise<T> {
    return await this.transport.request<T>({ method: "GET", path });
  }

  /** Closes connections. */
  close(): void {
    this.transport.close();
  }

  /** Lets `using client = …` close the client. */
  [Symbol.dispose](): void {
    this.close();
  }
}
