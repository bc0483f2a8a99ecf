/**
 * An HTTP proxy in front of the test radosgw that sees every S3 request a run makes, in order: it records
 * them, and can stop the run at the Nth (call `onRequest` — e.g. SIGKILL the client — and drop the request
 * unanswered), which is what "killed at each step" means for a commit made of requests. Requests are
 * forwarded unchanged (the Host header too: the client's SigV4 signature covers it, and radosgw checks the
 * signature against the header it receives).
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";

export interface S3Proxy {
  endpoint: string;
  /** "METHOD /bucket/key?query" of every request since the last `reset`. */
  requests: string[];
  /** From now on, request number `index` (from 0) calls `hit` and is never answered. */
  stopAt(index: number | null, hit?: () => void): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startS3Proxy(upstream: string): Promise<S3Proxy> {
  const target = new URL(upstream);
  let stop: { index: number; hit: () => void } | null = null;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const index = requests.length;
    requests.push(`${req.method} ${req.url}`);
    if (stop && index === stop.index) {
      stop.hit();
      req.socket.destroy();
      return;
    }
    const up = http.request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on("error", () => req.socket.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stopAt(index, hit = () => {}) {
      stop = index === null ? null : { index, hit };
    },
    reset() {
      requests.length = 0;
      stop = null;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
