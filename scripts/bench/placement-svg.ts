// Hand-written SVG chart for `pnpm bench placement`: per cluster size, one bar per strategy for
// hosts used ÷ lower bound (left panel) and fragmentation (right panel).
// `pnpm bench placement-svg RESULTS.json [--svg PATH]` redraws it from a saved
// `pnpm -s bench placement --json` (default PATH: bench-out/placement.svg).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** The fields of a bench result the chart reads. */
export interface ChartRow {
  readonly strategy: string;
  readonly hosts: number;
  readonly hostsUsed: number;
  readonly lowerBound: number;
  readonly fragmentation: number;
}

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The chart as an SVG document. */
export function placementChartSvg(rows: readonly ChartRow[], title: string): string {
  const strategies = [...new Set(rows.map((r) => r.strategy))];
  const sizes = [...new Set(rows.map((r) => r.hosts))].sort((a, b) => a - b);
  const panelW = 460, panelH = 280, top = 60, left = 60, gap = 80;
  const width = left + 2 * panelW + gap + 40, height = top + panelH + 110;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  const panels = [
    { name: 'hosts used ÷ lower bound (static trace)', value: (r: ChartRow) => (r.lowerBound > 0 ? r.hostsUsed / r.lowerBound : 0), ref: 11 / 9, refLabel: '11/9' },
    { name: 'fragmentation after churn (free capacity unusable)', value: (r: ChartRow) => r.fragmentation, ref: undefined, refLabel: '' },
  ];
  panels.forEach((p, pi) => {
    const x0 = left + pi * (panelW + gap);
    const values = rows.map(p.value);
    const lo = pi === 0 ? 1 : 0;
    const hi = Math.max(lo + 0.05, ...values, p.ref ?? 0) * 1.05;
    const y = (v: number): number => top + panelH - ((Math.max(lo, v) - lo) / (hi - lo)) * panelH;
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 14}" text-anchor="middle" font-weight="bold">${esc(p.name)}</text>`);
    for (let t = 0; t <= 4; t++) {
      const v = lo + ((hi - lo) * t) / 4;
      out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
      out.push(`<text x="${x0 - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(2)}</text>`);
    }
    out.push(`<line x1="${x0}" x2="${x0}" y1="${top}" y2="${top + panelH}" stroke="#333"/>`);
    out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${top + panelH}" y2="${top + panelH}" stroke="#333"/>`);
    const groupW = panelW / sizes.length;
    const barW = Math.min(28, (groupW - 16) / strategies.length);
    sizes.forEach((size, si) => {
      const gx = x0 + si * groupW + (groupW - barW * strategies.length) / 2;
      strategies.forEach((st, ki) => {
        const r = rows.find((x) => x.hosts === size && x.strategy === st);
        if (!r) return;
        const v = p.value(r);
        const yy = y(v);
        out.push(`<rect x="${(gx + ki * barW).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top + panelH - yy).toFixed(1)}" fill="${COLORS[ki % COLORS.length]}"><title>${esc(st)} @ ${size} hosts: ${v.toFixed(3)}</title></rect>`);
      });
      out.push(`<text x="${(x0 + si * groupW + groupW / 2).toFixed(1)}" y="${top + panelH + 18}" text-anchor="middle">${size} hosts</text>`);
    });
    if (p.ref !== undefined) {
      out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(p.ref).toFixed(1)}" y2="${y(p.ref).toFixed(1)}" stroke="#c00" stroke-dasharray="6 4"/>`);
      out.push(`<text x="${x0 + panelW - 4}" y="${(y(p.ref) - 4).toFixed(1)}" text-anchor="end" fill="#c00">${p.refLabel}</text>`);
    }
  });
  strategies.forEach((st, ki) => {
    const lx = left + ki * 150, ly = top + panelH + 50;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[ki % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 18}" y="${ly}">${esc(st)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Title of the bench's chart. */
export const PLACEMENT_CHART_TITLE = 'Ferry placement strategies: static trace packing (left), churn-trace fragmentation (right)';

/** A bench result row as the chart needs it (static-trace fields are optional). */
export interface BenchResultRow extends ChartRow {
  readonly staticHostsUsed?: number;
  readonly staticLowerBound?: number;
}

/**
 * Chart rows of bench results. Left panel: hosts used ÷ lower bound on the static trace (online,
 * arrival order; best-fit-decreasing sorted); right panel: fragmentation at the end of the churn
 * trace (best-fit-decreasing: of its static packing).
 */
export function chartRowsOf(results: readonly BenchResultRow[]): ChartRow[] {
  return results.map((x) => ({
    strategy: x.strategy, hosts: x.hosts, fragmentation: x.fragmentation,
    hostsUsed: x.staticHostsUsed ?? x.hostsUsed, lowerBound: x.staticLowerBound ?? x.lowerBound,
  }));
}

/** Entry point: redraws the chart from a saved `--json` output (see the header comment). */
export async function main(args: string[]): Promise<void> {
  const input = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--svg');
  const i = args.indexOf('--svg');
  const out = i >= 0 ? args[i + 1] : 'bench-out/placement.svg';
  if (input === undefined || out === undefined) {
    process.stderr.write('usage: pnpm bench placement-svg RESULTS.json [--svg PATH]   (RESULTS.json: pnpm -s bench placement --json > RESULTS.json)\n');
    process.exit(2);
  }
  let results: BenchResultRow[];
  try {
    const parsed = JSON.parse(readFileSync(input, 'utf8')) as { bench?: string; results?: BenchResultRow[] };
    if (parsed.bench !== 'placement' || !Array.isArray(parsed.results)) throw new Error('not the output of pnpm bench placement --json');
    results = parsed.results;
  } catch (err) {
    process.stderr.write(`bench placement-svg: cannot use ${input}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, placementChartSvg(chartRowsOf(results), PLACEMENT_CHART_TITLE));
  process.stdout.write(`chart: ${out} (${results.length} results)\n`);
}
