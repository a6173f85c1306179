// A free loopback TCP port for a server a test starts that must be told its port (clickhouse-server,
// syslog-ng, etcd, Prometheus, a demo's config) rather than binding port 0 itself. Tests only.

import net from 'node:net';

/** A port that was free on 127.0.0.1 a moment ago (another process may take it before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
