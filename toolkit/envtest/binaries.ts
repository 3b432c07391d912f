/**
 * Finds or builds the pinned control-plane binaries: kube-apiserver, kube-controller-manager,
 * kube-scheduler and kubectl (Kubernetes), etcd and kwok — and, on demand, other Go programs in
 * their own cache directories ({@linkcode ensureGoTool}: metrics-server when a cluster asks for it).
 *
 * Resolution order, per binary: `$KUBEBUILDER_ASSETS` (the envtest convention) → a versioned cache
 * outside the repository (`$KUBEOCEAN_CACHE_DIR` or `~/.cache/kubeocean/bin/<key>/`) → a build from
 * the Go module proxy with the local Go toolchain. Builds are serialised by a file lock so that
 * concurrent test processes build once.
 *
 * @module
 */

import { exists, isExecutable, runCommand, tail, which } from "./command.ts";

/** Pinned versions of the control-plane components. */
export interface BinaryVersions {
  /** Kubernetes release, e.g. `v1.36.3`. */
  kubernetes: string;
  /** etcd release, e.g. `v3.6.16`. */
  etcd: string;
  /** kwok release, e.g. `v0.8.0`. */
  kwok: string;
  /** metrics-server release, e.g. `v0.8.0`; built only on demand ({@linkcode ensureMetricsServer}). */
  metricsServer: string;
}

/** The versions this project is tested with. */
export const DEFAULT_VERSIONS: Readonly<BinaryVersions> = Object.freeze({
  kubernetes: "v1.36.3",
  etcd: "v3.6.16",
  kwok: "v0.8.0",
  metricsServer: "v0.8.0",
});

/** Absolute paths of the binaries an environment runs. */
export interface ControlPlaneBinaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  etcd: string;
  kwok: string;
  /** Directory holding kwok's Stage manifests (from the kwok module) used to configure kwok. */
  kwokStages: string;
  /**
   * metrics-server, only when asked for ({@linkcode ensureMetricsServer}, or
   * `ensureBinaries({ metricsServer: true })`); clusters with `metricsServer: true` need it.
   */
  metricsServer?: string;
  versions: BinaryVersions;
}

/** Options of {@linkcode ensureBinaries}. */
export interface EnsureBinariesOptions {
  versions?: Partial<BinaryVersions>;
  /** Directory searched first; defaults to `$KUBEBUILDER_ASSETS`. */
  assetsDir?: string;
  /** Root of the binary cache; defaults to `$KUBEOCEAN_CACHE_DIR` or `~/.cache/kubeocean/bin`. */
  cacheRoot?: string;
  /** Progress sink; defaults to standard error. */
  log?: (line: string) => void;
  /** Set to false to fail instead of building when binaries are missing. */
  allowBuild?: boolean;
  /** Also find or build metrics-server (default false: the other binaries do not need it). */
  metricsServer?: boolean;
}

const FILES = {
  kubeApiserver: "kube-apiserver",
  kubeControllerManager: "kube-controller-manager",
  kubeScheduler: "kube-scheduler",
  kubectl: "kubectl",
  etcd: "etcd",
  kwok: "kwok",
} as const;
type BinaryName = keyof typeof FILES;

/** kwok Stage manifests copied from the kwok module into the cache, relative to `kustomize/stage/`. */
export const KWOK_STAGE_FILES: readonly string[] = [
  "node/fast/node-initialize.yaml",
  "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
  "pod/fast/pod-ready.yaml",
  "pod/fast/pod-complete.yaml",
  "pod/fast/pod-delete.yaml",
];

const MIN_GO_MINOR = 26;

function defaultLog(line: string): void {
  console.error(`[envtest] ${line}`);
}

/** The cache key of a version set on this platform, e.g. `k8s-v1.36.3_etcd-v3.6.16_kwok-v0.8.0_linux-amd64`. */
export function cacheKey(versions: BinaryVersions): string {
  return `k8s-${versions.kubernetes}_etcd-${versions.etcd}_kwok-${versions.kwok}_${Deno.build.os}-${goArch()}`;
}

/** The default cache root: `$KUBEOCEAN_CACHE_DIR`, else `$XDG_CACHE_HOME/kubeocean/bin`, else `~/.cache/kubeocean/bin`. */
export function defaultCacheRoot(): string {
  const explicit = Deno.env.get("KUBEOCEAN_CACHE_DIR");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? "/tmp";
  return `${xdg || `${home}/.cache`}/kubeocean/bin`;
}

/**
 * Returns the paths of every control-plane binary, building the missing ones into the cache when
 * Go is available. Throws an error that says what is missing and how to provide it otherwise.
 */
export async function ensureBinaries(options: EnsureBinariesOptions = {}): Promise<ControlPlaneBinaries> {
  const versions = { ...DEFAULT_VERSIONS, ...options.versions };
  const log = options.log ?? defaultLog;
  const assetsDir = options.assetsDir ?? Deno.env.get("KUBEBUILDER_ASSETS");
  const cacheDir = `${options.cacheRoot ?? defaultCacheRoot()}/${cacheKey(versions)}`;

  const withMetricsServer = async (binaries: ControlPlaneBinaries): Promise<ControlPlaneBinaries> =>
    options.metricsServer ? { ...binaries, metricsServer: await ensureMetricsServer(options) } : binaries;

  const found = await lookUp(assetsDir, cacheDir);
  const missing = (Object.keys(FILES) as BinaryName[]).filter((name) => !found[name]);
  const stagesReady = await hasStages(cacheDir);
  if (missing.length === 0 && stagesReady) return withMetricsServer(assemble(found, cacheDir, versions));

  if (options.allowBuild === false) {
    throw new Error(
      `control-plane binaries missing: ${missing.map((n) => FILES[n]).join(", ") || "kwok stages"}` +
        ` (looked in ${assetsDir ? `$KUBEBUILDER_ASSETS=${assetsDir} and ` : ""}${cacheDir})`,
    );
  }
  await buildIntoCache(cacheDir, versions, log);
  const rebuilt = await lookUp(assetsDir, cacheDir);
  return withMetricsServer(assemble(rebuilt, cacheDir, versions));
}

/** The cache key of a metrics-server version on this platform, e.g. `metrics-server-v0.8.0_linux-amd64`. */
export function metricsServerCacheKey(version: string): string {
  return goToolCacheKey("metrics-server", version);
}

/** The cache key of a Go tool's version on this platform, e.g. `helm-v4.3.2_linux-amd64`. */
export function goToolCacheKey(name: string, version: string): string {
  return `${name}-${version}_${Deno.build.os}-${goArch()}`;
}

/**
 * A Go program built on demand from the Go module proxy with `go install package@version` in the
 * module's own context (its go.mod decides every dependency), into its own cache directory.
 */
export interface GoTool {
  /** The binary's name, e.g. `helm`. */
  name: string;
  /** The pinned module version, e.g. `v4.3.2`. */
  version: string;
  /** The main package, without the version, e.g. `helm.sh/helm/v4/cmd/helm`. */
  installPath: string;
  /** `-ldflags` beyond `-s -w` (version stamping). */
  ldflags?: string;
  /** Arguments that make the binary print its version (default `--version`). */
  versionArgs?: string[];
  /** What that output must contain (default: `version`). */
  expectedVersion?: string;
  /** What a cold build costs, for the log (e.g. "2–3 minutes on 2 cores"). */
  buildCost?: string;
  /** What to tell a user without Go, after "install Go …, or …". */
  alternative?: string;
}

/** metrics-server at `version`: its `--version` reads client-go's stamped version, as its Makefile sets. */
export function metricsServerTool(version = DEFAULT_VERSIONS.metricsServer): GoTool {
  return {
    name: "metrics-server",
    version,
    installPath: "sigs.k8s.io/metrics-server/cmd/metrics-server",
    ldflags: `-X k8s.io/client-go/pkg/version.gitVersion=${version}` +
      " -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z",
    buildCost: "3–4 minutes on 2 cores and about 1.5 GB of Go build cache",
    alternative: "start the cluster without metricsServer",
  };
}

/**
 * Returns the path of the pinned metrics-server (`sigs.k8s.io/metrics-server`,
 * {@linkcode DEFAULT_VERSIONS}`.metricsServer`), building it on first use (see
 * {@linkcode ensureGoTool}). Only clusters started with `metricsServer: true` call this, so the
 * other tests never pay for the build.
 */
export function ensureMetricsServer(
  options: Omit<EnsureBinariesOptions, "metricsServer"> = {},
): Promise<string> {
  return ensureGoTool(metricsServerTool(options.versions?.metricsServer), options);
}

/**
 * Returns the path of `tool`, building it on first use. Lookup order as for the control-plane
 * binaries: `$KUBEBUILDER_ASSETS/<name>` → the cache `<cacheRoot>/<name>-<version>_<os>-<arch>/`
 * → `go install` under a file lock (concurrent test processes build once).
 */
export async function ensureGoTool(
  tool: GoTool,
  options: Omit<EnsureBinariesOptions, "metricsServer" | "versions"> = {},
): Promise<string> {
  const { name, version } = tool;
  const log = options.log ?? defaultLog;
  const assetsDir = options.assetsDir ?? Deno.env.get("KUBEBUILDER_ASSETS");
  const cacheDir = `${options.cacheRoot ?? defaultCacheRoot()}/${goToolCacheKey(name, version)}`;
  const binary = `${cacheDir}/${name}`;
  if (assetsDir && await isExecutable(`${assetsDir}/${name}`)) return `${assetsDir}/${name}`;
  if (await exists(`${cacheDir}/.complete`) && await isExecutable(binary)) return binary;
  if (options.allowBuild === false) {
    throw new Error(
      `${name} ${version} is missing (looked in ${
        assetsDir ? `$KUBEBUILDER_ASSETS=${assetsDir} and ` : ""
      }${cacheDir})`,
    );
  }
  await withBuildLock(cacheDir, log, async () => {
    if (await exists(`${cacheDir}/.complete`) && await isExecutable(binary)) return;
    const go = await findGo(
      `${name} ${version} is not available and Go is not installed to build it.\n` +
        `  Either install Go 1.${MIN_GO_MINOR} or newer (it builds ${tool.installPath}@${version} from the\n` +
        `  Go module proxy once, into the cache), or set KUBEBUILDER_ASSETS to a directory holding a\n` +
        `  ${name} binary${tool.alternative ? `, or ${tool.alternative}` : ""}.`,
    );
    const staging = `${cacheDir}.building-${Deno.pid}`;
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${staging}/out`, { recursive: true });
    const started = Date.now();
    log(
      `building ${name} ${version} with ${go.version} into ${cacheDir}` +
        (tool.buildCost ? ` (a cold build takes ${tool.buildCost})` : ""),
    );
    const builder = new GoBuilder(go.path, staging, log);
    await builder.installTool(tool);
    const { stdout } = await runCommand(`${staging}/out/${name}`, tool.versionArgs ?? ["--version"]);
    const expected = tool.expectedVersion ?? version;
    if (!stdout.includes(expected)) {
      throw new Error(
        `${name} ${
          (tool.versionArgs ?? ["--version"]).join(" ")
        } printed "${stdout.trim()}", expected ${expected}`,
      );
    }
    await Deno.writeTextFile(
      `${staging}/out/.complete`,
      JSON.stringify({ [name]: version, go: go.version, builtAt: new Date().toISOString() }, null, 2) + "\n",
    );
    await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
    await Deno.rename(`${staging}/out`, cacheDir);
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    log(`${name} ready in ${formatDuration(Date.now() - started)}: ${binary}`);
  });
  return binary;
}

function goArch(): string {
  return ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ??
    Deno.build.arch;
}

async function lookUp(
  assetsDir: string | undefined,
  cacheDir: string,
): Promise<Partial<Record<BinaryName, string>>> {
  const found: Partial<Record<BinaryName, string>> = {};
  const cacheComplete = await exists(`${cacheDir}/.complete`);
  for (const name of Object.keys(FILES) as BinaryName[]) {
    if (assetsDir && await isExecutable(`${assetsDir}/${FILES[name]}`)) {
      found[name] = `${assetsDir}/${FILES[name]}`;
    } else if (cacheComplete && await isExecutable(`${cacheDir}/${FILES[name]}`)) {
      found[name] = `${cacheDir}/${FILES[name]}`;
    }
  }
  return found;
}

async function hasStages(cacheDir: string): Promise<boolean> {
  for (const file of KWOK_STAGE_FILES) {
    if (!await exists(`${cacheDir}/stages/${file.replaceAll("/", "_")}`)) return false;
  }
  return true;
}

function assemble(
  found: Partial<Record<BinaryName, string>>,
  cacheDir: string,
  versions: BinaryVersions,
): ControlPlaneBinaries {
  const get = (name: BinaryName) => {
    const path = found[name];
    if (!path) {
      throw new Error(`control-plane binary ${FILES[name]} is missing after the build in ${cacheDir}`);
    }
    return path;
  };
  return {
    kubeApiserver: get("kubeApiserver"),
    kubeControllerManager: get("kubeControllerManager"),
    kubeScheduler: get("kubeScheduler"),
    kubectl: get("kubectl"),
    etcd: get("etcd"),
    kwok: get("kwok"),
    kwokStages: `${cacheDir}/stages`,
    versions,
  };
}

/** Builds every binary into `cacheDir` under an exclusive lock; a no-op when another process finished first. */
async function buildIntoCache(
  cacheDir: string,
  versions: BinaryVersions,
  log: (line: string) => void,
): Promise<void> {
  await withBuildLock(cacheDir, log, async () => {
    if (await exists(`${cacheDir}/.complete`) && await hasStages(cacheDir)) return;
    const go = await findGo(
      "control-plane binaries are not available and Go is not installed to build them.\n" +
        `  Either install Go 1.${MIN_GO_MINOR} or newer (it builds them from the Go module proxy once, into the cache),\n` +
        "  or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager,\n" +
        "  kube-scheduler, kubectl, etcd and kwok.",
    );
    const staging = `${cacheDir}.building-${Deno.pid}`;
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${staging}/out/stages`, { recursive: true });
    const started = Date.now();
    log(
      `building control-plane binaries (Kubernetes ${versions.kubernetes}, etcd ${versions.etcd}, kwok ${versions.kwok})` +
        ` with ${go.version} into ${cacheDir}; a cold build takes 15–30 minutes on 2 cores and about 8 GB of Go caches`,
    );
    const builder = new GoBuilder(go.path, staging, log);
    await builder.buildKubernetes(versions.kubernetes);
    await builder.buildEtcd(versions.etcd);
    await builder.buildKwok(versions.kwok);
    await verifyVersion(`${staging}/out/kube-apiserver`, versions.kubernetes);
    await Deno.writeTextFile(
      `${staging}/out/.complete`,
      JSON.stringify({ versions, go: go.version, builtAt: new Date().toISOString() }, null, 2) + "\n",
    );
    await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
    await Deno.rename(`${staging}/out`, cacheDir);
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    log(`control-plane binaries ready in ${formatDuration(Date.now() - started)}: ${cacheDir}`);
  });
}

/** Runs `build` holding the exclusive file lock `<cacheDir>.lock` (shared by concurrent processes). */
async function withBuildLock(
  cacheDir: string,
  log: (line: string) => void,
  build: () => Promise<void>,
): Promise<void> {
  const root = cacheDir.slice(0, cacheDir.lastIndexOf("/"));
  await Deno.mkdir(root, { recursive: true });
  const lockFile = await Deno.open(`${cacheDir}.lock`, { create: true, write: true });
  try {
    await lockExclusive(
      lockFile,
      () => log(`another process is building into ${cacheDir}; waiting on ${cacheDir}.lock`),
    );
    await build();
  } finally {
    lockFile.close();
  }
}

/** Takes an exclusive lock on `file`, calling `onWait` once if it is not granted within 200 ms. */
async function lockExclusive(file: Deno.FsFile, onWait: () => void): Promise<void> {
  const locked = file.lock(true).then(() => true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 200));
  const granted = await Promise.race([locked, timedOut]);
  clearTimeout(timer);
  if (!granted) {
    onWait();
    await locked;
  }
}

/** The local Go toolchain; throws `missing` when there is none. */
async function findGo(missing: string): Promise<{ path: string; version: string }> {
  const path = await which("go");
  if (!path) throw new Error(missing);
  const { stdout } = await runCommand(path, ["env", "GOVERSION"]);
  const version = stdout.trim();
  const minor = Number(/^go1\.(\d+)/.exec(version)?.[1] ?? "0");
  if (minor < MIN_GO_MINOR) {
    throw new Error(
      `${version} at ${path} is too old to build the test binaries; Go 1.${MIN_GO_MINOR} or newer is needed`,
    );
  }
  return { path, version };
}

async function verifyVersion(binary: string, expected: string): Promise<void> {
  const { stdout } = await runCommand(binary, ["--version"]);
  if (!stdout.includes(expected)) {
    throw new Error(`${binary} --version printed "${stdout.trim()}", expected ${expected}`);
  }
}

/** Runs the Go builds in wrapper modules under a staging directory. */
class GoBuilder {
  readonly #env: Record<string, string>;
  constructor(readonly go: string, readonly staging: string, readonly log: (line: string) => void) {
    this.#env = { GOWORK: "off", GOTOOLCHAIN: "local", CGO_ENABLED: "0", GOFLAGS: "-mod=mod" };
  }

  get out(): string {
    return `${this.staging}/out`;
  }

  /** kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from one wrapper module. */
  async buildKubernetes(version: string): Promise<void> {
    const dir = `${this.staging}/kubernetes`;
    await Deno.mkdir(dir, { recursive: true });
    this.log(`kubernetes ${version}: resolving staging modules`);
    const download = await this.goJson<{ GoMod?: string; Error?: string }>(dir, [
      "mod",
      "download",
      "-json",
      `k8s.io/kubernetes@${version}`,
    ]);
    if (!download.GoMod) {
      throw new Error(`go mod download k8s.io/kubernetes@${version}: ${download.Error ?? "no go.mod"}`);
    }
    const upstream = await Deno.readTextFile(download.GoMod);
    const staging = stagingModules(upstream);
    if (staging.length === 0) {
      throw new Error(`no staging modules found in k8s.io/kubernetes@${version}'s go.mod`);
    }
    const goLine = /^go (\S+)$/m.exec(upstream)?.[1] ?? "1.26.0";
    const godebug = /^godebug (\S+)$/m.exec(upstream)?.[1];
    const twin = version.replace(/^v1\./, "v0.");
    await Deno.writeTextFile(
      `${dir}/go.mod`,
      [
        "module local/kubeocean-k8s-binaries",
        "",
        `go ${goLine}`,
        ...(godebug ? ["", `godebug ${godebug}`] : []),
        "",
        `require k8s.io/kubernetes ${version}`,
        "",
        "replace (",
        ...staging.map((m) => `\t${m} => ${m} ${twin}`),
        ")",
        "",
      ].join("\n"),
    );
    const commands = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"];
    await Deno.writeTextFile(
      `${dir}/tools.go`,
      `//go:build tools\n\npackage tools\n\nimport (\n${
        commands.map((c) => `\t_ "k8s.io/kubernetes/cmd/${c}"`).join("\n")
      }\n)\n`,
    );
    this.log(`kubernetes ${version}: downloading modules (go mod tidy)`);
    await this.goStreaming(dir, ["mod", "tidy"], "kubernetes modules");
    const [major, minor] = version.replace(/^v/, "").split(".");
    const stamp = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap((pkg) => [
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    ]);
    this.log(`kubernetes ${version}: compiling ${commands.join(", ")}`);
    await this.goStreaming(dir, [
      "build",
      "-v",
      "-trimpath",
      "-tags",
      "selinux,notest",
      "-ldflags",
      `-s -w ${stamp.join(" ")}`,
      "-o",
      `${this.out}/`,
      ...commands.map((c) => `k8s.io/kubernetes/cmd/${c}`),
    ], "kubernetes packages");
  }

  /** etcd from a wrapper module that requires `go.etcd.io/etcd/server/v3`. */
  async buildEtcd(version: string): Promise<void> {
    const dir = `${this.staging}/etcd`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/go.mod`,
      `module local/kubeocean-etcd-binary\n\ngo 1.${MIN_GO_MINOR}.0\n\nrequire go.etcd.io/etcd/server/v3 ${version}\n`,
    );
    await Deno.writeTextFile(
      `${dir}/tools.go`,
      `//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n`,
    );
    this.log(`etcd ${version}: downloading modules`);
    await this.goStreaming(dir, ["mod", "tidy"], "etcd modules");
    this.log(`etcd ${version}: compiling`);
    await this.goStreaming(dir, [
      "build",
      "-v",
      "-trimpath",
      "-ldflags",
      `-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${version}`,
      "-o",
      `${this.out}/etcd`,
      "go.etcd.io/etcd/server/v3",
    ], "etcd packages");
  }

  /** kwok with `go install`, plus its Stage manifests from the module. */
  async buildKwok(version: string): Promise<void> {
    const dir = `${this.staging}/kwok`;
    await Deno.mkdir(dir, { recursive: true });
    this.log(`kwok ${version}: compiling`);
    await this.goStreaming(
      dir,
      [
        "install",
        "-v",
        "-trimpath",
        "-ldflags",
        `-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${version.replace(/^v/, "")}`,
        `sigs.k8s.io/kwok/cmd/kwok@${version}`,
      ],
      "kwok packages",
      { GOBIN: this.out },
    );
    const module = await this.goJson<{ Dir?: string; Error?: string }>(dir, [
      "mod",
      "download",
      "-json",
      `sigs.k8s.io/kwok@${version}`,
    ]);
    if (!module.Dir) {
      throw new Error(`go mod download sigs.k8s.io/kwok@${version}: ${module.Error ?? "no directory"}`);
    }
    for (const file of KWOK_STAGE_FILES) {
      await Deno.copyFile(
        `${module.Dir}/kustomize/stage/${file}`,
        `${this.out}/stages/${file.replaceAll("/", "_")}`,
      );
      await Deno.chmod(`${this.out}/stages/${file.replaceAll("/", "_")}`, 0o644);
    }
  }

  /** A {@linkcode GoTool} with `go install package@version`: the module's own go.mod decides, nothing is replaced. */
  async installTool(tool: GoTool): Promise<void> {
    const dir = `${this.staging}/${tool.name}`;
    await Deno.mkdir(dir, { recursive: true });
    this.log(`${tool.name} ${tool.version}: downloading modules and compiling`);
    await this.goStreaming(
      dir,
      [
        "install",
        "-v",
        "-trimpath",
        "-ldflags",
        `-s -w${tool.ldflags ? ` ${tool.ldflags}` : ""}`,
        `${tool.installPath}@${tool.version}`,
      ],
      `${tool.name} packages`,
      { GOBIN: this.out },
    );
  }

  async goJson<T>(cwd: string, args: string[]): Promise<T> {
    const { stdout } = await runCommand(this.go, args, { cwd, env: this.#env, check: false });
    try {
      return JSON.parse(stdout) as T;
    } catch {
      throw new Error(`go ${args.join(" ")} printed no JSON:\n${tail(stdout, 20)}`);
    }
  }

  /** Runs a go command and reports progress (lines printed, elapsed time) every 15 seconds. */
  async goStreaming(
    cwd: string,
    args: string[],
    what: string,
    extraEnv: Record<string, string> = {},
  ): Promise<void> {
    const started = Date.now();
    const child = new Deno.Command(this.go, {
      args,
      cwd,
      env: { ...this.#env, ...extraEnv },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let lines = 0;
    let last = "";
    const recent: string[] = [];
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      let buffered = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffered += chunk;
        const parts = buffered.split("\n");
        buffered = parts.pop() ?? "";
        for (const line of parts) {
          if (!line.trim()) continue;
          lines++;
          last = line.trim();
          recent.push(line);
          if (recent.length > 40) recent.shift();
        }
      }
    };
    const timer = setInterval(() => {
      this.log(
        `  ${what}: ${lines} done, ${formatDuration(Date.now() - started)} elapsed (${last.slice(0, 80)})`,
      );
    }, 15_000);
    try {
      const [status] = await Promise.all([child.status, pump(child.stdout), pump(child.stderr)]);
      if (!status.success) {
        throw new Error(
          `go ${args.slice(0, 2).join(" ")} for ${what} failed (exit ${status.code}):\n${recent.join("\n")}`,
        );
      }
    } finally {
      clearInterval(timer);
    }
    this.log(`  ${what}: finished in ${formatDuration(Date.now() - started)}`);
  }
}

/** Module paths that k8s.io/kubernetes' go.mod maps to `./staging/src/...`. */
export function stagingModules(goMod: string): string[] {
  const modules = new Set<string>();
  for (const match of goMod.matchAll(/^\s*(k8s\.io\/[a-z0-9-]+)\s*=>\s*\.\/staging\//gm)) {
    modules.add(match[1]);
  }
  return [...modules].sort();
}

/** Formats milliseconds as `1m05s` or `12.3s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}
