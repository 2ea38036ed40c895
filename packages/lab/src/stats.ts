/** Median, max and min of repeated measurements. */
export interface Summary {
  readonly median: number;
  readonly max: number;
  readonly min: number;
  /** Number of values summarised. */
  readonly n: number;
}

/** The summary of `values` (non-finite values are dropped); all fields NaN and n 0 when none are left. */
export function summarize(values: readonly number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, max: Number.NaN, min: Number.NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, max: v[v.length - 1]!, min: v[0]!, n: v.length };
}

/** `{median, max}` of a summary, rounded to `digits` decimals (the JSON form of the bench). */
export function medianMax(s: Summary, digits = 3): { readonly median: number; readonly max: number } {
  const f = 10 ** digits;
  return { median: Math.round(s.median * f) / f, max: Math.round(s.max * f) / f };
}

/** Index of the value closest to the median (the run that represents a cell in the charts). */
export function medianIndex(values: readonly number[]): number {
  if (values.length === 0) return -1;
  const m = summarize(values).median;
  let best = 0;
  for (let i = 1; i < values.length; i++) if (Math.abs(values[i]! - m) < Math.abs(values[best]! - m)) best = i;
  return best;
}
