import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromSdk, nextLegacyOccurrence, nextWindowOccurrence, notAllowedIntervals, type WindowSpec } from "../../shared/upgrade/maintenanceWindow";

const window = (overrides: Partial<WindowSpec>): WindowSpec => ({
  schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Sunday" } },
  durationHours: 4,
  utcOffset: "+00:00",
  startTime: "02:00",
  notAllowedDates: [],
  ...overrides,
});
const iso = (d: { start: Date; end: Date } | undefined) => d && { start: d.start.toISOString(), end: d.end.toISOString() };

describe("maintenance window occurrences", () => {
  it("places a weekly window on its weekday at the local start time converted to UTC", () => {
    const w = window({ utcOffset: "+05:30", schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Monday" } }, startTime: "01:00" });
    // Monday 2026-03-02 01:00 +05:30 = Sunday 2026-03-01 19:30 UTC.
    assert.deepEqual(iso(nextWindowOccurrence(w, new Date("2026-02-27T00:00:00Z"))), {
      start: "2026-03-01T19:30:00.000Z",
      end: "2026-03-01T23:30:00.000Z",
    });
  });

  it("keeps a weekly window at the same UTC hour across a daylight saving change, because the offset is fixed", () => {
    // Europe moves to summer time on 2026-03-29; a +01:00 window does not move with it.
    const w = window({ utcOffset: "+01:00" });
    const first = nextWindowOccurrence(w, new Date("2026-03-23T00:00:00Z"))!;
    const second = nextWindowOccurrence(w, first.end)!;
    const third = nextWindowOccurrence(w, second.end)!;
    assert.deepEqual([first, second, third].map((o) => o.start.toISOString()), [
      "2026-03-29T01:00:00.000Z",
      "2026-04-05T01:00:00.000Z",
      "2026-04-12T01:00:00.000Z",
    ]);
  });

  it("counts a window that opened before midnight as open after it, when the window names no startDate", () => {
    // AKS: without startDate "the maintenance window will be active right away"; a nightly 23:00-03:00
    // window is open at 00:30 in the occurrence that began the day before (a CI run after midnight failed on this).
    const nightly = window({ schedule: { daily: { intervalDays: 1 } }, startTime: "23:00" });
    assert.deepEqual(iso(nextWindowOccurrence(nightly, new Date("2026-12-02T00:30:00Z"))), { start: "2026-12-01T23:00:00.000Z", end: "2026-12-02T03:00:00.000Z" });
    const weekly = window({ schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Saturday" } }, startTime: "22:00", durationHours: 6 });
    assert.deepEqual(iso(nextWindowOccurrence(weekly, new Date("2026-12-06T01:00:00Z"))), { start: "2026-12-05T22:00:00.000Z", end: "2026-12-06T04:00:00.000Z" });
    // A startDate still holds the window back until that day.
    assert.equal(nextWindowOccurrence({ ...nightly, startDate: "2026-12-02" }, new Date("2026-12-02T00:30:00Z"))!.start.toISOString(), "2026-12-02T23:00:00.000Z");
  });

  it("returns the occurrence in progress so that apply mode can start inside an open window", () => {
    const w = window({});
    assert.equal(nextWindowOccurrence(w, new Date("2026-03-01T03:00:00Z"))!.start.toISOString(), "2026-03-01T02:00:00.000Z");
  });

  it("counts every-other-week windows from the start date", () => {
    const w = window({ schedule: { weekly: { intervalWeeks: 2, dayOfWeek: "Sunday" } }, startDate: "2026-03-01" });
    assert.equal(nextWindowOccurrence(w, new Date("2026-03-02T00:00:00Z"))!.start.toISOString(), "2026-03-15T02:00:00.000Z");
  });

  it("rolls a daily window with an interval across a month end", () => {
    const w = window({ schedule: { daily: { intervalDays: 3 } }, startDate: "2026-01-26", startTime: "22:00", utcOffset: "-05:00" });
    // 26, 29 Jan, 1 Feb … at 22:00 -05:00 = 03:00 UTC next day.
    assert.equal(nextWindowOccurrence(w, new Date("2026-01-31T00:00:00Z"))!.start.toISOString(), "2026-02-02T03:00:00.000Z");
  });

  it("skips months without the day of an absolute monthly window", () => {
    const w = window({ schedule: { absoluteMonthly: { intervalMonths: 1, dayOfMonth: 31 } } });
    assert.equal(nextWindowOccurrence(w, new Date("2026-04-01T00:00:00Z"))!.start.toISOString(), "2026-05-31T02:00:00.000Z");
  });

  it("honours the month interval of an absolute monthly window across a year end", () => {
    const w = window({ schedule: { absoluteMonthly: { intervalMonths: 3, dayOfMonth: 1 } }, startDate: "2025-10-01" });
    assert.equal(nextWindowOccurrence(w, new Date("2025-10-02T00:00:00Z"))!.start.toISOString(), "2026-01-01T02:00:00.000Z");
  });

  it("finds the last weekday of a month for a relative monthly window", () => {
    const w = window({ schedule: { relativeMonthly: { intervalMonths: 1, weekIndex: "Last", dayOfWeek: "Friday" } } });
    assert.equal(nextWindowOccurrence(w, new Date("2026-02-01T00:00:00Z"))!.start.toISOString(), "2026-02-27T02:00:00.000Z");
  });

  it("finds the first weekday of the next month once this month's has passed", () => {
    const w = window({ schedule: { relativeMonthly: { intervalMonths: 1, weekIndex: "First", dayOfWeek: "Monday" } }, utcOffset: "-08:00" });
    // First Monday of March 2026 is the 2nd; 02:00 -08:00 = 10:00 UTC.
    assert.equal(nextWindowOccurrence(w, new Date("2026-02-10T00:00:00Z"))!.start.toISOString(), "2026-03-02T10:00:00.000Z");
  });

  it("re-applies the window's utcOffset to not-allowed dates, blocking whole local days", () => {
    const w = window({ utcOffset: "+02:00", notAllowedDates: [{ start: "2022-12-23", end: "2023-01-03" }] });
    assert.deepEqual(iso(notAllowedIntervals(w)[0]), { start: "2022-12-22T22:00:00.000Z", end: "2023-01-03T22:00:00.000Z" });
  });

  it("skips occurrences that fall on not-allowed local days", () => {
    const w = window({ utcOffset: "+02:00", schedule: { daily: { intervalDays: 1 } }, startTime: "00:30", notAllowedDates: [{ start: "2026-12-24", end: "2026-12-26" }] });
    // 2026-12-24 00:30 +02:00 is 2026-12-23 22:30 UTC — a UTC reading of the dates would wrongly allow it.
    assert.equal(nextWindowOccurrence(w, new Date("2026-12-23T12:00:00Z"))!.start.toISOString(), "2026-12-26T22:30:00.000Z");
  });

  it("reads the SDK's UTC-midnight dates back as local days", () => {
    const schedule = fromSdk({
      name: "aksManagedAutoUpgradeSchedule",
      maintenanceWindow: {
        schedule: { weekly: { intervalWeeks: 1, dayOfWeek: "Sunday" } },
        durationHours: 4,
        utcOffset: "-08:00",
        startDate: new Date("2026-03-01"),
        startTime: "02:00",
        notAllowedDates: [{ start: new Date("2026-03-08"), end: new Date("2026-03-08") }],
      },
    });
    assert.ok(schedule?.kind === "window");
    assert.equal(schedule.window.startDate, "2026-03-01");
    assert.deepEqual(schedule.window.notAllowedDates, [{ start: "2026-03-08", end: "2026-03-08" }]);
    // 2026-03-08 is blocked in -08:00, so the next Sunday window is the 15th at 10:00 UTC.
    assert.equal(nextWindowOccurrence(schedule.window, new Date("2026-03-02T00:00:00Z"))!.start.toISOString(), "2026-03-15T10:00:00.000Z");
  });

  it("merges contiguous hour slots of the legacy default configuration", () => {
    const occurrence = nextLegacyOccurrence(
      { timeInWeek: [{ day: "Tuesday", hourSlots: [1, 2, 3] }], notAllowedTime: [] },
      new Date("2026-03-01T00:00:00Z"),
    );
    assert.deepEqual(iso(occurrence), { start: "2026-03-03T01:00:00.000Z", end: "2026-03-03T04:00:00.000Z" });
  });
});
