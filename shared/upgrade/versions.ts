/**
 * Kubernetes version arithmetic. AKS versions are `major.minor.patch`; `kubernetesVersion` on a cluster
 * may be an alias such as `1.30`, which is why the planner always reads `currentKubernetesVersion`.
 */

export interface Version {
  major: number;
  minor: number;
  patch: number;
}

export function parseVersion(text: string): Version | undefined {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

export function mustParse(text: string): Version {
  const v = parseVersion(text);
  if (!v) throw new Error(`Not a Kubernetes version: ${JSON.stringify(text)}`);
  return v;
}

export function compareVersions(a: string, b: string): number {
  const x = mustParse(a);
  const y = mustParse(b);
  return x.major - y.major || x.minor - y.minor || x.patch - y.patch;
}

/** `1.30.4` → `1.30`. */
export function minorOf(text: string): string {
  const v = mustParse(text);
  return `${v.major}.${v.minor}`;
}

/** Signed distance in minors from `a` to `b` (same major assumed, as for every Kubernetes 1.x). */
export function minorsBetween(a: string, b: string): number {
  const x = mustParse(a);
  const y = mustParse(b);
  return (y.major - x.major) * 1000 + (y.minor - x.minor);
}

/** True for `1.30` (an alias naming a minor) as opposed to `1.30.4`. */
export function isMinorOnly(text: string): boolean {
  return /^v?\d+\.\d+$/.test(text.trim());
}

export function maxVersion(versions: string[]): string | undefined {
  return versions.reduce<string | undefined>((best, v) => (best === undefined || compareVersions(v, best) > 0 ? v : best), undefined);
}

/**
 * Node image versions come as `AKSUbuntu-2204gen2containerd-202405.03.0` or `AKSUbuntu:1604:2020.03.11`:
 * a family (OS, version, generation, runtime) and a date-based release after the last `-` or `:`,
 * which is what orders images of one family. Images of different families never compare.
 */
export function splitNodeImage(image: string): { family: string; release: number[] } {
  const i = Math.max(image.lastIndexOf("-"), image.lastIndexOf(":"));
  return { family: i < 0 ? "" : image.slice(0, i), release: (i < 0 ? image : image.slice(i + 1)).split(".").map(Number) };
}

export function compareNodeImages(a: string, b: string): number | undefined {
  const x = splitNodeImage(a);
  const y = splitNodeImage(b);
  if (x.family !== y.family || x.release.some(Number.isNaN) || y.release.some(Number.isNaN)) return a === b ? 0 : undefined;
  for (let i = 0; i < Math.max(x.release.length, y.release.length); i++) {
    const d = (x.release[i] ?? 0) - (y.release[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
