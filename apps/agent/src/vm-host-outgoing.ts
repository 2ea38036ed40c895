/**
 * The source side of live migrations on an agent. On `migration-start` it dials the destination's
 * migration port with the one-time token, runs a MigrationSender over the VM, forwards every round
 * as `migration-progress`, and at the commit point sends `migration-ready` and waits for the
 * coordinator's `migration-decision`:
 * - `commit`: the sender activates the destination; the source VM is then released (stopped,
 *   deleted, its memory dropped): it never runs here again.
 * - `abort`, the destination stream closing before the decision, or no decision within
 *   `decisionTimeoutMs`: the VM resumes here. A lost coordinator link does not abort by itself:
 *   `migration-ready` is re-sent after every re-registration, so a restarted coordinator answers
 *   from its journal.
 * The end is reported with `migration-finished` (role source) carrying the report or the error.
 *
 * Paused VMs migrate as they are (no pause, no resume: they arrive paused). Suspended VMs are
 * loaded paused from their suspend file and arrive running: that is "resume on another host".
 */
import {
  MigrationSender,
  MigrationCancelledError,
  InvalidTransitionError as MigrationInvalidTransitionError,
  xenRateLimit,
  type CommitDecision,
  type MigrationSenderPolicy,
  type MigrationSenderReport,
  type SenderRoundStats,
  type SourceVm,
} from '@ferry/migration';
import { Vm } from '@ferry/vm';
import { FERRY_CLOSE } from '@ferry/transport';
import type { AgentToCoordinatorMessage, MigrationPolicy, MigrationReportWire, MigrationStartMessage } from '@ferry/protocol';
import { dialMigration, type OutgoingMigrationChannel } from './migration-server.ts';
import { encodeEnvelope } from './vm-host-envelope.ts';
import { VmHostError, type LocalVmHost, type VmEntry } from './vm-host-local.ts';
import { SwitchoverHistory } from './switchover-history.ts';

interface Outgoing {
  readonly migrationId: string;
  sender: MigrationSender | undefined;
  cancelled: string | undefined;
  decide: ((d: CommitDecision) => void) | undefined;
}

/** The outgoing migrations of one VM host. */
export class OutgoingMigrations {
  private readonly host: LocalVmHost;
  private readonly running = new Map<string, Outgoing>();
  private readonly switchover = new SwitchoverHistory();

  constructor(host: LocalVmHost) {
    this.host = host;
  }

  /** Starts a migration; resolves with `migration-accepted` once it runs (the rest is notifications). */
  async start(m: MigrationStartMessage): Promise<AgentToCoordinatorMessage> {
    const e = this.host.entry(m.vmId);
    if (e.migrationId) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is already migrating (${e.migrationId})`);
    if (e.busy) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is busy (${e.busy})`);
    if (!['running', 'paused', 'suspended'].includes(e.vm.state)) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is ${e.vm.state}; only running, paused or suspended VMs migrate`);
    if (this.running.has(m.migrationId)) throw new VmHostError('FERRY_ERR_INVALID_STATE', `migration ${m.migrationId} already runs here`);
    e.migrationId = m.migrationId;
    const out: Outgoing = { migrationId: m.migrationId, sender: undefined, cancelled: undefined, decide: undefined };
    this.running.set(m.migrationId, out);
    void this.run(m, e, out);
    return { type: 'migration-accepted', requestId: m.requestId, migrationId: m.migrationId };
  }

  /** The coordinator's decision for a migration waiting at its commit point (ignored otherwise). */
  /** Outgoing migrations running now. */
  get active(): number {
    return this.running.size;
  }

  decide(migrationId: string, decision: CommitDecision): void {
    this.running.get(migrationId)?.decide?.(decision);
  }

  /** Cancels a migration before its commit point (ignored when unknown or past it). */
  cancel(migrationId: string, reason: string): void {
    const out = this.running.get(migrationId);
    if (!out) return;
    out.cancelled = reason;
    if (out.decide) {
      out.decide('abort');
      return;
    }
    try {
      out.sender?.cancel(reason);
    } catch (err) {
      if (!(err instanceof MigrationInvalidTransitionError)) throw err;
    }
  }

  /** Aborts everything (shutdown). */
  abortAll(reason: string): void {
    for (const id of [...this.running.keys()]) this.cancel(id, reason);
  }

  private async run(m: MigrationStartMessage, e: VmEntry, out: Outgoing): Promise<void> {
    const host = this.host;
    const log = host.logger.child({ migrationId: m.migrationId, vmId: m.vmId, to: m.destinationHostId });
    const wasSuspended = e.vm.state === 'suspended';
    let loaded: Vm | undefined; // the suspended VM loaded for the trip
    let channel: OutgoingMigrationChannel | undefined;
    try {
      channel = await dialMigration(m.address, m.token);
      if (out.cancelled) throw new MigrationCancelledError(out.cancelled, m.migrationId);
      if (wasSuspended) loaded = await Vm.resumeFrom(e.suspendPath!, host.pool, { paused: true });
      const vm = loaded ?? e.vm;
      const startedPaused = vm.state === 'paused';
      let pauseMs = 0;
      const source: SourceVm = {
        memory: vm.memory,
        dirtyLog: vm.dirtyLog,
        pause: async () => {
          const t0 = performance.now();
          if (!startedPaused) await vm.pause();
          pauseMs = performance.now() - t0;
        },
        resume: () => (startedPaused ? undefined : vm.resume()),
        setThrottle: (p) => vm.setThrottle(p),
        captureState: () => {
          const state = vm.captureState();
          return { registers: state.registers, devices: encodeEnvelope({ spec: e.spec, ...(e.image !== undefined ? { image: e.image } : {}), run: wasSuspended || !startedPaused, devices: state.devices }) };
        },
      };
      const ch = channel;
      const switchoverMs = this.switchover.estimate(m.destinationHostId);
      const sender = new MigrationSender({
        migrationId: m.migrationId,
        token: m.token,
        vm: source,
        vmInfo: { vmId: m.vmId, cpus: e.spec.vcpus },
        // The spec, so the destination places the vCPUs while pages arrive (run and devices: placeholders; transfer-state has them).
        prelude: encodeEnvelope({ spec: e.spec, ...(e.image !== undefined ? { image: e.image } : {}), run: true, devices: new Uint8Array(0) }),
        channel: ch,
        policy: { ...senderPolicyOf(m.policy), ...(switchoverMs !== undefined ? { switchoverMs } : {}) },
        commit: (request) => this.awaitDecision(m, out, ch, request.digest),
      });
      out.sender = sender;
      sender.on('state', ({ to }) => {
        if (to !== 'stopping') return;
        const rounds = sender.rounds;
        host.notify({ type: 'migration-stopping', migrationId: m.migrationId, rounds: rounds.length, pagesLeft: rounds.at(-1)?.pagesLeft ?? 0 });
      });
      sender.on('round', (s: SenderRoundStats) => {
        host.notify({ type: 'migration-progress', migrationId: m.migrationId, round: roundWire(s) });
        log.debug({ event: 'migration-round', round: s.round, final: s.final, pages_sent: s.pagesSent, dirty_pages: s.dirtyPages, duration_ms: s.durationMs }, 'round done');
      });
      log.info({ event: 'migration-source-started', vm_state: vm.state, memory_bytes: e.spec.memoryBytes, switchover_estimate_ms: switchoverMs ?? null }, 'sending the VM');
      const done = await sender.run();
      this.switchover.record(m.destinationHostId, done.report.switchoverMeasuredMs);
      // Committed and activated (or activation unconfirmed): release the VM; it never runs here again.
      await host.releasing(vm, async () => {
        await vm.stop().catch(() => {});
        await vm.delete().catch(() => {});
      });
      if (loaded) {
        await e.vm.delete().catch(() => {});
        await host.removeFile(e.suspendPath);
      }
      host.forget(m.vmId);
      log.info({ event: 'migration-source-completed', pause_ms: pauseMs, downtime_ms: done.report.downtimeMs, switchover_used_ms: done.report.switchoverMs, switchover_measured_ms: done.report.switchoverMeasuredMs, total_ms: done.report.totalMs, rounds: done.report.rounds, bytes_on_wire: done.report.bytesOnWire }, 'VM moved out and released');
      host.notify({ type: 'migration-finished', migrationId: m.migrationId, vmId: m.vmId, role: 'source', outcome: 'completed', report: reportWire(done.report) });
    } catch (err) {
      channel?.close(FERRY_CLOSE.MIGRATION_ABORTED, 'migration failed');
      if (loaded) {
        await loaded.stop().catch(() => {});
        await loaded.delete().catch(() => {});
      }
      e.migrationId = undefined;
      const error = err as { code?: string; message?: string };
      const outcome = err instanceof MigrationCancelledError || out.cancelled !== undefined ? 'cancelled' : 'failed';
      log.warn({ event: `migration-source-${outcome}`, code: error.code, err: error.message, vm_state: e.vm.state }, `migration ${outcome}; the VM stays here`);
      host.notify({
        type: 'migration-finished',
        migrationId: m.migrationId,
        vmId: m.vmId,
        role: 'source',
        outcome,
        error: { code: error.code ?? 'FERRY_ERR_MIGRATION_FAILED', message: error.message ?? String(err) },
        vm: host.report(e),
      });
    } finally {
      this.running.delete(m.migrationId);
    }
  }

  /** The commit hook: ask the coordinator, wait for its answer (see the file comment for the rules). */
  private awaitDecision(m: MigrationStartMessage, out: Outgoing, channel: OutgoingMigrationChannel, digest: string): Promise<CommitDecision> {
    const host = this.host;
    const log = host.logger.child({ migrationId: m.migrationId, vmId: m.vmId });
    if (out.cancelled) return Promise.resolve('abort');
    const askedAtMs = performance.now();
    return new Promise<CommitDecision>((resolve) => {
      let settled = false;
      const sendReady = (): void => {
        if (!settled) host.notify({ type: 'migration-ready', migrationId: m.migrationId, vmId: m.vmId, digest });
      };
      const offRegistered = host.link.onRegistered(sendReady);
      const timer = setTimeout(() => {
        log.warn({ event: 'migration-decision-timeout', decision_timeout_ms: m.decisionTimeoutMs }, 'no decision from the coordinator: abort');
        finish('abort');
      }, m.decisionTimeoutMs);
      const finish = (decision: CommitDecision): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        offRegistered();
        out.decide = undefined;
        log.info({ event: 'migration-decision', decision, commit_wait_ms: performance.now() - askedAtMs }, `decision: ${decision}`);
        resolve(decision);
      };
      out.decide = finish;
      channel.onClose(() => {
        if (!settled) log.warn({ event: 'migration-destination-lost-at-commit' }, 'the destination stream closed before the decision: abort');
        finish('abort');
      });
      sendReady();
    });
  }
}

/**
 * The sender's policy for an API / wire policy: the four limits as they are, and a `rateLimit`
 * turned into the engine's per-round hook (`xenRateLimit`, which takes bits per second), so the
 * sender asks it for every round's rate. Throws MigrationOptionsError on rates the engine refuses.
 */
export function senderPolicyOf(policy: Partial<MigrationPolicy>): Partial<MigrationSenderPolicy> {
  const { rateLimit, ...limits } = policy;
  if (!rateLimit) return limits;
  return {
    ...limits,
    roundRateLimit: xenRateLimit({
      startBitsPerSec: rateLimit.startBytesPerSec * 8,
      stepBitsPerSec: rateLimit.stepBytesPerSec * 8,
      maxBitsPerSec: rateLimit.maxBytesPerSec * 8,
      stopBelowBytes: rateLimit.stopBelowBytes,
    }),
  };
}

function roundWire(s: SenderRoundStats): import('@ferry/protocol').MigrationRoundWire {
  return {
    round: s.round,
    pagesSent: s.pagesSent,
    bytesSent: s.bytesSent,
    dirtyPages: s.dirtyPages,
    dirtyRatePagesPerSec: s.dirtyRatePagesPerSec,
    bandwidthBytesPerSec: s.bandwidthBytesPerSec,
    expectedDowntimeMs: s.expectedDowntimeMs,
    throttlePercent: s.throttlePercent,
    pagesLeft: s.pagesLeft,
    final: s.final,
    durationMs: s.durationMs,
    zeroPagesSent: s.zeroPagesSent,
    endedAtMs: performance.timeOrigin + performance.now(), // called from the round event, as the round ends
  };
}

/** The engine's report on the wire (`downtimeMs` -1 when activation was not confirmed). */
export function reportWire(r: MigrationSenderReport): MigrationReportWire {
  return {
    migrationId: r.migrationId,
    totalMs: r.totalMs,
    setupMs: r.setupMs,
    downtimeMs: r.downtimeMs ?? -1,
    pausedAtMs: r.pausedAtMs,
    rounds: r.rounds,
    stopReason: r.stopReason,
    bytesOnWire: r.bytesOnWire,
    vmBytes: r.vmBytes,
    pageBytesSent: r.pageBytesSent,
    zeroPagesSkipped: r.zeroPagesSkipped,
    digestAlgorithm: r.digestAlgorithm,
    digest: r.digest,
    digestVerified: r.digestVerified,
    finalThrottlePercent: r.finalThrottlePercent,
    switchoverMs: r.switchoverMs,
    switchoverMeasuredMs: r.switchoverMeasuredMs ?? -1,
  };
}
