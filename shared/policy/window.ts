import { DateTime } from "luxon";
import { nextOccurrence, type MaintenanceSchedule } from "../upgrade/maintenanceWindow";
import { WEEKDAYS, type WeeklyWindow } from "./policy";

/**
 * Reboot windows: when a node may start its turn. Windows are local wall-clock times in an IANA
 * time zone, so they follow daylight saving time: "Sat 02:00–05:00 Europe/Berlin" is 01:00–04:00 UTC
 * in winter and 00:00–03:00 UTC in summer. A start that falls into a spring-forward gap moves to the
 * same wall-clock time after the gap (02:30 → 03:30); an ambiguous fall-back time means its second
 * occurrence (standard time), which keeps the window to its written length or shorter.
 * Windows that touch or overlap (e.g. every day 00:00–24:00) count as one.
 */

export interface Interval {
  start: Date;
  end: Date;
}

export type WindowState =
  /** Inside a window, which stays open until `closesAt`. */
  | { open: true; closesAt: Date; window?: WeeklyWindow }
  /** Outside every window; the next one opens at `opensAt` (undefined: never, within the horizon). */
  | { open: false; opensAt?: Date; window?: WeeklyWindow };

const DAY_MS = 86_400_000;
/** How far around `now` occurrences are computed; a merged window is followed at most this far. */
const HORIZON_DAYS = 8;

function localTime(day: DateTime, clock: string): DateTime {
  if (clock === "24:00") return day.plus({ days: 1 }).startOf("day");
  const [hour, minute] = clock.split(":").map(Number);
  // Luxon moves a wall-clock time inside a DST gap forward by the gap, and resolves an ambiguous one
  // to the standard-time offset.
  return DateTime.fromObject({ year: day.year, month: day.month, day: day.day, hour: hour!, minute: minute! }, { zone: day.zone });
}

/** Every occurrence of one window starting between `from - 1 day` and `to`, in time order. */
export function windowOccurrences(window: WeeklyWindow, from: Date, to: Date): Interval[] {
  const result: Interval[] = [];
  const first = DateTime.fromJSDate(new Date(from.getTime() - 2 * DAY_MS), { zone: window.timeZone }).startOf("day");
  const lastMs = to.getTime();
  for (let day = first; day.toMillis() <= lastMs; day = day.plus({ days: 1 })) {
    if (!window.days.includes(WEEKDAYS[day.weekday - 1]!)) continue;
    const start = localTime(day, window.start);
    let end = localTime(day, window.end);
    if (end <= start) end = localTime(day.plus({ days: 1 }), window.end);
    result.push({ start: start.toJSDate(), end: end.toJSDate() });
  }
  return result;
}

/** Sorts and merges touching or overlapping intervals. */
export function mergeIntervals(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => a.start.getTime() - b.start.getTime());
  const merged: Interval[] = [];
  for (const interval of sorted) {
    const last = merged[merged.length - 1];
    if (last && interval.start.getTime() <= last.end.getTime()) {
      if (interval.end > last.end) last.end = interval.end;
    } else merged.push({ ...interval });
  }
  return merged;
}

/**
 * Whether `now` lies in one of `windows`, and until when (or when the next one opens). No windows
 * at all means always open.
 */
export function windowStateAt(windows: readonly WeeklyWindow[], now: Date): WindowState {
  if (windows.length === 0) return { open: true, closesAt: new Date(8.64e15) };
  const to = new Date(now.getTime() + HORIZON_DAYS * DAY_MS);
  const tagged = windows.flatMap((window) => windowOccurrences(window, now, to).map((interval) => ({ interval, window })));
  const merged = mergeIntervals(tagged.map((t) => t.interval));
  const t = now.getTime();
  const current = merged.find((i) => i.start.getTime() <= t && t < i.end.getTime());
  const owner = (at: Date) => tagged.find((x) => x.interval.start <= at && at < x.interval.end)?.window;
  if (current) return { open: true, closesAt: current.end, window: owner(now) };
  const next = merged.find((i) => i.start.getTime() > t);
  return next ? { open: false, opensAt: next.start, window: owner(next.start) } : { open: false };
}

/** The same, for the cluster's AKS planned-maintenance configuration (fixed UTC offsets, as AKS defines them). */
export function aksWindowStateAt(schedule: MaintenanceSchedule, now: Date): WindowState {
  const occurrence = nextOccurrence(schedule, now);
  if (!occurrence) return { open: false };
  if (occurrence.start <= now && now < occurrence.end) return { open: true, closesAt: occurrence.end };
  return { open: false, opensAt: occurrence.start };
}

/** "Sat 2026-03-28 02:00 CET" in the window's zone (UTC when no window is known). */
export function formatLocal(at: Date, timeZone = "UTC"): string {
  return DateTime.fromJSDate(at, { zone: timeZone }).toFormat("ccc yyyy-LL-dd HH:mm ZZZZ");
}

/**
 * Why a node may not start its turn now, or undefined when it may. A drain that could not finish
 * before the window closes is not started: before the lock is taken, the remaining window must be
 * at least `drainTimeoutMs`. Once drained ("before-reboot"), the window need only be open.
 */
export function windowHoldReason(state: WindowState, now: Date, drainTimeoutMs: number, phase: "before-lock" | "before-reboot", label = "reboot window"): string | undefined {
  const zone = state.window?.timeZone;
  if (!state.open) {
    return state.opensAt ? `outside the ${label}; it next opens ${formatLocal(state.opensAt, zone)}` : `outside the ${label}, and none opens in the next ${HORIZON_DAYS} days`;
  }
  if (phase === "before-reboot") return undefined;
  const remaining = state.closesAt.getTime() - now.getTime();
  if (remaining < drainTimeoutMs) {
    return `the ${label} closes ${formatLocal(state.closesAt, zone)}, in ${Math.ceil(remaining / 60_000)} min, sooner than the drain timeout (${Math.round(drainTimeoutMs / 60_000)} min): a drain that could not finish is not started`;
  }
  return undefined;
}
