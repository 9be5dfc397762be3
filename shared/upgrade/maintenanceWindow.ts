import type { MaintenanceConfiguration } from "@azure/arm-containerservice";

/**
 * AKS planned-maintenance windows and their next occurrence.
 *
 * A window's `startDate`, `startTime` and `notAllowedDates` are local to its `utcOffset`, a fixed offset:
 * AKS does not follow daylight saving time, so a `+01:00` window stays at the same UTC hour all year.
 * The SDK hands dates over as UTC-midnight `Date`s of the wire's `YYYY-MM-DD`; `fromSdk` turns them back
 * into local day strings, and every computation here re-applies the offset to them.
 */

export type WeekDay = "Sunday" | "Monday" | "Tuesday" | "Wednesday" | "Thursday" | "Friday" | "Saturday";
export const weekDays: WeekDay[] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
export type WeekIndex = "First" | "Second" | "Third" | "Fourth" | "Last";

export interface Schedule {
  daily?: { intervalDays: number };
  weekly?: { intervalWeeks: number; dayOfWeek: WeekDay };
  absoluteMonthly?: { intervalMonths: number; dayOfMonth: number };
  relativeMonthly?: { intervalMonths: number; weekIndex: WeekIndex; dayOfWeek: WeekDay };
}

/** A `maintenanceWindow` (aksManagedAutoUpgradeSchedule / aksManagedNodeOSUpgradeSchedule), JSON-safe. */
export interface WindowSpec {
  schedule: Schedule;
  durationHours: number;
  /** `+HH:MM` / `-HH:MM`; `+00:00` when ARM gives none. */
  utcOffset: string;
  /** Local day `YYYY-MM-DD` from which the schedule counts; absent means "from today". */
  startDate?: string;
  /** Local `HH:MM`. */
  startTime: string;
  /** Inclusive local day ranges `YYYY-MM-DD`. */
  notAllowedDates: Array<{ start: string; end: string }>;
}

/** The legacy `default` configuration: one-hour UTC slots per weekday, and blocked UTC time spans. */
export interface LegacyWindow {
  timeInWeek: Array<{ day: WeekDay; hourSlots: number[] }>;
  notAllowedTime: Array<{ start: string; end: string }>;
}

export type MaintenanceSchedule = { kind: "window"; name: string; window: WindowSpec } | { kind: "legacy"; name: string; legacy: LegacyWindow };

export interface Occurrence {
  start: Date;
  end: Date;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;

export function parseUtcOffset(offset: string | undefined): number {
  if (!offset) return 0;
  const match = /^([+-])(\d{2}):(\d{2})$/.exec(offset.trim());
  if (!match) throw new Error(`Invalid utcOffset ${JSON.stringify(offset)}: expected +HH:MM or -HH:MM`);
  const minutes = Number(match[2]) * 60 + Number(match[3]);
  return (match[1] === "-" ? -minutes : minutes) * 60_000;
}

function parseDay(day: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(day);
  if (!match) throw new Error(`Invalid date ${JSON.stringify(day)}: expected YYYY-MM-DD`);
  return Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) / DAY;
}

function parseTime(time: string): number {
  const match = /^(\d{1,2}):(\d{2})$/.exec(time.trim());
  if (!match) throw new Error(`Invalid startTime ${JSON.stringify(time)}: expected HH:MM`);
  return (Number(match[1]) * 60 + Number(match[2])) * 60_000;
}

/** The local calendar day (as a UTC-midnight `YYYY-MM-DD`) a wire date denotes. */
function dayString(value: Date | string): string {
  return typeof value === "string" ? value.slice(0, 10) : value.toISOString().slice(0, 10);
}

interface Civil {
  year: number;
  month: number;
  dayOfMonth: number;
  weekday: number;
  daysInMonth: number;
}

function civil(day: number): Civil {
  const d = new Date(day * DAY);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth();
  return { year, month, dayOfMonth: d.getUTCDate(), weekday: d.getUTCDay(), daysInMonth: new Date(Date.UTC(year, month + 1, 0)).getUTCDate() };
}

/** `n` modulo `m`, never negative: days before the anchor count back from it. */
const modulo = (n: number, m: number) => ((n % m) + m) % m;

/** Whether the schedule has an occurrence on `day`, counting its intervals from the day `anchor`. */
function matches(schedule: Schedule, day: number, anchor: number): boolean {
  const c = civil(day);
  const a = civil(anchor);
  const monthsSince = (c.year - a.year) * 12 + (c.month - a.month);
  if (schedule.daily) return modulo(day - anchor, Math.max(1, schedule.daily.intervalDays)) === 0;
  if (schedule.weekly) {
    if (weekDays[c.weekday] !== schedule.weekly.dayOfWeek) return false;
    const weeks = Math.round((day - c.weekday - (anchor - a.weekday)) / 7);
    return modulo(weeks, Math.max(1, schedule.weekly.intervalWeeks)) === 0;
  }
  if (schedule.absoluteMonthly) {
    // A day the month lacks (31 in April) has no occurrence that month.
    if (c.dayOfMonth !== schedule.absoluteMonthly.dayOfMonth) return false;
    return modulo(monthsSince, Math.max(1, schedule.absoluteMonthly.intervalMonths)) === 0;
  }
  if (schedule.relativeMonthly) {
    const r = schedule.relativeMonthly;
    if (weekDays[c.weekday] !== r.dayOfWeek) return false;
    const inWeek =
      r.weekIndex === "Last" ? c.dayOfMonth + 7 > c.daysInMonth : Math.ceil(c.dayOfMonth / 7) === ["First", "Second", "Third", "Fourth"].indexOf(r.weekIndex) + 1;
    return inWeek && modulo(monthsSince, Math.max(1, r.intervalMonths)) === 0;
  }
  return false;
}

/** Blocked UTC intervals of a window's not-allowed dates: local midnight of `start` to local midnight after `end`. */
export function notAllowedIntervals(window: WindowSpec): Occurrence[] {
  const offset = parseUtcOffset(window.utcOffset);
  return window.notAllowedDates.map((span) => ({
    start: new Date(parseDay(span.start) * DAY - offset),
    end: new Date((parseDay(span.end) + 1) * DAY - offset),
  }));
}

const overlaps = (a: Occurrence, b: Occurrence) => a.start < b.end && b.start < a.end;

/**
 * The occurrence in progress at `after`, or else the next one to start; occurrences overlapping a
 * not-allowed date are skipped. Undefined when none falls within `horizonDays`.
 */
export function nextWindowOccurrence(window: WindowSpec, after: Date, horizonDays = 800): Occurrence | undefined {
  const offset = parseUtcOffset(window.utcOffset);
  const startMs = parseTime(window.startTime);
  const durationMs = window.durationHours * HOUR;
  const today = Math.floor((after.getTime() + offset) / DAY);
  // Without a startDate AKS makes the window "active right away": an occurrence that began the day
  // before (a nightly 23:00-03:00) is open now. A startDate holds back every day before it.
  const anchor = window.startDate ? parseDay(window.startDate) : today;
  const blocked = notAllowedIntervals(window);
  const lookBack = Math.ceil((startMs + durationMs) / DAY);
  for (let day = today - lookBack; day <= today + horizonDays; day++) {
    if (window.startDate && day < anchor) continue;
    if (!matches(window.schedule, day, anchor)) continue;
    const start = new Date(day * DAY + startMs - offset);
    const occurrence = { start, end: new Date(start.getTime() + durationMs) };
    if (occurrence.end <= after) continue;
    if (blocked.some((b) => overlaps(b, occurrence))) continue;
    return occurrence;
  }
  return undefined;
}

/** The legacy `default` configuration: contiguous allowed UTC hours, minus `notAllowedTime`. */
export function nextLegacyOccurrence(legacy: LegacyWindow, after: Date, horizonDays = 28): Occurrence | undefined {
  const blocked = legacy.notAllowedTime.map((t) => ({ start: new Date(t.start), end: new Date(t.end) }));
  const allowed = (hour: number) => {
    const start = new Date(hour * HOUR);
    const slot = { start, end: new Date(start.getTime() + HOUR) };
    const day = weekDays[start.getUTCDay()];
    const hourOfDay = start.getUTCHours();
    return (
      legacy.timeInWeek.some((t) => t.day === day && (t.hourSlots.length === 0 || t.hourSlots.includes(hourOfDay))) &&
      !blocked.some((b) => overlaps(b, slot))
    );
  };
  const first = Math.floor(after.getTime() / HOUR);
  for (let hour = first; hour < first + horizonDays * 24; hour++) {
    if (!allowed(hour)) continue;
    let last = hour;
    while (allowed(last + 1) && last - hour < horizonDays * 24) last++;
    return { start: new Date(Math.max(hour * HOUR, after.getTime())), end: new Date((last + 1) * HOUR) };
  }
  return undefined;
}

export function nextOccurrence(schedule: MaintenanceSchedule, after: Date): Occurrence | undefined {
  return schedule.kind === "window" ? nextWindowOccurrence(schedule.window, after) : nextLegacyOccurrence(schedule.legacy, after);
}

/** Converts the SDK's maintenance configuration, re-reading its dates as local days in the window's offset. */
export function fromSdk(config: MaintenanceConfiguration): MaintenanceSchedule | undefined {
  const name = config.name ?? "default";
  const w = config.maintenanceWindow;
  if (w) {
    return {
      kind: "window",
      name,
      window: {
        schedule: JSON.parse(JSON.stringify(w.schedule ?? {})) as Schedule,
        durationHours: w.durationHours,
        utcOffset: w.utcOffset ?? "+00:00",
        startDate: w.startDate ? dayString(w.startDate) : undefined,
        startTime: w.startTime,
        notAllowedDates: (w.notAllowedDates ?? []).map((d) => ({ start: dayString(d.start), end: dayString(d.end) })),
      },
    };
  }
  if (config.timeInWeek?.length) {
    return {
      kind: "legacy",
      name,
      legacy: {
        timeInWeek: config.timeInWeek.map((t) => ({ day: t.day as WeekDay, hourSlots: t.hourSlots ?? [] })),
        notAllowedTime: (config.notAllowedTime ?? [])
          .filter((t) => t.start && t.end)
          .map((t) => ({ start: t.start!.toISOString(), end: t.end!.toISOString() })),
      },
    };
  }
  return undefined;
}

/** "Weekly on Sunday at 02:00 +01:00 for 4 h" — for plan summaries. */
export function describeSchedule(schedule: MaintenanceSchedule): string {
  if (schedule.kind === "legacy") {
    return `${schedule.name}: ${schedule.legacy.timeInWeek.map((t) => `${t.day} ${t.hourSlots.length ? t.hourSlots.map((h) => `${h}:00`).join(",") : "all day"}`).join("; ")} UTC`;
  }
  const w = schedule.window;
  const s = w.schedule;
  const every = (n: number, unit: string) => (n === 1 ? `every ${unit}` : `every ${n} ${unit}s`);
  const what = s.daily
    ? every(s.daily.intervalDays, "day")
    : s.weekly
      ? `${every(s.weekly.intervalWeeks, "week")} on ${s.weekly.dayOfWeek}`
      : s.absoluteMonthly
        ? `${every(s.absoluteMonthly.intervalMonths, "month")} on day ${s.absoluteMonthly.dayOfMonth}`
        : s.relativeMonthly
          ? `${every(s.relativeMonthly.intervalMonths, "month")} on the ${s.relativeMonthly.weekIndex.toLowerCase()} ${s.relativeMonthly.dayOfWeek}`
          : "no schedule";
  return `${schedule.name}: ${what} at ${w.startTime} ${w.utcOffset} for ${w.durationHours} h`;
}
