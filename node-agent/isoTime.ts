/**
 * `date.toISOString()`, without V8's own: that one initialises ICU's time zones on first use (the
 * zone names and rules of every locale), some 1 MB of resident memory the agent would keep only to
 * print UTC timestamps. Outside years 0–9999 (and for an invalid date) it defers to V8's.
 */
export function isoTime(date: Date): string {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return date.toISOString();
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(year, 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(date.getUTCMilliseconds(), 3)}Z`;
}
