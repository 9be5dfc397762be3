import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningAzurite, freePort, startAzurite } from "../../local/azurite/startAzurite";
import { agentToken, buildDemoCluster } from "../../local/demo/demoCluster";
import { bootIdOf, startSimAgents, type SimAgents } from "../../local/demo/simAgents";
import { type FunctionsHost, startFunctionsHost } from "../../local/functionsHost/host";
import { SimCluster } from "../../local/kubeSim";
import { type AgentLoop, createAgent, type CycleOutcome, parseAgentConfig } from "../../node-agent/agent";
import { CallbackRebooter } from "../../node-agent/rebooter";
import { resetForTests } from "../../shared/orchestrator/fromConfig";

/** The node agent against a real local orchestrator: the function app on the local host, Azurite, the simulated API server. */

let azurite: RunningAzurite;
let sim: SimCluster;
let host: FunctionsHost;
let nodes: string[];
let root: string;
const hostLines: string[] = [];
const saved = { ...process.env };

before(async () => {
  azurite = await startAzurite();
  sim = await SimCluster.start({ terminationDelayMs: 100, podStartDelayMs: 100, evictionRetryAfterSeconds: 1 });
  nodes = buildDemoCluster(sim, { nodes: 5, podsPerNode: 1 });
  Object.assign(process.env, {
    ROLLCALL_STORAGE_CONNECTION: azurite.connectionString,
    // Two configured clusters over the same simulated API server: each has its own lock.
    ROLLCALL_CLUSTERS: JSON.stringify([
      { name: "sim", kubeconfig: sim.kubeconfig },
      { name: "other", kubeconfig: sim.kubeconfig },
    ]),
    ROLLCALL_CHECKIN_IDLE_SECONDS: "5",
    ROLLCALL_CHECKIN_BUSY_SECONDS: "1",
    ROLLCALL_AGENT_AUTH: "tokenreview",
    ROLLCALL_AGENT_AUDIENCE: "rollcall",
  });
  resetForTests();
  host = await startFunctionsHost({ port: 0, timers: false, log: (line) => hostLines.push(line) });
  root = await mkdtemp(join(tmpdir(), "rollcall-agent-it-"));
});

after(async () => {
  await host?.stop();
  await sim?.stop();
  await azurite?.stop();
  await rm(root, { recursive: true, force: true });
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  Object.assign(process.env, saved);
  resetForTests();
});

/** Resolves once `predicate` holds, polling; fails after a generous bound (a hang, not a timing assertion). */
async function eventually(what: string, predicate: () => boolean | Promise<boolean>, bound = 60_000): Promise<void> {
  const end = Date.now() + bound;
  while (Date.now() < end) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`never happened: ${what}`);
}

function record(agents: SimAgents): Map<string, CycleOutcome[]> {
  const outcomes = new Map<string, CycleOutcome[]>();
  for (const { node, agent } of agents.agents) {
    outcomes.set(node, []);
    agent.onCycle((o) => outcomes.get(node)!.push(o));
  }
  return outcomes;
}

const isIdleAgain = (node: string) => () =>
  hostLines.some((l) => l.includes(`node=${node} from=releasing to=idle`)) && !sim.getNode(node)?.spec?.unschedulable;

describe("the node agent with a real local orchestrator", () => {
  it("detects the sentinel, reboots its node once for the lease, and checks in after boot with the new boot id", async () => {
    const node = nodes[0]!;
    const agents = await startSimAgents({ sim, nodes: [node], cluster: "sim", url: host.url, functionKey: host.key, root: join(root, "one"), downMs: 300 });
    const outcomes = record(agents);
    const bootBefore = bootIdOf(sim, node);
    agents.start();
    await eventually("the first idle check-in", () => outcomes.get(node)!.some((o) => o.kind === "answered" && o.answer.action === "none"));
    await agents.markRebootRequired(node, ["linux-image-azure"]);
    await eventually("the node back in service", isIdleAgain(node));
    await agents.stop();

    const answered = outcomes.get(node)!.filter((o): o is Extract<CycleOutcome, { kind: "answered" }> => o.kind === "answered");
    const order = answered.find((o) => o.rebooted);
    assert.ok(order, "the agent rebooted on a reboot answer");
    assert.equal(order.answer.action, "reboot");
    assert.ok(order.answer.leaseId);
    assert.equal(agents.agents[0]!.reboots, 1, "exactly one reboot");
    const bootAfter = bootIdOf(sim, node);
    assert.notEqual(bootAfter, bootBefore);
    const afterBoot = answered.filter((o) => o.request.bootId === bootAfter);
    assert.ok(afterBoot.length > 0, "checked in with the new boot id");
    assert.equal(afterBoot[0]!.request.leaseId, order.answer.leaseId, "echoing the lease it rebooted for");
    assert.equal(afterBoot[0]!.request.rebootRequired, false, "the sentinel is gone after boot");
    const lease = JSON.parse(await readFile(join(root, "one", node, "state", "lease.json"), "utf8")) as { leaseId: string; bootId: string };
    assert.deepEqual({ leaseId: lease.leaseId, bootId: lease.bootId }, { leaseId: order.answer.leaseId, bootId: bootBefore });
  });

  it("waits, its check-in held, while another node holds the lock, then takes its turn", async () => {
    const pair = [nodes[1]!, nodes[2]!];
    const agents = await startSimAgents({ sim, nodes: pair, cluster: "sim", url: host.url, functionKey: host.key, root: join(root, "two"), downMs: 300 });
    const outcomes = record(agents);
    const changes: string[] = [];
    const off = sim.onNodeChange((c) => changes.push(`${c.node} ${c.change}`));
    for (const node of pair) await agents.markRebootRequired(node);
    agents.start();
    await eventually("both nodes back in service", () => pair.every((n) => isIdleAgain(n)()));
    off();
    await agents.stop();

    const [first, second] = [...pair].sort((a, b) => changes.indexOf(`${a} cordoned`) - changes.indexOf(`${b} cordoned`)) as [string, string];
    // The second node's check-in was held while the first took its turn (docs/api.md "Held check-ins"):
    // its agent heard of its turn in the answer to a check-in made while it was queued.
    const answers = outcomes.get(second)!.filter((o) => o.kind === "answered");
    const ordered = answers.findIndex((o) => o.kind === "answered" && o.answer.action === "reboot");
    assert.ok(ordered >= 0, "the second node was ordered to reboot");
    assert.ok(ordered <= 2, `few check-ins of the queued node before its order, not one per busy interval: ${answers.map((o) => (o.kind === "answered" ? `${o.answer.action}/${o.answer.state}` : "")).join(", ")}`);
    const firstBack = changes.indexOf(`${first} uncordoned`);
    const secondCordoned = changes.indexOf(`${second} cordoned`);
    assert.ok(firstBack >= 0 && secondCordoned > firstBack, `the second node was cordoned only after the first was back: ${changes.join(", ")}`);
    assert.deepEqual(agents.agents.map((a) => a.reboots), [1, 1]);
  });

  it("confirms the reboot of a node whose lease file was damaged while it was down, and keeps checking in", async () => {
    const node = nodes[4]!;
    const dir = join(root, "damaged", node);
    await mkdir(join(dir, "state"), { recursive: true });
    const bootIdFile = join(dir, "boot_id");
    const sentinel = join(dir, "reboot-required");
    await writeFile(bootIdFile, bootIdOf(sim, node));
    await writeFile(join(dir, "token"), agentToken(sim, node, "rollcall"));
    const config = parseAgentConfig({
      ROLLCALL_URL: host.url,
      ROLLCALL_FUNCTION_KEY: host.key,
      ROLLCALL_CLUSTER: "sim",
      NODE_NAME: node,
      ROLLCALL_TOKEN_FILE: join(dir, "token"),
      ROLLCALL_SENTINEL_FILE: sentinel,
      ROLLCALL_BOOT_ID_FILE: bootIdFile,
      ROLLCALL_STATE_DIR: join(dir, "state"),
      ROLLCALL_BACKOFF_BASE_SECONDS: "0.1",
      ROLLCALL_BACKOFF_MAX_SECONDS: "0.5",
    });
    const leaseFile = join(dir, "state", "lease.json");
    const lines: { level: string; msg: string }[] = [];
    let reboots = 0;
    // The node goes down and comes back with its lease record lost (an unclean shutdown, a full disk).
    const rebooter = new CallbackRebooter(async () => {
      reboots++;
      const bootId = await sim.rebootNode(node, { downMs: 300 });
      await writeFile(leaseFile, "null");
      await writeFile(bootIdFile, `${bootId}\n`);
      await rm(sentinel, { force: true });
    });
    const agent = createAgent(config, { rebooter, log: (level, msg) => lines.push({ level, msg }) });
    const outcomes: CycleOutcome[] = [];
    agent.onCycle((o) => outcomes.push(o));
    await writeFile(sentinel, "");
    agent.start();
    try {
      await eventually("the node back in service", isIdleAgain(node));
    } finally {
      await agent.stop();
    }
    assert.equal(reboots, 1);
    assert.ok(lines.some((l) => l.level === "error" && /lease record .* is damaged/.test(l.msg)), "the damage is logged");
    assert.equal(await readFile(`${leaseFile}.damaged`, "utf8"), "null", "and the damaged record kept aside");
    const afterBoot = outcomes.filter((o) => o.kind === "answered" && o.request.bootId === bootIdOf(sim, node));
    assert.ok(afterBoot.length > 0, "checked in with the new boot id");
    assert.ok(outcomes.every((o) => o.kind === "answered"), "no check-in failed over the damaged file");
  });

  it("does not reboot twice for one lease, even after a restart, when the node does not come back with a new boot id", async () => {
    const node = nodes[3]!;
    const dir = join(root, "restart", node);
    await mkdir(join(dir, "state"), { recursive: true });
    await writeFile(join(dir, "boot_id"), bootIdOf(sim, node));
    await writeFile(join(dir, "token"), agentToken(sim, node, "rollcall"));
    await writeFile(join(dir, "reboot-required"), "");
    const config = parseAgentConfig({
      ROLLCALL_URL: host.url,
      ROLLCALL_FUNCTION_KEY: host.key,
      ROLLCALL_CLUSTER: "other",
      NODE_NAME: node,
      ROLLCALL_TOKEN_FILE: join(dir, "token"),
      ROLLCALL_SENTINEL_FILE: join(dir, "reboot-required"),
      ROLLCALL_BOOT_ID_FILE: join(dir, "boot_id"),
      ROLLCALL_STATE_DIR: join(dir, "state"),
      ROLLCALL_WATCH: "false",
    });
    const reboots: string[] = [];
    const lines: string[] = [];
    // A reboot command that "succeeds" but the machine never goes down: the boot id stays the same.
    const make = () => createAgent(config, { rebooter: new CallbackRebooter(async (lease) => void reboots.push(lease)), log: (_l, msg) => lines.push(msg) });
    const first = make();
    let outcome: CycleOutcome | undefined;
    for (let i = 0; i < 60 && reboots.length === 0; i++) {
      outcome = await first.cycle();
      if (reboots.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(reboots.length, 1, `the agent rebooted once (last: ${JSON.stringify(outcome)})`);
    const restarted: AgentLoop = make();
    const again = await restarted.cycle();
    assert.equal(again.kind === "answered" && again.answer.action, "reboot", "the orchestrator still orders the reboot for the same lease");
    assert.equal(again.kind === "answered" && again.answer.leaseId, reboots[0]);
    assert.equal(reboots.length, 1, "the restarted agent did not reboot again");
    assert.ok(lines.includes("already rebooted for this lease: not rebooting again"));
  });

  it("backs off while the orchestrator is down and never reboots, then checks in once it is back", async () => {
    const node = nodes[3]!;
    const port = await freePort();
    const dir = join(root, "down", node);
    await mkdir(join(dir, "state"), { recursive: true });
    await writeFile(join(dir, "boot_id"), bootIdOf(sim, node));
    await writeFile(join(dir, "token"), agentToken(sim, node, "rollcall"));
    await writeFile(join(dir, "reboot-required"), "");
    const config = parseAgentConfig({
      ROLLCALL_URL: `http://127.0.0.1:${port}`,
      ROLLCALL_FUNCTION_KEY: host.key,
      ROLLCALL_CLUSTER: "sim",
      NODE_NAME: node,
      ROLLCALL_TOKEN_FILE: join(dir, "token"),
      ROLLCALL_SENTINEL_FILE: join(dir, "reboot-required"),
      ROLLCALL_BOOT_ID_FILE: join(dir, "boot_id"),
      ROLLCALL_STATE_DIR: join(dir, "state"),
      ROLLCALL_BACKOFF_BASE_SECONDS: "0.1",
      ROLLCALL_BACKOFF_MAX_SECONDS: "0.8",
    });
    let reboots = 0;
    const agent = createAgent(config, { rebooter: new CallbackRebooter(async () => void reboots++), log: () => {} });
    const outcomes: CycleOutcome[] = [];
    agent.onCycle((o) => outcomes.push(o));
    agent.start();
    await eventually("five failed check-ins", () => outcomes.length >= 5);
    const failures = outcomes.slice(0, 5);
    assert.ok(failures.every((o) => o.kind === "failed" && o.unavailable), "each check-in failed as unavailable");
    failures.forEach((o, i) => {
      const ceiling = Math.min(800, 100 * 2 ** i);
      assert.ok(o.nextMs >= ceiling / 2 && o.nextMs <= ceiling, `attempt ${i + 1} waits between ${ceiling / 2} and ${ceiling} ms (got ${o.nextMs})`);
    });
    assert.equal(reboots, 0);

    const back = await startFunctionsHost({ port, key: host.key, timers: false, log: () => {} });
    try {
      await eventually("a check-in answered by the orchestrator that came back", () => outcomes.some((o) => o.kind === "answered"));
    } finally {
      await agent.stop();
      await back.stop();
    }
    const ordered = outcomes.filter((o) => o.kind === "answered" && o.rebooted && o.answer.action === "reboot" && o.answer.leaseId).length;
    assert.equal(reboots, ordered, "a reboot only ever followed a reboot answer carrying a lease");
  });
});
