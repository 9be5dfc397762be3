import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const dir = join(__dirname, "..", "..", "node-agent", "manifests");
type Doc = Record<string, any>;

/** Every document of every file the kustomization lists, parsed by client-node's own YAML loader. */
async function manifests(): Promise<{ kustomization: Doc; docs: Doc[] }> {
  const { loadAllYaml, loadYaml } = await import("@kubernetes/client-node");
  const kustomization = loadYaml<Doc>(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  const docs = (kustomization.resources as string[]).flatMap((file) => loadAllYaml(readFileSync(join(dir, file), "utf8")) as Doc[]);
  // The loader returns client-node's model classes; compare their plain data.
  return { kustomization, docs: JSON.parse(JSON.stringify(docs)) as Doc[] };
}

describe("the agent's kustomize manifests", () => {
  it("parse, and list only the namespace, the service account and the DaemonSet", async () => {
    const { kustomization, docs } = await manifests();
    assert.equal(kustomization.kind, "Kustomization");
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["DaemonSet", "Namespace", "ServiceAccount"]);
  });

  it("grant the agent no Kubernetes rights at all: no Role, ClusterRole or binding, no API token mounted", async () => {
    const { docs } = await manifests();
    assert.deepEqual(docs.filter((d) => /Role|Binding/.test(d.kind)), []);
    const account = docs.find((d) => d.kind === "ServiceAccount")!;
    assert.equal(account.automountServiceAccountToken, false);
    const pod = docs.find((d) => d.kind === "DaemonSet")!.spec.template.spec;
    assert.equal(pod.serviceAccountName, account.metadata.name);
    assert.equal(pod.automountServiceAccountToken, false);
  });

  it("give the agent only a projected token for Rollcall's audience as its identity", async () => {
    const { docs } = await manifests();
    const pod = docs.find((d) => d.kind === "DaemonSet")!.spec.template.spec;
    const tokens = pod.volumes.flatMap((v: Doc) => (v.projected?.sources ?? []).map((s: Doc) => s.serviceAccountToken).filter(Boolean));
    assert.deepEqual(tokens, [{ audience: "rollcall", expirationSeconds: 3600, path: "token" }]);
    const agent = pod.containers[0];
    assert.deepEqual(
      agent.env.find((e: Doc) => e.name === "NODE_NAME").valueFrom,
      { fieldRef: { fieldPath: "spec.nodeName" } },
    );
    assert.deepEqual(agent.envFrom, [{ secretRef: { name: "rollcall-agent" } }]);
  });

  it("mount the host's sentinel folder and boot id read-only, and tolerate every taint so every node is covered", async () => {
    const { docs } = await manifests();
    const pod = docs.find((d) => d.kind === "DaemonSet")!.spec.template.spec;
    const mounts = Object.fromEntries(pod.containers[0].volumeMounts.map((m: Doc) => [m.name, m]));
    const paths = Object.fromEntries(pod.volumes.filter((v: Doc) => v.hostPath).map((v: Doc) => [v.name, v.hostPath.path]));
    assert.equal(paths["host-var-run"], "/var/run");
    assert.equal(paths["boot-id"], "/proc/sys/kernel/random/boot_id");
    assert.equal(mounts["host-var-run"].readOnly, true);
    assert.equal(mounts["boot-id"].readOnly, true);
    assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
  });
});
