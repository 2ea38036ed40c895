import type { Summary } from './stats.ts';

/** How the lab's migrations ran: between agent processes, or both ends in the lab's own process. */
export type LabMode = 'multi-process' | 'in-process';

/** One pre-copy round of one run, as the charts need it. */
export interface LabRound {
  readonly round: number;
  readonly final: boolean;
  readonly durationMs: number;
  readonly pagesSent: number;
  readonly bytesSent: number;
  /** Pages dirtied during the round (what the next round sends). */
  readonly dirtyPages: number;
  readonly pagesRedirtied: number;
  readonly throttlePercent: number;
  readonly bandwidthBytesPerSec: number;
  readonly rateLimitBytesPerSec?: number;
}

/** A named span of one migration, in ms from its start (the timeline chart). */
export interface LabPhase {
  readonly name: 'setup' | 'pre-copy' | 'stop-and-copy' | 'commitment' | 'activation';
  readonly startMs: number;
  readonly endMs: number;
  /** Pre-copy only: the round. */
  readonly round?: number;
}

/** One migration of one cell. Times in ms. */
export interface LabRun {
  /** Source pause to destination resume, from the migration report. */
  readonly hypervisorDowntimeMs: number;
  /** Largest gap in the guest's own heartbeat across the migration. */
  readonly guestDowntimeMs: number;
  /** Largest gap between replies to a client probing every millisecond; undefined when not probed. */
  readonly clientDowntimeMs: number | undefined;
  readonly totalMs: number;
  readonly setupMs: number;
  /** The switch-over cost the sender's downtime estimate used (measured on earlier migrations, or guessed); undefined when not reported. */
  readonly switchoverMs?: number;
  readonly rounds: number;
  readonly stopReason: string;
  readonly bytesOnWire: number;
  readonly vmBytes: number;
  /** Non-zero bytes of guest memory when the migration started. */
  readonly nonZeroBytes: number;
  readonly zeroPagesSkipped: number;
  readonly finalThrottlePercent: number;
  readonly digestVerified: boolean;
  /** Page bytes sent ÷ time from the first round's start to the pause. */
  readonly bandwidthBytesPerSec: number;
  /** Mean dirty rate over the pre-copy rounds after the first (pages/s). */
  readonly dirtyRatePagesPerSec: number;
  readonly roundStats: readonly LabRound[];
  readonly phases: readonly LabPhase[];
  /** How long the source VM's pause took (request → every vCPU parked): the guest may run that long after the pause began. */
  readonly pauseMs?: number;
  /** How long building and resuming the VM on the destination took (the guest may run before resume is acknowledged). */
  readonly resumeMs?: number;
  /** Longest time from a heartbeat stamp to the client receiving the reply carrying it. */
  readonly probeLatencyMs?: number;
}

/** What writable-working-set sampling predicted for a cell, against what was measured. */
export interface LabWws {
  readonly intervalMs: number;
  readonly samples: number;
  readonly wwsPages: number;
  /** Mean pages dirtied per sample interval. */
  readonly meanDirtyPagesPerSample: number;
  /** Dirty pages per sample (the WWS-over-time chart). */
  readonly dirtyPagesPerSample: readonly number[];
  readonly predictedDowntimeMs: number;
  readonly predictedRounds: number;
  readonly atBandwidthBytesPerSec: number;
  readonly measuredDowntimeMs: number;
}

/** One cell of the matrix: a VM size × workload × policy, run `runs` times. */
export interface LabCell {
  readonly name: string;
  readonly vmBytes: number;
  readonly workload: string;
  readonly policy: string;
  /** Set when this cell ran differently from the report's mode (e.g. in-process in a multi-process lab). */
  readonly mode?: LabMode;
  readonly runs: number;
  readonly downtimeMs: { readonly hypervisor: Summary; readonly guest: Summary; readonly client: Summary | undefined };
  readonly totalMs: Summary;
  readonly setupMs: Summary;
  /** Of the runs that reported it (n 0 when none did). */
  readonly switchoverMs: Summary;
  readonly rounds: Summary;
  /** bytesOnWire ÷ vmBytes. */
  readonly wireRatio: Summary;
  readonly bytesOnWire: number;
  readonly nonZeroBytes: number;
  readonly zeroPagesSkipped: number;
  readonly finalThrottlePercent: Summary;
  readonly bandwidthBytesPerSec: number;
  readonly dirtyRatePagesPerSec: number;
  readonly digestVerified: boolean;
  readonly stopReasons: readonly string[];
  readonly wws?: LabWws;
  /** The run whose hypervisor downtime is the median: drawn in the charts. */
  readonly sample: LabRun;
  readonly all: readonly LabRun[];
}

/** The machine a lab ran on. */
export interface LabMachine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly node: string;
  readonly platform: string;
  readonly loadAverage: readonly number[];
}

/** A whole lab run. */
export interface LabReport {
  readonly mode: LabMode;
  readonly quick: boolean;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly machine: LabMachine;
  readonly ceiling: { readonly tcpBytesPerSec: number; readonly wsBytesPerSec: number };
  /** Probe interval of the client measurement (ms), when probed. */
  readonly probeIntervalMs: number | undefined;
  readonly cells: readonly LabCell[];
  /** Anything the reader must know (what was skipped and why). */
  readonly notes: readonly string[];
}
