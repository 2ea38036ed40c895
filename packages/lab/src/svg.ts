// Hand-written SVG charts of the downtime lab. Every function returns a complete SVG document.
import type { LabCell, LabPhase, LabRound } from './model.ts';

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const PHASE_COLORS: Record<LabPhase['name'], string> = {
  setup: '#bab0ac',
  'pre-copy': '#4e79a7',
  'stop-and-copy': '#e15759',
  commitment: '#edc948',
  activation: '#59a14f',
};

/** Escapes text for SVG content and attributes. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function open(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
}

const n1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '0');

/** A log10 axis from 10^lo to 10^hi mapped onto [y0 (bottom), y1 (top)]. */
function logScale(lo: number, hi: number, a: number, b: number): (v: number) => number {
  return (v) => a + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo || 1)) * (b - a);
}

function decades(maxValue: number, minDecade = 0): { lo: number; hi: number } {
  const hi = Math.max(minDecade + 1, Math.ceil(Math.log10(Math.max(1, maxValue)) + 0.001));
  return { lo: minDecade, hi };
}

function fmtTick(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

/**
 * The paper's per-iteration figure for one migration: per round, pages sent and pages dirtied
 * during it (log scale), the final round marked as stop-and-copy.
 */
export function roundsChartSvg(rounds: readonly LabRound[], title: string): string {
  const left = 70, top = 50, plotW = Math.max(320, rounds.length * 46), plotH = 260;
  const width = left + plotW + 30, height = top + plotH + 80;
  const out = open(width, height, title);
  const { lo, hi } = decades(Math.max(1, ...rounds.map((r) => Math.max(r.pagesSent, r.dirtyPages))));
  const y = logScale(lo, hi, top + plotH, top);
  for (let d = lo; d <= hi; d++) {
    const yy = y(10 ** d);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${n1(yy)}" y2="${n1(yy)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${n1(yy + 4)}" text-anchor="end">${fmtTick(10 ** d)}</text>`);
  }
  out.push(`<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">pages (log)</text>`);
  const groupW = plotW / Math.max(1, rounds.length);
  const barW = Math.min(18, (groupW - 8) / 2);
  rounds.forEach((r, i) => {
    const gx = left + i * groupW + (groupW - 2 * barW) / 2;
    const bars: [number, string, string][] = [
      [r.pagesSent, COLORS[0]!, 'sent'],
      [r.dirtyPages, COLORS[1]!, 'dirtied'],
    ];
    bars.forEach(([v, color, what], k) => {
      if (v <= 0) return;
      const yy = y(v);
      out.push(`<rect x="${n1(gx + k * barW)}" y="${n1(yy)}" width="${n1(barW - 1)}" height="${n1(top + plotH - yy)}" fill="${color}"><title>round ${r.round}: ${v} pages ${what}</title></rect>`);
    });
    out.push(`<text x="${n1(left + i * groupW + groupW / 2)}" y="${top + plotH + 16}" text-anchor="middle">${r.final ? 'final' : r.round}</text>`);
    out.push(`<text x="${n1(left + i * groupW + groupW / 2)}" y="${top + plotH + 30}" text-anchor="middle" font-size="10" fill="#555">${n1(r.durationMs)} ms</text>`);
  });
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 50}" text-anchor="middle">round (duration below)</text>`);
  out.push(`<rect x="${left + 10}" y="${top - 18}" width="10" height="10" fill="${COLORS[0]}"/><text x="${left + 24}" y="${top - 9}">pages sent</text>`);
  out.push(`<rect x="${left + 110}" y="${top - 18}" width="10" height="10" fill="${COLORS[1]}"/><text x="${left + 124}" y="${top - 9}">pages dirtied during the round</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Migration timelines, one row per cell (its median run), each row on its own time scale (the
 * total is printed): setup, pre-copy rounds, stop-and-copy, commitment, activation. Spans shorter
 * than 2 px are drawn 2 px wide so the downtime stays visible.
 */
export function timelineChartSvg(rows: readonly { readonly label: string; readonly phases: readonly LabPhase[]; readonly downtimeMs: number }[], title: string): string {
  const left = 230, top = 56, rowH = 26, plotW = 560;
  const width = left + plotW + 150, height = top + rows.length * rowH + 50;
  const out = open(width, height, title);
  const names = Object.keys(PHASE_COLORS) as LabPhase['name'][];
  names.forEach((name, i) => {
    out.push(`<rect x="${left + i * 120}" y="${top - 22}" width="10" height="10" fill="${PHASE_COLORS[name]}"/><text x="${left + i * 120 + 14}" y="${top - 13}">${name}</text>`);
  });
  rows.forEach((row, i) => {
    const y0 = top + i * rowH;
    const total = Math.max(0.001, ...row.phases.map((p) => p.endMs));
    const x = (t: number): number => left + (t / total) * plotW;
    out.push(`<text x="${left - 8}" y="${y0 + 15}" text-anchor="end">${esc(row.label)}</text>`);
    row.phases.forEach((p, k) => {
      const w = Math.max(2, x(p.endMs) - x(p.startMs));
      const stripe = p.name === 'pre-copy' && (p.round ?? 0) % 2 === 0 ? ' fill-opacity="0.7"' : '';
      out.push(`<rect x="${n1(x(p.startMs))}" y="${y0 + 3}" width="${n1(w)}" height="${rowH - 8}" fill="${PHASE_COLORS[p.name]}"${stripe}><title>${esc(p.name)}${p.round !== undefined ? ` round ${p.round}` : ''}: ${n1(p.startMs)}–${n1(p.endMs)} ms (${(p.endMs - p.startMs).toFixed(2)} ms)</title></rect>`);
      if (k === row.phases.length - 1) out.push(`<text x="${left + plotW + 8}" y="${y0 + 15}">${n1(total)} ms, down ${row.downtimeMs.toFixed(2)} ms</text>`);
    });
  });
  out.push(`<text x="${left + plotW / 2}" y="${height - 12}" text-anchor="middle">time from migration start (each row scaled to its own total)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** One point of the downtime-vs-dirty-rate chart. */
export interface DowntimePoint {
  readonly label: string;
  /** Series (colour): e.g. the policy. */
  readonly series: string;
  readonly dirtyRateBytesPerSec: number;
  readonly downtimeMs: number;
  readonly downtimeMaxMs: number;
}

/** Hypervisor downtime (median, whisker to max) against the measured dirty rate, log-log, coloured by series. */
export function downtimeChartSvg(points: readonly DowntimePoint[], title: string): string {
  const left = 70, top = 50, plotW = 560, plotH = 320;
  const series = [...new Set(points.map((p) => p.series))];
  const width = left + plotW + 200, height = top + plotH + 60;
  const out = open(width, height, title);
  const xr = { lo: 4, hi: Math.max(9, Math.ceil(Math.log10(Math.max(1, ...points.map((p) => p.dirtyRateBytesPerSec))) + 0.001)) };
  const yr = { lo: -2, hi: Math.max(1, Math.ceil(Math.log10(Math.max(1, ...points.map((p) => p.downtimeMaxMs))) + 0.001)) };
  const x = logScale(xr.lo, xr.hi, left, left + plotW);
  const y = logScale(yr.lo, yr.hi, top + plotH, top);
  for (let d = xr.lo; d <= xr.hi; d++) {
    out.push(`<line x1="${n1(x(10 ** d))}" x2="${n1(x(10 ** d))}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${n1(x(10 ** d))}" y="${top + plotH + 16}" text-anchor="middle">${d >= 6 ? 10 ** (d - 6) : (10 ** (d - 6)).toFixed(6 - d)} MB/s</text>`);
  }
  for (let d = yr.lo; d <= yr.hi; d++) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${n1(y(10 ** d))}" y2="${n1(y(10 ** d))}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${n1(y(10 ** d) + 4)}" text-anchor="end">${10 ** d >= 1 ? 10 ** d : (10 ** d).toFixed(-d)} ms</text>`);
  }
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 40}" text-anchor="middle">measured dirty rate (log; idle plotted at the left edge)</text>`);
  out.push(`<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">downtime, hypervisor (log)</text>`);
  for (const p of points) {
    const color = COLORS[series.indexOf(p.series) % COLORS.length]!;
    const px = x(p.dirtyRateBytesPerSec);
    out.push(`<line x1="${n1(px)}" x2="${n1(px)}" y1="${n1(y(p.downtimeMs))}" y2="${n1(y(p.downtimeMaxMs))}" stroke="${color}"/>`);
    out.push(`<circle cx="${n1(px)}" cy="${n1(y(p.downtimeMs))}" r="4" fill="${color}"><title>${esc(p.label)}: ${p.downtimeMs.toFixed(2)} ms median, ${p.downtimeMaxMs.toFixed(2)} max, dirty ${(p.dirtyRateBytesPerSec / 1e6).toFixed(1)} MB/s</title></circle>`);
  }
  series.forEach((s, i) => {
    out.push(`<circle cx="${left + plotW + 20}" cy="${top + 10 + i * 18}" r="4" fill="${COLORS[i % COLORS.length]}"/><text x="${left + plotW + 30}" y="${top + 14 + i * 18}">${esc(s)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The writable working set over time, per workload: pages dirtied in each sample interval. */
export function wwsChartSvg(series: readonly { readonly label: string; readonly intervalMs: number; readonly dirtyPages: readonly number[] }[], title: string): string {
  const left = 70, top = 50, plotW = 560, plotH = 280;
  const width = left + plotW + 220, height = top + plotH + 60;
  const out = open(width, height, title);
  const maxT = Math.max(1, ...series.map((s) => s.dirtyPages.length * s.intervalMs));
  const { lo, hi } = decades(Math.max(1, ...series.flatMap((s) => s.dirtyPages)));
  const y = logScale(lo, hi, top + plotH, top);
  const x = (t: number): number => left + (t / maxT) * plotW;
  for (let d = lo; d <= hi; d++) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${n1(y(10 ** d))}" y2="${n1(y(10 ** d))}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${n1(y(10 ** d) + 4)}" text-anchor="end">${fmtTick(10 ** d)}</text>`);
  }
  for (let t = 0; t <= 4; t++) out.push(`<text x="${n1(x((maxT * t) / 4))}" y="${top + plotH + 16}" text-anchor="middle">${Math.round((maxT * t) / 4)} ms</text>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">pages dirtied per interval (log)</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const pts = s.dirtyPages.map((v, k) => `${n1(x((k + 1) * s.intervalMs))},${n1(y(Math.max(1, v)))}`).join(' ');
    if (pts) out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"><title>${esc(s.label)}</title></polyline>`);
    out.push(`<line x1="${left + plotW + 12}" x2="${left + plotW + 28}" y1="${top + 10 + i * 18}" y2="${top + 10 + i * 18}" stroke="${color}" stroke-width="2"/><text x="${left + plotW + 32}" y="${top + 14 + i * 18}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The charts of a set of cells: file name → SVG document. */
export function labCharts(cells: readonly LabCell[]): Map<string, string> {
  const charts = new Map<string, string>();
  for (const c of cells) charts.set(`rounds-${c.name}.svg`, roundsChartSvg(c.sample.roundStats, `Per-round pages sent and dirtied: ${c.name}`));
  charts.set('timeline.svg', timelineChartSvg(cells.map((c) => ({ label: c.name, phases: c.sample.phases, downtimeMs: c.sample.hypervisorDowntimeMs })), 'Migration timeline (median run of each cell)'));
  charts.set(
    'downtime-vs-dirty-rate.svg',
    downtimeChartSvg(
      cells.map((c) => ({ label: c.name, series: c.policy, dirtyRateBytesPerSec: c.dirtyRatePagesPerSec * 4096, downtimeMs: c.downtimeMs.hypervisor.median, downtimeMaxMs: c.downtimeMs.hypervisor.max })),
      'Downtime vs dirty rate across workloads',
    ),
  );
  const wws = cells.filter((c) => c.wws);
  if (wws.length > 0) charts.set('wws.svg', wwsChartSvg(wws.map((c) => ({ label: c.name, intervalMs: c.wws!.intervalMs, dirtyPages: c.wws!.dirtyPagesPerSample })), 'Writable working set over time'));
  return charts;
}
