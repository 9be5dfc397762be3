import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { WeeklyWindow } from "../../shared/policy/policy";
import { windowHoldReason, windowOccurrences, windowStateAt } from "../../shared/policy/window";

const window = (start: string, end: string, timeZone: string, days: WeeklyWindow["days"] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]): WeeklyWindow => ({
  days,
  start,
  end,
  timeZone,
});
const at = (iso: string) => new Date(iso);
const iso = (d: Date | undefined) => d?.toISOString();
const MIN = 60_000;

describe("reboot windows", () => {
  it("opens exactly at the start time in the window's time zone", () => {
    const w = [window("02:00", "05:00", "Europe/Berlin")];
    assert.equal(windowStateAt(w, at("2026-01-14T00:59:59Z")).open, false);
    const state = windowStateAt(w, at("2026-01-14T01:00:00Z"));
    assert.equal(state.open, true);
    assert.equal(state.open && iso(state.closesAt), "2026-01-14T04:00:00.000Z");
  });

  it("closes exactly at the end time and names when it opens next", () => {
    const w = [window("02:00", "05:00", "Europe/Berlin", ["sat"])];
    const state = windowStateAt(w, at("2026-01-17T04:00:00Z"));
    assert.equal(state.open, false);
    assert.equal(!state.open && iso(state.opensAt), "2026-01-24T01:00:00.000Z");
    assert.match(windowHoldReason(state, at("2026-01-17T04:00:00Z"), 15 * MIN, "before-lock") ?? "", /outside the reboot window; it next opens Sat 2026-01-24 02:00/);
  });

  it("follows an overnight window past midnight into the next day", () => {
    const w = [window("22:00", "06:00", "America/New_York", ["fri"])];
    assert.equal(windowStateAt(w, at("2026-01-17T08:00:00Z")).open, true, "Saturday 03:00 New York belongs to Friday's window");
    assert.equal(windowStateAt(w, at("2026-01-17T11:00:00Z")).open, false, "Saturday 06:00 New York is past its end");
    assert.equal(windowStateAt(w, at("2026-01-16T02:00:00Z")).open, false, "Thursday night is not a Friday window");
  });

  it("treats a window on consecutive days as one when they touch, so a drain may span midnight", () => {
    const state = windowStateAt([window("00:00", "24:00", "UTC")], at("2026-01-14T23:55:00Z"));
    assert.equal(state.open, true);
    assert.ok(state.open && state.closesAt > at("2026-01-20T00:00:00Z"));
    assert.equal(windowHoldReason(state, at("2026-01-14T23:55:00Z"), 15 * MIN, "before-lock"), undefined);
  });

  it("moves a start inside the spring-forward gap in Europe/Berlin to the same time after the gap", () => {
    // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    const [occurrence] = windowOccurrences(window("02:30", "05:00", "Europe/Berlin", ["sun"]), at("2026-03-29T00:00:00Z"), at("2026-03-29T05:00:00Z"));
    assert.equal(iso(occurrence?.start), "2026-03-29T01:30:00.000Z", "03:30 CEST");
    assert.equal(iso(occurrence?.end), "2026-03-29T03:00:00.000Z", "05:00 CEST");
  });

  it("keeps the wall-clock times across the spring-forward change in America/New_York", () => {
    const w = window("01:00", "04:00", "America/New_York", ["sat", "sun"]);
    const [saturday, sunday] = windowOccurrences(w, at("2026-03-07T00:00:00Z"), at("2026-03-08T12:00:00Z"));
    assert.equal(iso(saturday?.start), "2026-03-07T06:00:00.000Z", "01:00 EST");
    assert.equal(iso(sunday?.start), "2026-03-08T06:00:00.000Z", "01:00 EST, before the jump at 02:00");
    assert.equal(iso(sunday?.end), "2026-03-08T08:00:00.000Z", "04:00 EDT: the window is one hour shorter that night");
  });

  it("uses the second occurrence of an ambiguous start on the fall-back night in Europe/Berlin", () => {
    // 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    const [occurrence] = windowOccurrences(window("02:30", "05:00", "Europe/Berlin", ["sun"]), at("2026-10-25T00:00:00Z"), at("2026-10-25T05:00:00Z"));
    assert.equal(iso(occurrence?.start), "2026-10-25T01:30:00.000Z", "02:30 CET");
    assert.equal(iso(occurrence?.end), "2026-10-25T04:00:00.000Z", "05:00 CET");
  });

  it("is an hour longer in UTC on the fall-back night in America/New_York", () => {
    const [occurrence] = windowOccurrences(window("00:00", "04:00", "America/New_York", ["sun"]), at("2026-11-01T00:00:00Z"), at("2026-11-01T12:00:00Z"));
    assert.equal(iso(occurrence?.start), "2026-11-01T04:00:00.000Z", "00:00 EDT");
    assert.equal(iso(occurrence?.end), "2026-11-01T09:00:00.000Z", "04:00 EST: five real hours");
  });

  it("does not start a drain that could not finish before the window closes", () => {
    const w = [window("02:00", "05:00", "UTC")];
    const now = at("2026-01-14T04:50:00Z");
    const reason = windowHoldReason(windowStateAt(w, now), now, 15 * MIN, "before-lock");
    assert.match(reason ?? "", /closes .* in 10 min, sooner than the drain timeout \(15 min\)/);
  });

  it("lets a drained node reboot while the window is still open, however little of it is left", () => {
    const w = [window("02:00", "05:00", "UTC")];
    const now = at("2026-01-14T04:50:00Z");
    assert.equal(windowHoldReason(windowStateAt(w, now), now, 15 * MIN, "before-reboot"), undefined);
  });

  it("is always open when no window is configured", () => {
    assert.equal(windowStateAt([], at("2026-01-14T04:50:00Z")).open, true);
  });
});
