import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:tls";
import { selfSignedCertificate } from "../tls/selfSigned";

export interface TlsFront {
  /** `https://127.0.0.1:PORT`, in front of the target. */
  url: string;
  /** The front's self-signed certificate, for `NODE_EXTRA_CA_CERTS`. */
  caFile: string;
  stop(): Promise<void>;
}

/**
 * HTTPS in front of a local http server, as App Service terminates TLS in front of the Function
 * App: what lets the benchmark measure the agent over the TLS it uses in production. The
 * certificate is made at start (openssl) and trusted by the client through `NODE_EXTRA_CA_CERTS`.
 */
export async function startTlsFront(target: string): Promise<TlsFront> {
  const { hostname, port } = new URL(target);
  const dir = mkdtempSync(join(tmpdir(), "rollcall-tls-front-"));
  const caFile = join(dir, "cert.pem");
  const { key, cert } = selfSignedCertificate();
  writeFileSync(caFile, cert);
  const sockets = new Set<Socket>();
  const server = createServer({ key, cert }, (client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("the TLS front has no port");
  return {
    url: `https://127.0.0.1:${address.port}`,
    caFile,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
