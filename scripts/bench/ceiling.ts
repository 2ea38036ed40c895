// `pnpm bench ceiling [--json] [--quick] [--runs N] [--bytes SIZE]`: raw TCP and raw ws throughput
// between two real processes on loopback (this one sends, a forked child receives), for each ws
// direction, frame size, mask and send path. Prints a table, or one JSON object with --json:
// { tcpBytesPerSec, wsBytesPerSec, cases: [{ name, transport, direction, mask, sendMode, frameBytes,
//   partsPerFrame, bytes, runs, bytesPerSec, minBytesPerSec, maxBytesPerSec }] }.
// wsBytesPerSec is the path migrations use (see apps/agent/src/migration-server.ts).
import { parseArgs } from 'node:util';
import { measureTcpCeiling, measureWsCeiling, type WsCeilingOptions, type CeilingResult } from '@ferry/transport';
import { parseSize, formatSize } from '@ferry/protocol';

interface Case {
  readonly name: string;
  readonly transport: 'tcp' | 'ws';
  readonly ws?: WsCeilingOptions;
  readonly frameBytes: number;
  /** Fraction of the total bytes (small frames are slow: move less). */
  readonly share?: number;
}

const MiB = 2 ** 20;
const CASES: readonly Case[] = [
  { name: 'tcp-1m', transport: 'tcp', frameBytes: MiB },
  { name: 'ws-s2c-send-1m', transport: 'ws', frameBytes: MiB, ws: { direction: 'server-to-client', sendMode: 'ws-send' } },
  { name: 'ws-s2c-raw-1m', transport: 'ws', frameBytes: MiB, ws: { direction: 'server-to-client', sendMode: 'raw' } },
  { name: 'ws-s2c-raw-256k', transport: 'ws', frameBytes: 256 * 1024, ws: { direction: 'server-to-client', sendMode: 'raw' } },
  { name: 'ws-s2c-raw-4m', transport: 'ws', frameBytes: 4 * MiB, ws: { direction: 'server-to-client', sendMode: 'raw' } },
  { name: 'ws-s2c-raw-1m-256parts', transport: 'ws', frameBytes: MiB, ws: { direction: 'server-to-client', sendMode: 'raw', partsPerFrame: 256 } },
  { name: 'ws-s2c-copy-1m-256parts', transport: 'ws', frameBytes: MiB, ws: { direction: 'server-to-client', sendMode: 'copy', partsPerFrame: 256 } },
  { name: 'ws-s2c-fragments-1m-256parts', transport: 'ws', frameBytes: MiB, ws: { direction: 'server-to-client', sendMode: 'fragments', partsPerFrame: 256 } },
  { name: 'ws-s2c-raw-4k', transport: 'ws', frameBytes: 4096, share: 1 / 8, ws: { direction: 'server-to-client', sendMode: 'raw' } },
  { name: 'ws-c2s-send-bufferutil-1m', transport: 'ws', frameBytes: MiB, ws: { direction: 'client-to-server', sendMode: 'ws-send', mask: 'bufferutil' } },
  { name: 'ws-c2s-send-zeromask-1m', transport: 'ws', frameBytes: MiB, ws: { direction: 'client-to-server', sendMode: 'ws-send', mask: 'zero' } },
  { name: 'ws-c2s-raw-zeromask-1m', transport: 'ws', frameBytes: MiB, ws: { direction: 'client-to-server', sendMode: 'raw', mask: 'zero' } },
  { name: 'ws-c2s-copy-zeromask-1m-256parts', transport: 'ws', frameBytes: MiB, ws: { direction: 'client-to-server', sendMode: 'copy', mask: 'zero', partsPerFrame: 256 } },
  { name: 'ws-c2s-raw-zeromask-1m-256parts', transport: 'ws', frameBytes: MiB, ws: { direction: 'client-to-server', sendMode: 'raw', mask: 'zero', partsPerFrame: 256 } },
];

/** The case whose figure is reported as `wsBytesPerSec`: the migration stream's path. */
const MIGRATION_PATH_CASE = 'ws-c2s-raw-zeromask-1m-256parts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, runs: { type: 'string' }, bytes: { type: 'string' } } });
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  const bytes = parseSize(values.bytes ?? (values.quick ? '128MiB' : '512MiB'), '--bytes');
  const rows = [];
  for (const c of CASES) {
    const caseBytes = Math.max(c.frameBytes, Math.floor((bytes * (c.share ?? 1)) / c.frameBytes) * c.frameBytes);
    const results: CeilingResult[] = [];
    for (let i = 0; i < runs; i++) {
      results.push(c.transport === 'tcp' ? await measureTcpCeiling({ bytes: caseBytes, frameBytes: c.frameBytes }) : await measureWsCeiling({ bytes: caseBytes, frameBytes: c.frameBytes, ...c.ws }));
    }
    const rates = results.map((r) => r.bytesPerSec);
    rows.push({
      name: c.name,
      transport: c.transport,
      direction: c.ws?.direction ?? null,
      mask: c.ws?.direction === 'client-to-server' ? (c.ws.mask ?? 'bufferutil') : null,
      sendMode: c.ws?.sendMode ?? null,
      frameBytes: c.frameBytes,
      partsPerFrame: c.ws?.partsPerFrame ?? 1,
      bytes: caseBytes,
      runs,
      bytesPerSec: Math.round(median(rates)),
      minBytesPerSec: Math.round(Math.min(...rates)),
      maxBytesPerSec: Math.round(Math.max(...rates)),
    });
    if (!values.json) process.stderr.write('.');
  }
  const tcp = rows.find((r) => r.name === 'tcp-1m')!.bytesPerSec;
  const ws = rows.find((r) => r.name === MIGRATION_PATH_CASE)!.bytesPerSec;
  if (values.json) {
    process.stdout.write(JSON.stringify({ tcpBytesPerSec: tcp, wsBytesPerSec: ws, wsPath: MIGRATION_PATH_CASE, cases: rows }) + '\n');
    return;
  }
  process.stderr.write('\n');
  const gb = (n: number): string => (n / 1e9).toFixed(2);
  const header = ['case', 'frame', 'parts', 'GB/s', 'min', 'max', 'vs tcp'];
  const table = rows.map((r) => [r.name, formatSize(r.frameBytes), String(r.partsPerFrame), gb(r.bytesPerSec), gb(r.minBytesPerSec), gb(r.maxBytesPerSec), `${Math.round((100 * r.bytesPerSec) / tcp)}%`]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const row of table) console.log(line(row));
  console.log(`\nruns: ${runs} of ${formatSize(bytes)} each (median; 4k frames move 1/8). Migration path (${MIGRATION_PATH_CASE}): ${gb(ws)} GB/s = ${Math.round((100 * ws) / tcp)}% of raw TCP.`);
}
