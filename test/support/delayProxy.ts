import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An HTTP proxy in front of the simulated API server that holds writes (every method but GET) for
 * a while before forwarding them: one slow or partitioned function instance. A held write is
 * forwarded even after its client gave up, as a request already on the wire reaches the API server.
 */
export class DelayProxy {
  /** Each write waits a random time in [min, max] ms; [0, 0] forwards at once. */
  holdWritesMs: [number, number] = [0, 0];
  /** Writes that were held and forwarded, with the status the API server answered. */
  readonly forwarded: { method: string; path: string; heldMs: number; status: number }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
  ) {}

  static async start(targetUrl: string): Promise<DelayProxy> {
    let proxy: DelayProxy | undefined;
    const server = createServer((request, response) => void proxy!.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new DelayProxy(server, new URL(targetUrl));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The simulator's kubeconfig, pointed at this proxy. */
  kubeconfig(simKubeconfig: string): string {
    const config = JSON.parse(simKubeconfig);
    for (const entry of config.clusters) entry.cluster.server = this.url;
    return JSON.stringify(config);
  }

  /** Resolves once no held write is waiting any more. */
  async drained(): Promise<void> {
    while (this.timers.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const [min, max] = this.holdWritesMs;
    const heldMs = request.method === "GET" ? 0 : Math.round(min + Math.random() * (max - min));
    const forward = () => {
      const upstream = httpRequest(
        { host: this.target.hostname, port: this.target.port, method: request.method, path: request.url, headers: { ...request.headers, host: this.target.host } },
        (answer) => {
          if (heldMs > 0) this.forwarded.push({ method: request.method ?? "", path: request.url ?? "", heldMs, status: answer.statusCode ?? 0 });
          // The client may have given up meanwhile; the write has landed either way.
          if (response.destroyed) return void answer.resume();
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      upstream.on("error", () => response.destroy());
      upstream.end(body);
    };
    if (heldMs === 0) return forward();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      forward();
    }, heldMs);
    this.timers.add(timer);
  }
}
