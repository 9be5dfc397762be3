/**
 * Published prices the bench turns its counted operations into, in one place. Each says where it is
 * from and when it was read; prices change and differ by region, so the bench states its monthly
 * figures as estimates at these constants.
 *
 * Microsoft's pricing page itself could not be read from this workspace:
 * - Flex Consumption on demand: $0.000026 per GB-s and $0.40 per million executions. These are the
 *   on-demand rates of Microsoft Learn's own worked example ("Estimating consumption-based costs",
 *   learn.microsoft.com/azure/azure-functions/functions-consumption-costs, Flex Consumption, read
 *   2026-12-01), which says to check https://azure.microsoft.com/pricing/details/functions/ for current
 *   prices. The same page gives the model: an active instance's memory over time (GB-s; awaits count,
 *   and concurrent executions on one instance share it) plus executions, minus free grants. The monthly
 *   free grant of 100,000 GB-s and 250,000 executions is from modal.com "Azure Functions pricing:
 *   Consumption vs. Flex Consumption" (2025-05-22), quoting the pricing page; not confirmed.
 * - Table Storage (standard, LRS): $0.00036 per 10,000 transactions, the long-standing list price on
 *   https://azure.microsoft.com/pricing/details/storage/tables/; no page confirming it was found.
 */
export const PRICES = {
  source: "see local/bench/prices.ts (read 2026-12-01; Flex rates as in Microsoft Learn's worked example, free grants and the Table price not confirmed)",
  flexGbSecondUsd: 0.000026,
  flexExecutionUsd: 0.4 / 1_000_000,
  flexFreeGbSeconds: 100_000,
  flexFreeExecutions: 250_000,
  /** The instance memory Rollcall's Bicep deploys (infra/main.bicep instanceMemoryMB), which Flex Consumption bills. */
  instanceMemoryGb: 2,
  tableTransactionUsd: 0.00036 / 10_000,
} as const;
