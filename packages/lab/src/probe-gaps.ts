// Downtime as a probing client sees it, from the replies it received (epoch-ms arrival times and
// the guest heartbeat each reply carried): shared by the lab's drivers and `ferry bench`.

/** The largest gap between consecutive probe replies received in [fromMs, toMs]; undefined with fewer than two. */
export function clientGapMs(replyAtMs: ArrayLike<number>, fromMs: number, toMs: number): number | undefined {
  let last: number | undefined;
  let gap = 0;
  let n = 0;
  for (let i = 0; i < replyAtMs.length; i++) {
    const t = replyAtMs[i]!;
    if (t < fromMs || t > toMs) continue;
    if (last !== undefined) gap = Math.max(gap, t - last);
    last = t;
    n++;
  }
  return n >= 2 ? gap : undefined;
}

/**
 * The largest jump of the guest's heartbeat between consecutive probe replies received in
 * [fromMs, toMs]: the guest's own downtime as far as replies show it (its step gap plus at most one
 * time slice). Replies may arrive out of order; a heartbeat older than the newest seen is skipped.
 */
export function heartbeatJumpMs(atMs: ArrayLike<number>, heartbeats: ArrayLike<number>, fromMs: number, toMs: number): number {
  let last: number | undefined;
  let jump = 0;
  for (let i = 0; i < atMs.length; i++) {
    if (atMs[i]! < fromMs || atMs[i]! > toMs) continue;
    const hb = heartbeats[i]!;
    if (last !== undefined && hb > last) jump = Math.max(jump, hb - last);
    if (last === undefined || hb > last) last = hb;
  }
  return jump;
}

/**
 * The longest a probe reply took to reach the client after the guest stamped the heartbeat it
 * carries, over replies received in [fromMs, toMs]: how late the client may learn that the guest
 * ran, so its gap may be shorter than the guest's by at most this much.
 */
export function probeLatencyMs(replyAtMs: ArrayLike<number>, heartbeats: ArrayLike<number>, fromMs: number, toMs: number): number | undefined {
  let worst: number | undefined;
  for (let i = 0; i < replyAtMs.length; i++) {
    const t = replyAtMs[i]!;
    if (t < fromMs || t > toMs) continue;
    worst = Math.max(worst ?? 0, t - heartbeats[i]!);
  }
  return worst;
}
