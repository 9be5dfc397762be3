import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ServerClock } from "../../shared/storage/serverClock";

const SERVER = Date.parse("2026-12-01T10:00:00Z");
const header = (ms: number) => new Date(ms).toUTCString();

describe("the storage service's clock", () => {
  it("reads the local clock as it is until the service has answered", () => {
    const clock = new ServerClock(() => SERVER + 11 * 60_000);
    assert.equal(clock.now().getTime(), SERVER + 11 * 60_000);
  });

  it("measures on the service's clock when the local one runs 11 minutes ahead", () => {
    let local = SERVER + 11 * 60_000;
    const clock = new ServerClock(() => local);
    clock.observe(header(SERVER));
    assert.ok(Math.abs(clock.now().getTime() - SERVER) <= 1_000, clock.now().toISOString());
    local += 30_000;
    assert.ok(Math.abs(clock.now().getTime() - (SERVER + 30_000)) <= 1_000, "time keeps running at the local rate");
  });

  it("ignores differences within the Date header's precision and a missing or unreadable header", () => {
    const clock = new ServerClock(() => SERVER + 1_200);
    clock.observe(header(SERVER));
    clock.observe(undefined);
    clock.observe("not a date");
    assert.equal(clock.offsetMs, 0);
  });

  it("is not moved by one odd answer among several", () => {
    const clock = new ServerClock(() => SERVER);
    for (const at of [SERVER - 600_000, SERVER - 600_000, SERVER + 3_600_000, SERVER - 600_000]) clock.observe(header(at));
    assert.ok(Math.abs(clock.offsetMs + 600_000) <= 1_000, String(clock.offsetMs));
  });
});
