import { z } from "zod";
import { CLUSTER_NAME_PATTERN, NODE_NAME_PATTERN } from "./wire";

/**
 * Node names are Kubernetes DNS-1123 subdomains. They become Table Storage row keys and appear in
 * OData filters, so anything outside this alphabet is refused before it reaches storage.
 */
export const nodeName = z
  .string()
  .min(1)
  .max(253)
  .regex(NODE_NAME_PATTERN, {
    message: "must be a Kubernetes node name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
  });

/** Cluster names are Rollcall's own keys for a configured cluster: DNS-1123 labels, used as partition keys. */
export const clusterName = z
  .string()
  .min(1)
  .max(63)
  .regex(CLUSTER_NAME_PATTERN, {
    message: "must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

export const nodeRoute = z.object({ cluster: clusterName, node: nodeName });
export const clusterRoute = z.object({ cluster: clusterName });
