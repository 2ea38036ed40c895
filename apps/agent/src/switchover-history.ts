/**
 * What the switch-over of an outgoing migration really cost, per destination host, so the next
 * migration's downtime estimate uses a measurement (the "measured fixed cost of the
 * switch-over") instead of the sender's guess of two handshake round trips. On this machine the
 * guess is 1–3 ms while the switch-over (pause, state, digest check, the commit point, resuming
 * the VM on the destination) costs about 8 ms, so a sender that trusted the guess stopped with
 * several milliseconds of pages left and overshot a 10 ms target.
 */

/** How many recent measurements a destination keeps; the estimate is their median. */
export const SWITCHOVER_SAMPLES = 5;

/** Per-destination record of measured switch-over costs (MigrationSenderReport.switchoverMeasuredMs). */
export class SwitchoverHistory {
  private readonly byHost = new Map<string, number[]>();

  /** Records one completed migration's measured cost; ignores a missing or non-finite value. */
  record(destinationHostId: string, switchoverMs: number | undefined): void {
    if (switchoverMs === undefined || !Number.isFinite(switchoverMs) || switchoverMs < 0) return;
    const samples = this.byHost.get(destinationHostId) ?? [];
    samples.push(switchoverMs);
    if (samples.length > SWITCHOVER_SAMPLES) samples.shift();
    this.byHost.set(destinationHostId, samples);
  }

  /** The median of the recent measurements for `destinationHostId`, or undefined before the first. */
  estimate(destinationHostId: string): number | undefined {
    const samples = this.byHost.get(destinationHostId);
    if (!samples || samples.length === 0) return undefined;
    const sorted = [...samples].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  }
}
