import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { history } from "../../functions/history";
import { historyAction, type HistoryEntry } from "../../shared/history/history";
import { getRollcall } from "../../shared/orchestrator/fromConfig";
import { type Answer, call, leaksInternals } from "../support/operatorCalls";
import { CLUSTER, useWorld } from "../support/world";

/**
 * `GET /history` is the one route that takes a continuation token. The fuzz run found a token whose
 * JSON holds a lone UTF-16 surrogate answering 500 (the SDK's URL encoding throws `URIError`); every
 * token that is not one this API handed out must be a 400 with a JSON body, a genuine one a page.
 */

const world = useWorld();

function getHistory(query: Record<string, string>): Promise<Answer> {
  return call(history, { method: "GET", path: `clusters/${CLUSTER}/history?${new URLSearchParams(query)}`, params: { cluster: CLUSTER } });
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const tokenOf = (value: unknown) => b64(JSON.stringify(value));

/** A small seeded generator, so a failing token can be reproduced. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => ((state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const pieces = ["a", "Z", "9", "!", "*", "-", "_", "~", "=", "+", "/", "?", "#", "\\", "%", "\u0000", "\u001f", "\u007f", "\u0085", "é", "€", "😀", "\ud800", "\udfff", "\ud83d", " ", '"', "'", "1!12!", "history:"];
  const text = (max: number) => Array.from({ length: int(max) }, () => pick(pieces)).join("");
  const value = (depth = 0): unknown =>
    pick([() => text(40), () => text(2_000), () => int(1e9), () => null, () => true, () => (depth < 2 ? [value(depth + 1)] : "x"), () => (depth < 2 ? { k: value(depth + 1) } : "y")])();
  return { int, pick, text, value };
}

function assertRefusedOrServed(answer: Answer, token: string): void {
  assert.ok(answer.status === 200 || answer.status === 400, `token ${JSON.stringify(token)} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  assert.ok(!leaksInternals(answer.text), `token ${JSON.stringify(token)} leaked internals: ${answer.text.slice(0, 300)}`);
  if (answer.status === 400) assert.equal(typeof answer.body.error.code, "string", "the 400 says what is wrong in JSON");
}

describe("history continuation tokens", () => {
  it("refuses the fuzz run's token with a lone surrogate, in either key, with 400 and a JSON body", async () => {
    world.configure();
    for (const token of [
      tokenOf({ nextPartitionKey: "prod", nextRowKey: "history:\ud800" }),
      tokenOf({ nextPartitionKey: "\udc00prod", nextRowKey: "history:" }),
      tokenOf({ nextPartitionKey: "cHJvZA==", nextRowKey: "aGlzdG9y\ud83d" }),
    ]) {
      const answer = await getHistory({ continuationToken: token });
      assert.equal(answer.status, 400, answer.text);
      assert.equal(answer.body.error.code, "invalid_continuation_token");
      assert.match(answer.body.error.message, /start again without it/);
    }
  });

  it("serves every page of a genuine token and answers 200 or 400, never 500, to 400 generated and mutated tokens", async () => {
    world.configure();
    const { table } = await getRollcall();
    for (let i = 0; i < 3; i++) {
      const entry: HistoryEntry = { cluster: CLUSTER, node: `h${i}`, outcome: "completed", why: "rebooted", requestedBy: "sentinel", reasons: [], finishedAt: new Date(Date.UTC(2026, 11, 1, i)).toISOString(), phases: {} };
      await table.submitTransaction([historyAction(entry)]);
    }
    const first = await getHistory({ limit: "1" });
    assert.equal(first.status, 200);
    const genuine: string = first.body.continuationToken;
    assert.ok(genuine, "a first page of one entry has a continuation token");
    const second = await getHistory({ limit: "1", continuationToken: genuine });
    assert.equal(second.status, 200, second.text);
    assert.deepEqual(second.body.entries.map((e: { node: string }) => e.node), ["h1"]);

    const r = random(20261201);
    const decoded = Buffer.from(genuine, "base64").toString("ascii");
    const generators: (() => string)[] = [
      () => tokenOf({ nextPartitionKey: r.value(), nextRowKey: r.value() }),
      () => tokenOf({ nextPartitionKey: r.text(60), nextRowKey: r.text(60) }),
      () => tokenOf({ nextPartitionKey: r.text(60), nextRowKey: r.text(60), extra: r.value() }),
      () => tokenOf(r.value()),
      () => b64(r.text(200)),
      () => Buffer.from(Array.from({ length: r.int(300) }, () => r.int(256))).toString("base64"),
      // The genuine token, mutated: one character replaced, cut, padding dropped, URL-safe alphabet.
      () => { const i = r.int(genuine.length); return genuine.slice(0, i) + r.pick(["A", "/", "+", "=", "_", "-"]) + genuine.slice(i + 1); },
      () => genuine.slice(0, r.int(genuine.length)),
      () => genuine.replace(/=+$/, ""),
      () => genuine.replace(/\+/g, "-").replace(/\//g, "_"),
      () => b64(decoded.replace(/"nextRowKey":"[^"]*"/, `"nextRowKey":${JSON.stringify(r.text(30))}`)),
      () => b64(decoded.slice(0, r.int(decoded.length))),
      () => tokenOf({ nextPartitionKey: "A".repeat(1_025), nextRowKey: "B" }),
      () => "A".repeat(4_097),
    ];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      const token = generators[i % generators.length]!();
      if (!token) continue;
      const answer = await getHistory({ limit: "1", continuationToken: token });
      assertRefusedOrServed(answer, token);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }
    assert.ok((statuses.get(400) ?? 0) > 300, `most generated tokens are refused: ${JSON.stringify([...statuses])}`);
  });
});
