/**
 * Published prices the bench turns its counted operations into, in one place. Each says where it is
 * from and when it was read; prices change and differ by region, so the bench states its monthly
 * figures as estimates at these constants.
 *
 * Not confirmed against Microsoft's own pricing page (it could not be read from this workspace):
 * - Flex Consumption on demand, East US: $0.000026 per GB-s and $0.40 per million executions, with a
 *   monthly free grant of 100,000 GB-s and 250,000 executions. Read 2026-12-01 from modal.com
 *   "Azure Functions pricing: Consumption vs. Flex Consumption" (2025-05-22), which quotes
 *   https://azure.microsoft.com/pricing/details/functions/. Microsoft's billing page
 *   (learn.microsoft.com/azure/azure-functions/functions-consumption-costs) confirms the model:
 *   memory provisioned while an instance executes (GB-s) plus executions, minus free grants.
 * - Table Storage (standard, LRS): $0.00036 per 10,000 transactions, the long-standing list price on
 *   https://azure.microsoft.com/pricing/details/storage/tables/; no page confirming it was found.
 */
export const PRICES = {
  source: "see local/bench/prices.ts (read 2026-12-01; not confirmed on Microsoft's pricing pages)",
  flexGbSecondUsd: 0.000026,
  flexExecutionUsd: 0.4 / 1_000_000,
  flexFreeGbSeconds: 100_000,
  flexFreeExecutions: 250_000,
  /** The instance memory Rollcall's Bicep deploys (infra/main.bicep instanceMemoryMB), which Flex Consumption bills. */
  instanceMemoryGb: 2,
  tableTransactionUsd: 0.00036 / 10_000,
} as const;
