import { formatRate, formatSize, type ApiEvent, type Host, type Image, type Migration, type MigrationPolicy, type MigrationReport, type MigrationTimeline, type RoundStats, type Vm } from '@ferry/protocol';

/** Guest page size, to turn VM memory into pages for progress (every Ferry page is 4 KiB). */
const PAGE_SIZE_BYTES_API = 4096;

// Plain-text rendering of API resources in the style of virsh and the openstack CLI: aligned
// tables for lists, "Field  Value" blocks for one resource. Pure functions of their input.

/** One column of a table: header text and how to get a cell from a row. `align: 'right'` for numbers. */
export interface Column<T> {
  readonly header: string;
  readonly cell: (row: T) => string;
  readonly align?: 'left' | 'right';
}

/** An aligned table: upper-case headers, two spaces between columns, no trailing spaces. `(none)` when empty. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  if (rows.length === 0) return '(none)\n';
  const cells = rows.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

/** A "Field  Value" block with aligned field names. */
export function renderFields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join('\n') + '\n';
}

/** Milliseconds for people: `850 ms`, `2.4 s`, `3 min 5 s`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** How long ago an ISO time was, relative to `nowMs`: `3s ago`, `2m ago`, `-` if unparseable. */
export function formatAge(iso: string, nowMs: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '-';
  const s = Math.max(0, Math.round((nowMs - t) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** An integer with thousands separators: `12,345`. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** The hosts table. */
export function renderHosts(hosts: readonly Host[], nowMs = Date.now()): string {
  return renderTable(hosts, [
    { header: 'id', cell: (h) => h.id },
    { header: 'state', cell: (h) => h.state },
    { header: 'address', cell: (h) => h.address },
    { header: 'cpus', cell: (h) => `${h.used.cpus}/${h.capacity.cpus}`, align: 'right' },
    { header: 'memory', cell: (h) => `${formatSize(h.used.memoryBytes)} / ${formatSize(h.capacity.memoryBytes)}`, align: 'right' },
    { header: 'disk', cell: (h) => `${formatSize(h.used.diskBytes)} / ${formatSize(h.capacity.diskBytes)}`, align: 'right' },
    { header: 'vms', cell: (h) => String(h.vms), align: 'right' },
    { header: 'heartbeat', cell: (h) => formatAge(h.lastHeartbeatAt, nowMs) },
  ]);
}

/** The VMs table. */
export function renderVms(vms: readonly Vm[]): string {
  return renderTable(vms, [
    { header: 'id', cell: (v) => v.id },
    { header: 'name', cell: (v) => v.name },
    { header: 'state', cell: (v) => v.state },
    { header: 'host', cell: (v) => v.host ?? '-' },
    { header: 'ip', cell: (v) => v.ip || '-' },
    { header: 'image', cell: (v) => v.image },
    { header: 'cpus', cell: (v) => String(v.cpus), align: 'right' },
    { header: 'memory', cell: (v) => formatSize(v.memoryBytes), align: 'right' },
    { header: 'workload', cell: (v) => v.workload?.kind ?? '-' },
    { header: 'group', cell: (v) => (v.group ? `${v.group.name} (${v.group.policy})` : '-') },
  ]);
}

/** The images table, with dedup figures. */
export function renderImages(images: readonly Image[]): string {
  return renderTable(images, [
    { header: 'id', cell: (i) => i.id },
    { header: 'memory', cell: (i) => formatSize(i.memoryBytes), align: 'right' },
    { header: 'disk', cell: (i) => formatSize(i.diskBytes), align: 'right' },
    { header: 'pages', cell: (i) => formatCount(i.pages), align: 'right' },
    { header: 'unique', cell: (i) => formatCount(i.uniquePages), align: 'right' },
    { header: 'shared', cell: (i) => formatCount(i.sharedPages), align: 'right' },
    { header: 'description', cell: (i) => i.description },
  ]);
}

/** The migrations table. */
export function renderMigrations(migrations: readonly Migration[]): string {
  return renderTable(migrations, [
    { header: 'id', cell: (m) => m.id },
    { header: 'vm', cell: (m) => m.vm },
    { header: 'from', cell: (m) => m.from },
    { header: 'to', cell: (m) => m.to },
    { header: 'state', cell: (m) => m.state },
    { header: 'rounds', cell: (m) => String(m.report?.rounds ?? m.rounds.length), align: 'right' },
    { header: 'downtime', cell: (m) => (m.report ? formatMs(m.report.downtimeMs) : '-'), align: 'right' },
    { header: 'total', cell: (m) => (m.report ? formatMs(m.report.totalMs) : '-'), align: 'right' },
    { header: 'on wire', cell: (m) => (m.report ? formatSize(m.report.bytesOnWire) : '-'), align: 'right' },
  ]);
}

/** One VM (instance) in detail, credentials included: what `run` and `show VM` print. */
export function renderVm(vm: Vm): string {
  return renderFields([
    ['id', vm.id],
    ['name', vm.name],
    ['state', vm.state],
    ['host', vm.host ?? '-'],
    ['ip', vm.ip || '-'],
    ['image', vm.image],
    ['cpus', String(vm.cpus)],
    ['memory', formatSize(vm.memoryBytes)],
    ['disk', formatSize(vm.diskBytes)],
    ['workload', vm.workload ? describeObject(vm.workload) : '-'],
    ['group', vm.group ? `${vm.group.name} (${vm.group.policy})` : '-'],
    ['user', vm.credentials?.user ?? '-'],
    ['password', vm.credentials?.password ?? '-'],
    ['created', vm.createdAt],
  ]);
}

/** One host in detail. */
export function renderHost(host: Host, nowMs = Date.now()): string {
  return renderFields([
    ['id', host.id],
    ['state', host.state],
    ['address', host.address],
    ['cpus', `${host.used.cpus} used of ${host.capacity.cpus}`],
    ['memory', `${formatSize(host.used.memoryBytes)} used of ${formatSize(host.capacity.memoryBytes)}`],
    ['disk', `${formatSize(host.used.diskBytes)} used of ${formatSize(host.capacity.diskBytes)}`],
    ['vms', String(host.vms)],
    ['heartbeat', `${host.lastHeartbeatAt} (${formatAge(host.lastHeartbeatAt, nowMs)})`],
  ]);
}

/** One image in detail. */
export function renderImage(image: Image): string {
  return renderFields([
    ['id', image.id],
    ['name', image.name],
    ['description', image.description],
    ['memory', formatSize(image.memoryBytes)],
    ['disk', formatSize(image.diskBytes)],
    ['pages', `${formatCount(image.pages)} (${formatCount(image.uniquePages)} unique, ${formatCount(image.sharedPages)} shared)`],
  ]);
}

/** The final report of a migration: downtime, total time, rounds, bytes on the wire versus VM size. */
export function renderReport(report: MigrationReport): string {
  return renderFields(reportFields(report));
}

function reportFields(report: MigrationReport): [string, string][] {
  const ratio = report.vmBytes > 0 ? ` (${(report.bytesOnWire / report.vmBytes).toFixed(2)}x VM size)` : '';
  return [
    ['migration', report.id],
    ['vm', report.vm],
    ['from → to', `${report.from} → ${report.to}`],
    ['state', report.state],
    ['downtime', formatMs(report.downtimeMs)],
    ['total time', formatMs(report.totalMs)],
    ['setup', formatMs(report.setupMs)],
    ['rounds', String(report.rounds)],
    ['bytes on wire', `${formatSize(report.bytesOnWire)} of ${formatSize(report.vmBytes)} VM${ratio}`],
    ['zero pages', `${formatCount(report.zeroPagesSkipped)} skipped`],
    ['digest', report.digestVerified ? 'verified' : 'NOT verified'],
  ];
}

/** A rate as links are quoted: `100 Mbit/s` (decimal, as the `--rate-*` flags also accept it). */
export function formatBitRate(bytesPerSec: number): string {
  const bits = bytesPerSec * 8;
  return bits >= 1e9 ? `${+(bits / 1e9).toFixed(2)} Gbit/s` : `${+(bits / 1e6).toFixed(2)} Mbit/s`;
}

/** A policy on one line: limits, bandwidth or rate limit, auto-converge. */
export function renderPolicy(p: MigrationPolicy): string {
  const rate = p.rateLimit
    ? `rate limit ${p.rateLimit.kind} ${formatBitRate(p.rateLimit.startBytesPerSec)} → ${formatBitRate(p.rateLimit.maxBytesPerSec)} (dirty rate + ${formatBitRate(p.rateLimit.stepBytesPerSec)})`
    : `bandwidth ${p.bandwidthLimit > 0 ? formatRate(p.bandwidthLimit) : 'unlimited'}`;
  return `max downtime ${formatMs(p.maxDowntimeMs)}, max rounds ${p.maxRounds}, ${rate}${p.autoConverge ? ', auto-converge' : ''}`;
}

/** A migration's timeline on one line: pre-copy, stop-and-copy, commitment, activation (ms since its start). */
export function renderTimeline(t: MigrationTimeline): string {
  const at = (ms: number | undefined): string => (ms === undefined ? '?' : ms.toFixed(1));
  const pre = t.rounds.filter((x) => !x.final);
  const last = t.rounds.find((x) => x.final);
  const parts = [
    ...(pre.length > 0 ? [`pre-copy ${at(pre[0]!.startMs)}–${at(pre.at(-1)!.endMs)} (${pre.length} rounds)`] : []),
    ...(last ? [`stop-and-copy ${at(last.startMs)}–${at(t.readyMs)}`] : []),
    ...(t.committedMs !== undefined ? [`committed ${at(t.committedMs)}`] : []),
    ...(t.activatedMs !== undefined ? [`activated ${at(t.activatedMs)}`] : []),
  ];
  return parts.length > 0 ? `${parts.join(', ')} ms` : '-';
}

/** One migration in detail (without a report yet: its rounds so far), with its policy and timeline. */
export function renderMigration(m: Migration): string {
  const head: [string, string][] = m.report
    ? reportFields(m.report)
    : [
        ['migration', m.id],
        ['vm', m.vm],
        ['from → to', `${m.from} → ${m.to}`],
        ['state', m.state],
        ['rounds', String(m.rounds.length)],
      ];
  return renderFields([
    ...head,
    ['policy', renderPolicy(m.policy)],
    ...(m.timeline ? [['timeline', renderTimeline(m.timeline)] as [string, string]] : []),
    ...(m.error ? [['error', `${m.error.code}: ${m.error.message}`] as [string, string]] : []),
  ]);
}

const BAR_WIDTH = 24;

/**
 * One progress line for a finished pre-copy round: a bar of how much of the VM is already across
 * (1 − pagesLeft / vmPages), pages left, dirty rate, bandwidth, expected downtime, throttle.
 */
export function renderRoundProgress(round: RoundStats, vmPages: number): string {
  const done = vmPages > 0 ? Math.min(1, Math.max(0, 1 - round.pagesLeft / vmPages)) : 0;
  const filled = Math.round(done * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
  const throttle = round.throttlePercent > 0 ? `  throttle ${round.throttlePercent}%` : '';
  return (
    `round ${String(round.round).padStart(2)} ${bar} ${String(Math.round(done * 100)).padStart(3)}%` +
    `  pages left ${formatCount(round.pagesLeft)}` +
    `  dirty ${formatCount(round.dirtyRatePagesPerSec)} pages/s` +
    `  bw ${formatRate(round.bandwidthBytesPerSec)}` +
    `  expected downtime ${formatMs(round.expectedDowntimeMs)}${throttle}\n`
  );
}

/** One event line: `#seq time type subject key=value...`. */
export function renderEvent(e: ApiEvent): string {
  const time = e.at.length >= 23 ? e.at.slice(11, 23) : e.at;
  const subject = [e.vm && `vm=${e.vm}`, e.host && `host=${e.host}`, e.migration && `migration=${e.migration}`].filter(Boolean).join(' ');
  const data = describeObject(e.data, 6);
  return `#${e.seq}  ${time}  ${e.type}${subject ? `  ${subject}` : ''}${data ? `  ${data}` : ''}\n`;
}

/** `key=value` for the primitive fields of an object (at most `max`), for one-line summaries. */
export function describeObject(o: Readonly<Record<string, unknown>> | undefined, max = 8): string {
  if (!o) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (parts.length >= max) break;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') parts.push(`${k}=${v}`);
  }
  return parts.join(' ');
}

/** Pages in a VM of `memoryBytes`. */
export function vmPagesOf(memoryBytes: number): number {
  return Math.ceil(memoryBytes / PAGE_SIZE_BYTES_API);
}
