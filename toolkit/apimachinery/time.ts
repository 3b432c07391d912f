/**
 * Text forms of the API's time types: `Time` (RFC 3339, whole seconds) and `MicroTime`
 * (RFC 3339 with microseconds).
 *
 * @module
 */

/** Formats an instant as a Kubernetes `Time` (`2006-01-02T15:04:05Z`, seconds truncated). */
export function rfc3339(instant: Date | number): string {
  return new Date(instant).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Formats an instant as a Kubernetes `MicroTime` (`2006-01-02T15:04:05.000000Z`). */
export function microTime(instant: Date | number): string {
  return new Date(instant).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
