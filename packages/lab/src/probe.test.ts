import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ProbeRecorder, probeDowntimes } from './probe-client.ts';
import { clientGapMs, heartbeatJumpMs, probeLatencyMs } from './probe-gaps.ts';

const now = (): number => performance.timeOrigin + performance.now();

describe('probe-reply gaps', () => {
  it('client gap, heartbeat jump and latency over the replies inside the window only', () => {
    const at = [100, 101, 102, 110, 111, 200];
    const hb = [99.5, 100.5, 101.5, 109.8, 110.6, 199];
    expect(clientGapMs(at, 100, 150)).toBe(8);
    expect(heartbeatJumpMs(at, hb, 100, 150)).toBeCloseTo(8.3);
    expect(probeLatencyMs(at, hb, 100, 150)).toBeCloseTo(0.5);
    expect(clientGapMs([100], 0, 1000)).toBeUndefined();
    // a stale heartbeat (an older reply arriving late) does not count as a jump back and forth
    expect(heartbeatJumpMs([1, 2, 3], [10, 5, 11], 0, 10)).toBe(1);
  });
});

// A probe server speaking the agents' protocol (apps/agent/src/probe.ts) on a real socket: the
// "guest" runs until `pausedFromMs`, stalls until `pausedToMs`, and runs again on the second
// host (the first then answers not-here), like a migrated VM.
interface Schedule {
  pausedFromMs: number;
  pausedToMs: number;
}

async function probeHost(hostIndex: number, schedule: Schedule, token: string): Promise<{ url: string; server: Server }> {
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data) => {
        const p = JSON.parse(String(data)) as { id: number; afterMs: number };
        const reply = (): void => {
          const t = now();
          const here = hostIndex === 0 ? t < schedule.pausedToMs : t >= schedule.pausedToMs;
          if (!here) ws.send(JSON.stringify({ id: p.id, status: 'not-here' }));
          else if (t >= schedule.pausedFromMs && t < schedule.pausedToMs) setTimeout(reply, schedule.pausedToMs - t);
          else ws.send(JSON.stringify({ id: p.id, status: 'ok', heartbeatMs: t }));
        };
        reply();
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/probe`, server };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe('ProbeRecorder (worker-thread client over real sockets)', () => {
  it('probes every millisecond, follows the VM to the next host on not-here, and sees the stall as the guest and client downtime', async () => {
    const schedule: Schedule = { pausedFromMs: Infinity, pausedToMs: Infinity };
    const hosts = await Promise.all([0, 1].map((i) => probeHost(i, schedule, 'tok')));
    servers.push(...hosts.map((h) => h.server));
    const recorder = await ProbeRecorder.start({ urls: hosts.map((h) => h.url), token: 'tok' });
    try {
      recorder.begin('vm-1', 0);
      const fromMs = now();
      await new Promise((r) => setTimeout(r, 100));
      schedule.pausedFromMs = now();
      schedule.pausedToMs = schedule.pausedFromMs + 60;
      await new Promise((r) => setTimeout(r, 200));
      const record = await recorder.end();
      expect(record.sent).toBeGreaterThan(50);
      expect(record.notHere).toBeGreaterThanOrEqual(1);
      const d = probeDowntimes(record, fromMs, now());
      // the stall is 60 ms; replies on either side come within a few ms (loose: a loaded machine)
      expect(d.guestMs).toBeGreaterThanOrEqual(55);
      expect(d.guestMs).toBeLessThan(60 + 100);
      expect(d.clientMs!).toBeGreaterThanOrEqual(d.guestMs - d.latencyMs!);
      expect(record.atMs.some((t) => t > schedule.pausedToMs)).toBe(true);
    } finally {
      await recorder.close();
    }
  });

  it('refuses to start when a host rejects the token', async () => {
    const host = await probeHost(0, { pausedFromMs: Infinity, pausedToMs: Infinity }, 'right');
    servers.push(host.server);
    await expect(ProbeRecorder.start({ urls: [host.url], token: 'wrong' })).rejects.toThrow(/probe client failed/);
  });
});
