import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseAgentConfig } from "../../node-agent/config";
import { DEFAULT_AGENT } from "../../shared/config/config";

/**
 * The agent's kustomize manifests, rendered the way an operator applies them (`kubectl kustomize`,
 * kustomize v5 as in kubectl 1.32), each object checked against client-node's Kubernetes models.
 */

const manifests = join(__dirname, "..", "..", "node-agent", "manifests");
type Doc = Record<string, any>;

/** The bench's "Agent idle RSS" on Node 22 (local/bench/bench.ts): 60.7 MiB resident, peak 60.8 MiB. */
const MEASURED_IDLE_RSS_MIB = 61;

/** The names the orchestrator accepts check-ins from by default (pods of this DaemonSet, running as this account). */
const { namespace: NAMESPACE, daemonSet: DAEMONSET, serviceAccount: SERVICE_ACCOUNT } = DEFAULT_AGENT;

/** client-node's own YAML parser (its dependency), for the data as rendered, before any model. */
const jsYaml = createRequire(require.resolve("@kubernetes/client-node"))("js-yaml") as { load(text: string): unknown; loadAll(text: string): unknown[] };

function kustomize(dir: string): string {
  try {
    return execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error("these tests render the manifests with `kubectl kustomize`: install kubectl (1.27 or later)");
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? e.message}`);
  }
}

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** An overlay of the base and the given components, as an operator would write one (kustomize wants relative paths). */
function overlay(components: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "rollcall-overlay-"));
  tempDirs.push(dir);
  const rel = (path: string) => relative(dir, join(manifests, path));
  writeFileSync(
    join(dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      `  - ${rel("base")}`,
      "components:",
      ...components.map((c) => `  - ${rel(join("components", c))}`),
      "",
    ].join("\n"),
  );
  return dir;
}

/**
 * Rendered objects as plain data. Each is also read into client-node's model of its kind and written
 * back: a field that is not part of the Kubernetes schema (a typo, a wrong level) is dropped by the
 * model, so the round trip differs from what kustomize rendered.
 */
async function render(dir: string): Promise<Doc[]> {
  const text = kustomize(dir);
  const { loadAllYaml, dumpYaml } = await import("@kubernetes/client-node");
  const raw = jsYaml.loadAll(text) as Doc[];
  const models = loadAllYaml(text);
  raw.forEach((doc, i) => {
    const roundTrip = jsYaml.loadAll(dumpYaml(models[i]))[0];
    assert.deepEqual(roundTrip, doc, `${doc.kind} ${doc.metadata?.name} has fields outside the Kubernetes schema`);
  });
  return raw;
}

const daemonSet = (docs: Doc[]) => docs.find((d) => d.kind === "DaemonSet")!;
const podOf = (docs: Doc[]) => daemonSet(docs).spec.template.spec;
const agentOf = (docs: Doc[]) => podOf(docs).containers[0];

/** The agent's environment as the kubelet would give it: the example Secret, the settings ConfigMap, then `env`. */
function agentEnv(docs: Doc[]): Record<string, string> {
  const agent = agentOf(docs);
  const env: Record<string, string> = {};
  for (const source of agent.envFrom as Doc[]) {
    if (source.secretRef) Object.assign(env, exampleSecret().stringData);
    if (source.configMapRef) Object.assign(env, docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === source.configMapRef.name)!.data);
  }
  for (const entry of agent.env as Doc[]) env[entry.name] = entry.value ?? (entry.valueFrom?.fieldRef?.fieldPath === "spec.nodeName" ? "aks-nodepool1-12345678-vmss000000" : "");
  return env;
}

function exampleSecret(): Doc {
  return jsYaml.load(readFileSync(join(manifests, "secret.example.yaml"), "utf8")) as Doc;
}

/** Every ROLLCALL_* variable node-agent/config.ts reads. */
function agentSettings(): Set<string> {
  const source = readFileSync(join(__dirname, "..", "..", "node-agent", "config.ts"), "utf8");
  return new Set(source.match(/"(ROLLCALL_[A-Z_]+|NODE_NAME)"/g)!.map((s) => s.slice(1, -1)).concat(source.match(/env\.(ROLLCALL_[A-Z_]+)/g)!.map((s) => s.slice(4))));
}

const variants: [string, () => string][] = [
  ["the default install", () => manifests],
  ["the kured-values example", () => join(manifests, "examples", "kured-values")],
  ["the sentinel-command component", () => overlay(["sentinel-command"])],
  ["the sentinel-host-root component", () => overlay(["sentinel-host-root"])],
  ["the reboot-signal component", () => overlay(["reboot-signal"])],
];

describe("the agent's kustomize manifests", () => {
  it("render a namespace, a service account, the settings ConfigMap and the DaemonSet, each within the Kubernetes schema", async () => {
    const docs = await render(manifests);
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"]);
    assert.equal(agentOf(docs).image, "rollcall-agent:0.1.0");
  });

  it("notice a field outside the Kubernetes schema", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rollcall-overlay-"));
    tempDirs.push(dir);
    writeFileSync(
      join(dir, "kustomization.yaml"),
      `resources:\n  - ${relative(dir, join(manifests, "base"))}\npatches:\n  - target: { kind: DaemonSet }\n    patch: |-\n      - op: add\n        path: /spec/template/spec/tolerationz\n        value: []\n`,
    );
    await assert.rejects(render(dir), /outside the Kubernetes schema/);
  });

  for (const [name, dir] of variants) {
    it(`keep, in ${name}, the agent's names and identity: no RBAC, no API token, only the projected token for Rollcall, Linux nodes only`, async () => {
      const docs = await render(dir());
      assert.deepEqual(docs.filter((d) => /Role|Binding/.test(d.kind)), [], "no Role, ClusterRole or binding");
      const account = docs.find((d) => d.kind === "ServiceAccount")!;
      assert.deepEqual([account.metadata.namespace, account.metadata.name], [NAMESPACE, SERVICE_ACCOUNT]);
      assert.equal(account.automountServiceAccountToken, false);
      assert.deepEqual([daemonSet(docs).metadata.namespace, daemonSet(docs).metadata.name], [NAMESPACE, DAEMONSET]);
      const pod = podOf(docs);
      assert.equal(pod.serviceAccountName, SERVICE_ACCOUNT);
      assert.equal(pod.automountServiceAccountToken, false);
      const tokens = pod.volumes.flatMap((v: Doc) => (v.projected?.sources ?? []).map((s: Doc) => s.serviceAccountToken).filter(Boolean));
      assert.deepEqual(tokens, [{ audience: "rollcall", expirationSeconds: 3600, path: "token" }]);
      assert.equal(pod.nodeSelector["kubernetes.io/os"], "linux", "Windows node pools are excluded");
      const agent = agentOf(docs);
      assert.deepEqual(agent.env.find((e: Doc) => e.name === "NODE_NAME").valueFrom, { fieldRef: { fieldPath: "spec.nodeName" } });
      assert.deepEqual(agent.envFrom[0], { secretRef: { name: "rollcall-agent" } });
    });

    it(`give the agent, in ${name}, settings it accepts and nothing it does not read`, async () => {
      const docs = await render(dir());
      const known = agentSettings();
      const settings = docs.find((d) => d.kind === "ConfigMap")!.data as Record<string, string>;
      for (const key of Object.keys(settings)) assert.ok(known.has(key), `${key} is not a setting of the agent`);
      parseAgentConfig(agentEnv(docs));
    });
  }

  it("mount the host's sentinel folder and boot id read-only, and tolerate every taint so every Linux node is covered", async () => {
    const docs = await render(manifests);
    const pod = podOf(docs);
    const mounts = Object.fromEntries(agentOf(docs).volumeMounts.map((m: Doc) => [m.name, m]));
    const paths = Object.fromEntries(pod.volumes.filter((v: Doc) => v.hostPath).map((v: Doc) => [v.name, v.hostPath.path]));
    assert.equal(paths["host-var-run"], "/var/run");
    assert.equal(paths["boot-id"], "/proc/sys/kernel/random/boot_id");
    assert.equal(mounts["host-var-run"].readOnly, true);
    assert.equal(mounts["boot-id"].readOnly, true);
    assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
    const config = parseAgentConfig(agentEnv(docs));
    assert.equal(config.sentinelFile, `${mounts["host-var-run"].mountPath}/reboot-required`, "the sentinel is read where the host's /var/run is mounted");
    assert.equal(config.bootIdFile, mounts["boot-id"].mountPath);
    assert.equal(config.stateDir, mounts.state.mountPath);
    assert.equal(config.tokenFile, `${mounts["rollcall-token"].mountPath}/token`);
  });

  it("label the namespace privileged for Pod Security Admission, which the agent's privileged container, hostPID and host paths need", async () => {
    const docs = await render(manifests);
    const labels = docs.find((d) => d.kind === "Namespace")!.metadata.labels;
    for (const mode of ["enforce", "audit", "warn"]) assert.equal(labels[`pod-security.kubernetes.io/${mode}`], "privileged", mode);
    // Each of these is refused by the baseline level, so the label is needed, not decoration.
    const pod = podOf(docs);
    assert.equal(pod.hostPID, true);
    assert.equal(agentOf(docs).securityContext.privileged, true);
    assert.ok(pod.volumes.some((v: Doc) => v.hostPath));
  });

  it("run at system-node-critical priority with a memory request at least the measured idle RSS and a limit above it", async () => {
    const docs = await render(manifests);
    assert.equal(podOf(docs).priorityClassName, "system-node-critical");
    const { requests, limits } = agentOf(docs).resources;
    const mib = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? NaN);
    assert.ok(mib(requests.memory) >= MEASURED_IDLE_RSS_MIB, `request ${requests.memory} covers the idle RSS of ${MEASURED_IDLE_RSS_MIB} MiB`);
    assert.ok(mib(limits.memory) >= 1.5 * MEASURED_IDLE_RSS_MIB, `limit ${limits.memory} leaves room for a check-in`);
    assert.ok(requests.cpu);
  });

  it("switch, with the sentinel-command component, to a command run in the host's mount namespace", async () => {
    const config = parseAgentConfig(agentEnv(await render(overlay(["sentinel-command"]))));
    assert.deepEqual(config.sentinelCommand, ["nsenter", "-m/proc/1/ns/mnt", "--", "/usr/bin/test", "-f", "/var/run/reboot-required"]);
  });

  it("let, with the sentinel-host-root component, the sentinel be any host path, through a read-only mount of the host's root", async () => {
    const docs = await render(overlay(["sentinel-host-root"]));
    const root = podOf(docs).volumes.find((v: Doc) => v.name === "host-root");
    assert.deepEqual(root.hostPath, { path: "/", type: "Directory" });
    const mount = agentOf(docs).volumeMounts.find((m: Doc) => m.name === "host-root");
    assert.equal(mount.readOnly, true);
    assert.equal(parseAgentConfig(agentEnv(docs)).sentinelFile, `${mount.mountPath}/var/run/reboot-required`);
  });

  it("reboot, with the reboot-signal component, by sending SIGRTMIN+5 to the host's systemd as kured's signal method does", async () => {
    const docs = await render(overlay(["reboot-signal"]));
    assert.deepEqual(parseAgentConfig(agentEnv(docs)).rebootCommand, ["kill", "-39", "1"]);
    assert.equal(podOf(docs).hostPID, true, "PID 1 is the host's only with hostPID");
  });

  it("cover in the kured-values example every value of kured's Helm chart that applies to the agent", async () => {
    const docs = await render(join(manifests, "examples", "kured-values"));
    const pod = podOf(docs);
    const agent = agentOf(docs);
    assert.equal(agent.image, "ghcr.io/example/rollcall-agent:0.1.0", "image.repository and image.tag");
    assert.deepEqual(pod.tolerations.map((t: Doc) => t.key), ["CriticalAddonsOnly", "sku"], "tolerations");
    assert.deepEqual(pod.nodeSelector, { "kubernetes.io/os": "linux", "kubernetes.azure.com/mode": "user" }, "nodeSelector, still Linux only");
    assert.deepEqual(agent.resources, { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "128Mi" } }, "resources");
    assert.equal(pod.priorityClassName, "system-cluster-critical", "priorityClassName");
    assert.deepEqual(daemonSet(docs).spec.template.metadata.annotations, { "example.com/team": "platform" }, "podAnnotations");
    const config = parseAgentConfig(agentEnv(docs));
    assert.equal(config.backoffMaxMs, 600_000, "extraEnvVars");
    assert.deepEqual(config.sentinelCommand?.slice(0, 4), ["nsenter", "-m/proc/1/ns/mnt", "--", "sh"], "configuration.rebootSentinelCommand, the overlay's own over the component's");
    assert.deepEqual(config.rebootCommand, ["kill", "-39", "1"], "configuration.rebootMethod: signal");
  });
});
