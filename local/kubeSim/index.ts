export {
  type NodeChange,
  type NodeChangeKind,
  type PdbSpec,
  SimCluster,
  type SimClusterOptions,
  type SimDeploymentOptions,
  type SimNodeOptions,
  type SimPdbOptions,
  type SimPodOptions,
} from "./simCluster";
export type { RequestRecord } from "./server";
export type { KubeObject } from "./store";
export type { ServiceAccountTokenOptions } from "./tokens";
