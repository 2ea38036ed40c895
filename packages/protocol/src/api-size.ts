import { InvalidSizeError } from './api-errors.ts';

/**
 * Sizes as people write them. Binary units (KiB, MiB, GiB, TiB) are powers of 1024; the short
 * forms K, M, G, T (and KB, MB, GB, TB) are read as binary too, as memory sizes conventionally are
 * (`1.5G` = 1.5 GiB), the way QEMU and libvirt read them. A plain number is bytes; `B` is allowed.
 */
const UNIT_SHIFT: Readonly<Record<string, number>> = {
  '': 0,
  b: 0,
  k: 10,
  kb: 10,
  kib: 10,
  m: 20,
  mb: 20,
  mib: 20,
  g: 30,
  gb: 30,
  gib: 30,
  t: 40,
  tb: 40,
  tib: 40,
};

const SIZE_PATTERN = /^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z]*)$/;

/**
 * Bytes in a size: a non-negative integer number of bytes, or a string such as `16GiB`, `512MiB`,
 * `1.5G`, `4096`. Fractions are rounded down to a whole byte. Throws InvalidSizeError (code
 * FERRY_ERR_INVALID_SIZE, naming `field`) for anything else: `lots`, `-1G`, `12XB`, NaN, over 2^53.
 */
export function parseSize(input: number | string, field = 'size'): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new InvalidSizeError(field, String(input), 'bytes must be a non-negative integer');
    return input;
  }
  if (typeof input !== 'string') throw new InvalidSizeError(field, String(input), 'expected a number or a string');
  const text = input.trim();
  const m = SIZE_PATTERN.exec(text);
  if (!m) throw new InvalidSizeError(field, input, 'expected a number with an optional unit');
  const shift = UNIT_SHIFT[m[2]!.toLowerCase()];
  if (shift === undefined) throw new InvalidSizeError(field, input, `unknown unit "${m[2]}" (use B, KiB, MiB, GiB, TiB or K, M, G, T)`);
  const value = Number(m[1]) * 2 ** shift;
  if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) throw new InvalidSizeError(field, input, 'too large');
  return Math.floor(value);
}

/** Decimal prefixes of bit rates, as networks count them (1 Mbit = 10^6 bits). */
const BIT_PREFIX: Readonly<Record<string, number>> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const BIT_RATE_PATTERN = /^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([kmgt]?)bits?(?:\/s|ps)?$/i;

/**
 * Bytes per second in a rate: a size optionally followed by `/s` or `ps` (`100MiB`, `1G/s`,
 * `50MBps`), or a bit rate with decimal prefixes as links are quoted (`100Mbit/s`, `1Gbit`,
 * `500kbits/s` = bits ÷ 8, rounded down). 0 means unlimited where a limit is meant. Throws
 * InvalidSizeError like parseSize.
 */
export function parseRate(input: number | string, field = 'rate'): number {
  if (typeof input === 'number') return parseSize(input, field);
  const bits = BIT_RATE_PATTERN.exec(String(input).trim());
  if (bits) {
    const value = (Number(bits[1]) * BIT_PREFIX[bits[2]!.toLowerCase()]!) / 8;
    if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) throw new InvalidSizeError(field, String(input), 'too large');
    return Math.floor(value);
  }
  const text = String(input).trim().replace(/(\/s|ps)$/i, '');
  try {
    return parseSize(text, field);
  } catch (err) {
    if (err instanceof InvalidSizeError) throw new InvalidSizeError(field, String(input), 'expected a size per second such as 100MiB/s, or a bit rate such as 100Mbit/s');
    throw err;
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * A byte count for people: `512 B`, `4.0 KiB`, `1.5 GiB`, `16 GiB` (one decimal below 10 units,
 * none above; whole values print without decimals). Round-trips through parseSize up to rounding.
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${sign}${Math.round(value)} B`;
  const text = Number.isInteger(value) ? String(value) : value < 10 ? value.toFixed(1) : value.toFixed(0);
  return `${sign}${text} ${UNITS[unit]}`;
}

/** Bytes per second for people: `formatSize(rate) + '/s'`. */
export function formatRate(bytesPerSec: number): string {
  return `${formatSize(bytesPerSec)}/s`;
}
