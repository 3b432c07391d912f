/**
 * Loopback port allocation for test clusters.
 *
 * Ports come from the kernel (bind to port 0), and a process-wide set guarantees that one process
 * never hands the same port out twice while it may still be in use.
 *
 * @module
 */

const handedOut = new Set<number>();

/** Returns a port on 127.0.0.1 that was free a moment ago and that this process has not handed out. */
export function allocatePort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("could not find a free loopback port after 100 attempts");
}

/** Gives a port back for reuse by later allocations. */
export function releasePort(port: number): void {
  handedOut.delete(port);
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
export function isPortFree(port: number): boolean {
  try {
    const listener = Deno.listen({ hostname: "127.0.0.1", port });
    listener.close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) return false;
    throw err;
  }
}
