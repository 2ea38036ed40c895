// The lab's in-process driver: both "hosts" live in this process, each with its own CpuPool and
// HTTP server, and the migration runs a real MigrationSender and MigrationReceiver over a real
// loopback WebSocket (the agents' stream options: zero mask, raw frames). The client is a worker
// thread probing through both hosts' `/probe` WebSockets every millisecond, served exactly as the
// agents serve it (apps/agent/src/probe.ts: a reply only once the guest's heartbeat is newer than
// the probe, `not-here` once the VM is gone). Not multi-process:
// the two hosts share one event loop, so results are labelled `in-process`.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { WebSocket } from 'ws';
import { PAGE_SIZE_BYTES } from '@ferry/memory';
import { MigrationReceiver, MigrationSender, expectToken, type SourceVm, isZeroPageAt, type SenderRoundStats, type SenderState } from '@ferry/migration';
import {
  DEFAULT_MAX_PAGE_FRAME_BYTES,
  MIGRATION_MAX_MESSAGE_BYTES,
  migrationReceiverCodec,
  migrationSenderCodec,
  type DestinationMessage,
  type SourceMessage,
} from '@ferry/protocol';
import { attachWsRoutes, generateToken, openWsChannel, presentedToken, tokensEqual, WsChannel, type WsRoutes } from '@ferry/transport';
import { CpuPool, Vm, readGuestInfo, readHeartbeatMs, sampleWritableWorkingSet, type VmSpec, type WwsSampling } from '@ferry/vm';
import { ProbeRecorder, clientGapMs, probeLatencyMs, type LabPhase, type LabRun } from '@ferry/lab';
import type { LabCellSpec } from './lab-matrix.ts';
import { guestGapReset, phasesOf, type LabDriver } from './lab-driver.ts';
import { serveProbes, type ProbeResult, type ProbeTarget } from '../../apps/agent/src/probe.ts';
import { senderPolicyOf } from '../../apps/agent/src/vm-host-outgoing.ts';

const PROBE_INTERVAL_MS = 1;

/** One in-process host: a CpuPool, an HTTP server with `/probe` (and `/migrate` on the destination). */
class Host implements ProbeTarget {
  vm: Vm | undefined;
  readonly pool: CpuPool;
  readonly server: Server;
  routes: WsRoutes | undefined;
  port = 0;
  onMigrate: ((ws: WebSocket) => void) | undefined;
  private readonly migrateTokens = new Set<string>();

  constructor(readonly name: string, private readonly token: string) {
    this.pool = new CpuPool({ pcpus: 1 });
    this.server = createServer((_req, res) => res.writeHead(404).end());
  }

  async listen(): Promise<void> {
    this.routes = attachWsRoutes(this.server, [
      {
        path: '/probe',
        authenticate: (req) => {
          const t = presentedToken(req);
          return t !== undefined && tokensEqual(t, this.token) ? true : undefined;
        },
        onConnection: (ws) => serveProbes(ws, this, this.name),
      },
      {
        path: '/migrate',
        maxPayloadBytes: Math.max(DEFAULT_MAX_PAGE_FRAME_BYTES, MIGRATION_MAX_MESSAGE_BYTES) + 64,
        authenticate: (req) => {
          const t = presentedToken(req);
          if (t === undefined || !this.migrateTokens.has(t)) return undefined;
          this.migrateTokens.delete(t); // one-time
          return true;
        },
        onConnection: (ws) => this.onMigrate?.(ws),
      },
    ]);
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
  }

  /** The agents' probe semantics (LocalVmHost.probe): ok once the heartbeat is newer than afterMs. */
  async probe(vmId: string, afterMs: number, timeoutMs: number): Promise<ProbeResult> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const vm = this.vm;
      if (!vm || vm.id !== vmId || vm.state === 'stopped' || vm.state === 'deleted') return { status: 'not-here' };
      const hb = vm.state === 'created' ? undefined : readHeartbeatMs(vm.memory);
      if (hb !== undefined && hb > afterMs) return { status: 'ok', heartbeatMs: hb };
      if (performance.now() >= deadline) return { status: 'timeout' };
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  issueMigrationToken(): string {
    const t = generateToken();
    this.migrateTokens.add(t);
    return t;
  }

  async close(): Promise<void> {
    if (this.vm && this.vm.state !== 'stopped' && this.vm.state !== 'deleted') await this.vm.stop().catch(() => {});
    this.vm = undefined;
    this.routes?.close(1001, 'lab done');
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.pool.close();
  }
}

/** Fills `fraction` of the workload pages (2..) with non-zero data and records them as written. */
export function fillGuest(vm: Vm, fraction: number): void {
  const memory = vm.memory;
  const words = new Int32Array(memory.buffer);
  const pages = memory.pageCount;
  const filled = Math.floor((pages - 2) * fraction);
  const written: number[] = [];
  for (let p = 2; p < 2 + filled; p++) {
    const base = p * (PAGE_SIZE_BYTES / 4);
    words.fill(0x5a5a5a5a ^ p, base, base + PAGE_SIZE_BYTES / 4);
    words[base] = p;
    written.push(p);
  }
  vm.dirtyLog.markEverWritten(written);
}

/** Non-zero bytes of guest memory (a scan: zero pages skip fast). */
export function nonZeroBytes(vm: Vm): number {
  const words = new Int32Array(vm.memory.buffer);
  let n = 0;
  for (let p = 0; p < vm.memory.pageCount; p++) if (!isZeroPageAt(words, p)) n++;
  return n * PAGE_SIZE_BYTES;
}

function specOf(cell: LabCellSpec, id: string): VmSpec {
  return { id, name: id, vcpus: cell.vcpus, memoryBytes: cell.vmBytes, workload: cell.workload.spec };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();

/** Runs lab cells with both hosts in this process. */
export class InProcessDriver implements LabDriver {
  readonly mode = 'in-process' as const;
  readonly probeIntervalMs = PROBE_INTERVAL_MS;
  private readonly token = generateToken();
  private readonly source = new Host('source', this.token);
  private readonly destination = new Host('destination', this.token);
  private probe: ProbeRecorder | undefined;
  private seq = 0;

  /** Starts both hosts and the probing client. */
  static async start(): Promise<InProcessDriver> {
    const d = new InProcessDriver();
    await d.source.listen();
    await d.destination.listen();
    // The first VM on a pool starts its worker (~0.3 s): do it before anything is measured.
    for (const pool of [d.source.pool, d.destination.pool]) {
      const warm = Vm.create({ id: 'lab-warm', name: 'warm', vcpus: 1, memoryBytes: 64 * 1024, workload: { kind: 'idle' } }, pool);
      await warm.start();
      await warm.stop();
    }
    const urls = [d.source, d.destination].map((h) => `ws://127.0.0.1:${h.port}/probe`);
    d.probe = await ProbeRecorder.start({ urls, token: d.token, intervalMs: PROBE_INTERVAL_MS });
    return d;
  }

  /** Boots a VM of the cell on the source host, filled and warmed. */
  private async boot(cell: LabCellSpec): Promise<Vm> {
    const id = `lab-${++this.seq}`;
    const vm = Vm.create(specOf(cell, id), this.source.pool);
    fillGuest(vm, cell.fillFraction);
    await vm.start();
    this.source.vm = vm;
    await sleep(cell.warmMs);
    return vm;
  }

  async runOnce(cell: LabCellSpec): Promise<LabRun> {
    const vm = await this.boot(cell);
    const nonZero = nonZeroBytes(vm);
    const migrationId = `mig-${this.seq}`;
    const token = this.destination.issueMigrationToken();
    let destVm: Vm | undefined;
    let pauseMs = Number.NaN;
    let resumeMs = Number.NaN;
    const received = new Promise<void>((resolve, reject) => {
      this.destination.onMigrate = (ws) => {
        const channel = new WsChannel<SourceMessage, DestinationMessage>(ws, { codec: migrationReceiverCodec, maxControlBytes: MIGRATION_MAX_MESSAGE_BYTES });
        const receiver = new MigrationReceiver({
          channel,
          authorize: expectToken(migrationId, migrationId),
          activate: async (r) => {
            const t = now();
            destVm = Vm.restore(vm.spec, r.memory, r, this.destination.pool);
            this.destination.vm = destVm;
            await destVm.resume();
            resumeMs = now() - t;
          },
        });
        receiver.done.then(() => resolve(), reject);
      };
    });
    received.catch(() => {});
    const policy = senderPolicyOf(cell.policy.sender);
    this.probe!.begin(vm.id, 0);
    const probeFromMs = now();
    // Reset the guest's gap once it has stamped a heartbeat the client can see: every gap counted
    // from here starts at a stamp a probe reply was earned by.
    const stampDeadline = now() + 5000;
    while ((readHeartbeatMs(vm.memory) ?? 0) <= probeFromMs + 2 && now() < stampDeadline) await sleep(1);
    await sleep(5);
    guestGapReset(vm.memory);
    const channel = await openWsChannel<DestinationMessage, SourceMessage>(`ws://127.0.0.1:${this.destination.port}/migrate`, {
      codec: migrationSenderCodec,
      token,
      zeroMask: true,
      maxPayloadBytes: MIGRATION_MAX_MESSAGE_BYTES + 64,
      maxControlBytes: MIGRATION_MAX_MESSAGE_BYTES,
    });
    // The VM as the sender sees it: pause marks the host as no longer serving it, and is timed.
    const source: SourceVm = {
      memory: vm.memory,
      dirtyLog: vm.dirtyLog,
      pause: async () => {
        const t = now();
        await vm.pause();
        pauseMs = now() - t;
      },
      resume: () => vm.resume(),
      setThrottle: (percent) => vm.setThrottle(percent),
      captureState: () => vm.captureState(),
    };
    const sender = new MigrationSender({ migrationId, token: migrationId, vm: source, vmInfo: { vmId: vm.id, cpus: cell.vcpus }, channel, policy });
    const states: { to: SenderState; atMs: number }[] = [];
    const rounds: { stats: SenderRoundStats; endMs: number }[] = [];
    sender.on('state', (c) => states.push({ to: c.to, atMs: now() }));
    sender.on('round', (stats) => rounds.push({ stats, endMs: now() }));
    const startMs = now();
    const done = await sender.run();
    await received;
    this.source.vm = undefined;
    await vm.stop();
    // Let the guest run on the destination and the probe see it, then collect.
    const resumedAt = done.report.resumedAtMs ?? now();
    const dest = destVm!;
    const deadline = now() + 5000;
    while ((readGuestInfo(dest.memory)?.heartbeatMs ?? 0) < resumedAt + 30 && now() < deadline) await sleep(5);
    await sleep(20);
    const probe = await this.probe!.end();
    const guest = readGuestInfo(dest.memory)?.maxGapMs ?? Number.NaN;
    this.destination.vm = undefined;
    await dest.stop();
    const endMs = now();
    return toRun(done.report, {
      nonZero,
      guest,
      client: clientGapMs(probe.atMs, probeFromMs, endMs),
      probeLatencyMs: probeLatencyMs(probe.atMs, probe.heartbeats, probeFromMs, endMs),
      phases: phasesOf(startMs, states, rounds),
      pauseMs,
      resumeMs,
    });
  }

  async sampleWws(cell: LabCellSpec, samples: number, intervalMs: number): Promise<WwsSampling> {
    const vm = await this.boot(cell);
    try {
      return await sampleWritableWorkingSet(vm, { samples, intervalMs });
    } finally {
      this.source.vm = undefined;
      await vm.stop();
    }
  }

  async close(): Promise<void> {
    await this.probe?.close();
    await this.source.close();
    await this.destination.close();
  }
}

/** A LabRun from a sender report plus the lab's own measurements. */
export function toRun(
  r: { downtimeMs: number | undefined; totalMs: number; setupMs: number; switchoverMs: number; rounds: number; stopReason: string; bytesOnWire: number; vmBytes: number; zeroPagesSkipped: number; finalThrottlePercent: number; digestVerified: boolean; roundStats: readonly SenderRoundStats[] },
  m: { nonZero: number; guest: number; client: number | undefined; phases: readonly LabPhase[]; pauseMs?: number; resumeMs?: number; probeLatencyMs?: number },
): LabRun {
  const pre = r.roundStats.filter((s) => !s.final);
  const preMs = pre.reduce((a, s) => a + s.durationMs, 0);
  return {
    hypervisorDowntimeMs: r.downtimeMs ?? Number.NaN,
    guestDowntimeMs: m.guest,
    clientDowntimeMs: m.client,
    totalMs: r.totalMs,
    setupMs: r.setupMs,
    switchoverMs: r.switchoverMs,
    rounds: r.rounds,
    stopReason: r.stopReason,
    bytesOnWire: r.bytesOnWire,
    vmBytes: r.vmBytes,
    nonZeroBytes: m.nonZero,
    zeroPagesSkipped: r.zeroPagesSkipped,
    finalThrottlePercent: r.finalThrottlePercent,
    digestVerified: r.digestVerified,
    bandwidthBytesPerSec: preMs > 0 ? pre.reduce((a, s) => a + s.bytesSent, 0) / (preMs / 1000) : 0,
    dirtyRatePagesPerSec: preMs > 0 ? pre.reduce((a, s) => a + s.dirtyPages, 0) / (preMs / 1000) : 0,
    roundStats: r.roundStats.map((s) => ({
      round: s.round,
      final: s.final,
      durationMs: s.durationMs,
      pagesSent: s.pagesSent,
      bytesSent: s.bytesSent,
      dirtyPages: s.dirtyPages,
      pagesRedirtied: s.pagesRedirtied,
      throttlePercent: s.throttlePercent,
      bandwidthBytesPerSec: s.bandwidthBytesPerSec,
      ...(s.rateLimitBytesPerSec !== undefined ? { rateLimitBytesPerSec: s.rateLimitBytesPerSec } : {}),
    })),
    phases: m.phases,
    ...(m.pauseMs !== undefined && m.resumeMs !== undefined ? { pauseMs: m.pauseMs, resumeMs: m.resumeMs } : {}),
    ...(m.probeLatencyMs !== undefined ? { probeLatencyMs: m.probeLatencyMs } : {}),
  };
}
