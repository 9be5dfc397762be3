import type { TableServiceClientOptions } from "@azure/data-tables";

/** How many recent answers the offset is the median of, so that one odd Date header moves nothing. */
const SAMPLES = 5;
/**
 * Within this, the local clock is taken as it is: the Date header has whole seconds and the answer
 * took some time to arrive, so a smaller difference is noise, not skew.
 */
const TOLERANCE_MS = 2_000;

/**
 * The storage service's clock, read from the `Date` header of its answers (RFC 9110 §6.6.1: the
 * origin server's time when it made the answer). The durations that decide — the drain timeout,
 * the lease expiry, the back-offs — compare times that different instances wrote, so they must be
 * measured on one clock: an instance whose own clock ran 11 minutes ahead declared a drain another
 * instance had started seconds before timed out. Every instance measures on the storage account's
 * clock instead, corrected once more with every answer.
 */
export class ServerClock {
  private readonly offsets: number[] = [];

  constructor(private readonly local: () => number = Date.now) {}

  /** Takes in one answer's `Date` header; a missing or unreadable one is ignored. */
  observe(dateHeader: string | null | undefined): void {
    if (!dateHeader) return;
    const server = Date.parse(dateHeader);
    if (!Number.isFinite(server)) return;
    // The header truncates to the second: the server's time was, on average, half a second later.
    this.offsets.push(server + 500 - this.local());
    if (this.offsets.length > SAMPLES) this.offsets.shift();
  }

  /** How far the storage service's clock is from this instance's, in ms; 0 while they agree within the tolerance. */
  get offsetMs(): number {
    if (this.offsets.length === 0) return 0;
    const sorted = [...this.offsets].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    return Math.abs(median) <= TOLERANCE_MS ? 0 : median;
  }

  /** The current time on the storage service's clock, as well as this instance knows it. */
  readonly now = (): Date => new Date(this.local() + this.offsetMs);

  /** The Table client pipeline policy that feeds this clock from every answer, retries included. */
  tablePolicy(): NonNullable<TableServiceClientOptions["additionalPolicies"]>[number] {
    return {
      position: "perRetry",
      policy: {
        name: "rollcallServerClock",
        sendRequest: async (request, next) => {
          const response = await next(request);
          this.observe(response.headers.get("date"));
          return response;
        },
      },
    };
  }
}

/** The process's clock for every decision the orchestrator makes, fed by the app's Table client. */
export const serverClock = new ServerClock();
