import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SimCluster } from "../../local/kubeSim/simCluster";

/**
 * The simulated API server answers the requests captured from a genuine kube-apiserver v1.24
 * (`fixtures/k8s-captured`, a copy of `../shared/k8s-captured`) with the same status code, the same
 * body (names, uids and tokens aside) and the same Retry-After. Each fixture is replayed as raw HTTP
 * after arranging the situation it was captured in; a fixture without a scenario fails the suite.
 */

const FIXTURES = join(__dirname, "fixtures", "k8s-captured");

interface Capture {
  request: { method: string; path: string; body: any; claims?: any };
  response: { status: number; headers: Record<string, string>; body: any };
}

const capture = (name: string): Capture => JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8"));

let sim: SimCluster;
before(async () => {
  // Evicted pods stay Terminating for the whole file, as they do until the kubelet finishes them.
  sim = await SimCluster.start({ terminationDelayMs: 600_000 });
  for (const node of ["n1", "n2", "n3"]) sim.addNode(node);
});
after(() => sim.stop());

async function send(method: string, path: string, body: unknown): Promise<{ status: number; retryAfter: string | null; body: any }> {
  const response = await fetch(`${sim.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${sim.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
}

/** Replays a captured request with our names in place of the captured ones, and compares the answers. */
async function replay(name: string, rename: Record<string, string> = {}, normalize: (body: any) => any = (b) => b) {
  const { request, response } = capture(name);
  const swap = (text: string) => Object.entries(rename).reduce((t, [from, to]) => t.split(from).join(to), text);
  const body = request.body === "same, expirationSeconds: 60" ? { ...capture("tokenrequest-404-missing-pod").request.body, spec: { ...capture("tokenrequest-404-missing-pod").request.body.spec, expirationSeconds: 60 } } : request.body;
  const answer = await send(request.method, swap(request.path), JSON.parse(swap(JSON.stringify(body))));
  assert.equal(answer.status, response.status, JSON.stringify(answer.body));
  assert.deepEqual(normalize(answer.body), normalize(JSON.parse(swap(JSON.stringify(response.body)))));
  assert.equal(answer.retryAfter, response.headers["retry-after"] ?? null, "Retry-After");
  return answer;
}

const scenarios = new Set<string>();
function conforms(fixture: string, title: string, run: () => Promise<void>): void {
  scenarios.add(fixture);
  it(`${title} (${fixture})`, run);
}

describe("the simulated API server against captured kube-apiserver answers", () => {
  describe("evictions", () => {
    let apiPods: string[] = [];
    before(() => {
      apiPods = sim.addDeployment("apps", "api", { replicas: 3, pdb: { minAvailable: 2 } }).pods.map((p) => p.metadata.name);
    });

    conforms("eviction-201-success", "evicts a pod its budget allows, answering 201 with a Status", async () => {
      await replay("eviction-201-success", { "api-5cd97584d6-kdmdh": apiPods[0]! });
    });

    conforms("eviction-429-budget-exhausted-api", "refuses the next one with 429 DisruptionBudget and no Retry-After", async () => {
      await replay("eviction-429-budget-exhausted-api", { "api-5cd97584d6-4fwgw": apiPods[1]! });
    });

    conforms("eviction-429-dry-run", "answers a dry run the same 429", async () => {
      await replay("eviction-429-dry-run", { "api-5cd97584d6-4fwgw": apiPods[1]! });
    });

    conforms("eviction-201-already-terminating", "evicts an already terminating pod without asking its budget", async () => {
      await replay("eviction-201-already-terminating", { "api-5cd97584d6-kdmdh": apiPods[0]! });
    });

    conforms("eviction-404-missing-pod", "answers 404 NotFound for a missing pod", async () => {
      await replay("eviction-404-missing-pod");
    });

    conforms("eviction-429-pdb-still-processing", "refuses while the budget's status lags its spec, with Retry-After 10", async () => {
      const lag = sim.lagPdbStatus("apps", "api", { minAvailable: 1 });
      try {
        await replay("eviction-429-pdb-still-processing", { "api-5cd97584d6-4fwgw": apiPods[2]! });
      } finally {
        lag.catchUp();
      }
    });

    describe("of a budget at its minimum", () => {
      let webPods: { name: string; node: string }[] = [];
      before(() => {
        webPods = sim.addDeployment("apps", "web", { replicas: 3, pdb: { minAvailable: 2 } }).pods.map((p) => ({ name: p.metadata.name, node: p.spec.nodeName }));
      });

      conforms("eviction-201-not-ready-pod-budget-zero", "evicts a Running but not Ready pod while the healthy ones meet the budget", async () => {
        const unready = webPods[0]!;
        sim.setNodeReady(unready.node, false);
        try {
          assert.equal(sim.pdbs("apps").find((p) => p.metadata.name === "web")?.status.disruptionsAllowed, 0);
          await replay("eviction-201-not-ready-pod-budget-zero", { "web-79cf64d67b-7hzt5": unready.name });
        } finally {
          sim.setNodeReady(unready.node, true);
        }
      });

      conforms("eviction-429-budget-exhausted-web", "refuses a Ready pod of a budget with no disruption left", async () => {
        await replay("eviction-429-budget-exhausted-web", { "web-79cf64d67b-bvtc4": webPods[1]!.name });
      });

      conforms("eviction-500-multiple-pdbs", "answers a bare 500, without reason or details, when two budgets select the pod", async () => {
        sim.addPdb("apps", "web-too", { selector: { app: "web" }, minAvailable: 1 });
        await replay("eviction-500-multiple-pdbs", { "web-79cf64d67b-7hzt5": webPods[2]!.name });
        assert.ok(sim.getPod("apps", webPods[2]!.name), "the pod is not deleted");
      });
    });
  });

  describe("TokenReview", () => {
    let pod: { name: string; uid: string };
    before(() => {
      const created = sim.addPod("kube-system", "rollcall-agent-wr258", { node: "n1" });
      pod = { name: created.metadata.name, uid: created.metadata.uid };
    });
    const token = () => sim.issueServiceAccountToken({ namespace: "kube-system", serviceAccount: "rollcall-agent", pod: pod.name, audiences: ["rollcall"] });
    /** The request body of a capture with our token in place of the redacted one. */
    const reviewOf = (fixture: string, value: string) => ({ ...capture(fixture).request.body, spec: { ...capture(fixture).request.body.spec, token: value } });
    const answered = async (fixture: string, value: string) => {
      const { response } = capture(fixture);
      const answer = await send("POST", capture(fixture).request.path, reviewOf(fixture, value));
      assert.equal(answer.status, response.status);
      const strip = (body: any) => ({ ...body, metadata: { creationTimestamp: body.metadata.creationTimestamp }, spec: { ...body.spec, token: "<token>" } });
      return { ours: strip(answer.body), theirs: strip(response.body) };
    };

    conforms("tokenreview-bound-pod-token", "authenticates a pod-bound token with the pod's name and uid in extra, and no node", async () => {
      const { ours, theirs } = await answered("tokenreview-bound-pod-token", token());
      theirs.status.user.uid = ours.status.user.uid;
      theirs.status.user.extra["authentication.kubernetes.io/pod-uid"] = [pod.uid];
      assert.deepEqual(ours, theirs);
    });

    conforms("tokenreview-forged-claims", "rejects a token whose claims were edited as a signature failure", async () => {
      const [header, payload, signature] = token().split(".");
      const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
      claims["kubernetes.io"].pod = { name: "x", uid: "y" };
      const { ours, theirs } = await answered("tokenreview-forged-claims", `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`);
      assert.deepEqual(ours, theirs);
    });

    conforms("tokenreview-no-audiences-given", "checks a review without audiences against the API server's own audience", async () => {
      const { ours, theirs } = await answered("tokenreview-no-audiences-given", token());
      assert.deepEqual(ours, theirs);
    });

    conforms("tokenreview-wrong-audience", "rejects a token for the audiences asked for when it carries others", async () => {
      const { ours, theirs } = await answered("tokenreview-wrong-audience", token());
      assert.deepEqual(ours, theirs);
    });

    conforms("tokenreview-after-bound-pod-deleted", "keeps accepting a deleted pod's token for its cache period, then invalidates it", async () => {
      const doomed = sim.addPod("kube-system", "rollcall-agent-kk4zd", { node: "n2" });
      const value = sim.issueServiceAccountToken({ namespace: "kube-system", serviceAccount: "rollcall-agent", pod: doomed.metadata.name, audiences: ["rollcall"] });
      sim.tokenAuthenticationCacheMs = 300;
      try {
        assert.equal((await send("POST", "/apis/authentication.k8s.io/v1/tokenreviews", reviewOf("tokenreview-after-bound-pod-deleted", value))).body.status.authenticated, true);
        sim.deletePod("kube-system", doomed.metadata.name);
        const cached = await send("POST", "/apis/authentication.k8s.io/v1/tokenreviews", reviewOf("tokenreview-after-bound-pod-deleted", value));
        assert.equal(cached.body.status.authenticated, true, "still accepted from the authentication cache right after the delete");
        await new Promise((resolve) => setTimeout(resolve, 350));
        const { ours, theirs } = await answered("tokenreview-after-bound-pod-deleted", value);
        assert.deepEqual(ours, theirs);
      } finally {
        sim.tokenAuthenticationCacheMs = 10_000;
      }
    });
  });

  describe("TokenRequest", () => {
    let uid = "";
    before(() => {
      uid = sim.addPod("kube-system", "rollcall-agent-req", { node: "n3" }).metadata.uid;
    });

    it("issues a bound token that TokenReview accepts", async () => {
      const request = capture("tokenrequest-409-pod-uid-mismatch").request;
      const body = { ...request.body, spec: { ...request.body.spec, boundObjectRef: { ...request.body.spec.boundObjectRef, name: "rollcall-agent-req", uid } } };
      const answer = await send("POST", request.path, body);
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      const review = await send("POST", "/apis/authentication.k8s.io/v1/tokenreviews", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: answer.body.status.token, audiences: ["rollcall"] } });
      assert.deepEqual(review.body.status.user.extra["authentication.kubernetes.io/pod-uid"], [uid]);
    });

    conforms("tokenrequest-409-pod-uid-mismatch", "refuses a bound object reference with another uid with 409 Conflict", async () => {
      await replay("tokenrequest-409-pod-uid-mismatch", { "rollcall-agent-wr258": "rollcall-agent-req" });
    });

    conforms("tokenrequest-404-missing-pod", "refuses a bound object reference to a missing pod with 404", async () => {
      await replay("tokenrequest-404-missing-pod");
    });

    conforms("tokenrequest-422-expiration-too-short", "refuses an expiration under ten minutes with 422 Invalid", async () => {
      await replay("tokenrequest-422-expiration-too-short");
    });
  });

  it("has a scenario for every captured answer", () => {
    const fixtures = readdirSync(FIXTURES)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.replace(/\.json$/, ""));
    assert.deepEqual(fixtures.filter((f) => !scenarios.has(f)), []);
  });
});
