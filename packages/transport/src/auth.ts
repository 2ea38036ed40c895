/**
 * Authentication of WebSocket upgrades and HTTP requests: a bearer token in the `Authorization`
 * header (or a `token` query parameter, for clients that cannot set headers), compared in constant
 * time; and a registry of one-time tokens for migration connections (issued for one migration,
 * consumed once, expiring).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A new random token: 32 random bytes as 64 hex digits. */
export function generateToken(): string {
  // Hex, not base64url: a token that starts with '-' is read as a flag by `--token T` parsers.
  return randomBytes(32).toString('hex');
}

/** The token a request presents (`Authorization: Bearer T` first, then `?token=T`), or undefined. */
export function presentedToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m?.[1];
  }
  const url = new URL(req.url ?? '/', 'http://x');
  return url.searchParams.get('token') ?? undefined;
}

/** Constant-time comparison of two tokens. */
export function tokensEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) return false;
  return timingSafeEqual(ab, bb);
}

/** Whether `req` presents exactly `token`. */
export function hasBearerToken(req: IncomingMessage, token: string): boolean {
  const presented = presentedToken(req);
  return presented !== undefined && tokensEqual(presented, token);
}

/** One issued one-time token and what it grants. */
export interface OneTimeGrant<TContext> {
  readonly token: string;
  readonly context: TContext;
  readonly expiresAtMs: number;
}

/** Options of a OneTimeTokenRegistry. */
export interface OneTimeTokenRegistryOptions {
  /** Clock in ms; default Date.now. */
  readonly nowMs?: () => number;
  /** Most live tokens at once; `issue` throws past it. Default 1024. */
  readonly maxLiveTokens?: number;
}

/**
 * Tokens that are valid once: `issue(context, ttlMs)` returns a token; `consume(token)` returns the
 * context and forgets the token (a second consume, or one after expiry, returns undefined).
 * Expired tokens are swept lazily on every call, so the registry stays bounded without timers.
 */
export class OneTimeTokenRegistry<TContext> {
  private readonly grants = new Map<string, OneTimeGrant<TContext>>();
  private readonly nowMs: () => number;
  private readonly maxLiveTokens: number;

  constructor(options: OneTimeTokenRegistryOptions = {}) {
    this.nowMs = options.nowMs ?? Date.now;
    this.maxLiveTokens = options.maxLiveTokens ?? 1024;
  }

  /** Issues a token granting `context` for `ttlMs`. */
  issue(context: TContext, ttlMs: number): OneTimeGrant<TContext> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
    this.sweep();
    if (this.grants.size >= this.maxLiveTokens) throw new RangeError(`more than ${this.maxLiveTokens} live one-time tokens`);
    const grant = { token: generateToken(), context, expiresAtMs: this.nowMs() + ttlMs };
    this.grants.set(grant.token, grant);
    return grant;
  }

  /** Returns the context of a live token and invalidates it; undefined for unknown, used or expired tokens. */
  consume(token: string): TContext | undefined {
    this.sweep();
    const grant = this.grants.get(token);
    if (!grant) return undefined;
    this.grants.delete(token);
    return grant.context;
  }

  /** Revokes every token whose context matches (e.g. a cancelled migration). Returns how many. */
  revoke(matches: (context: TContext) => boolean): number {
    let n = 0;
    for (const [token, grant] of this.grants) {
      if (matches(grant.context)) {
        this.grants.delete(token);
        n++;
      }
    }
    return n;
  }

  /** Live (issued, unused, unexpired) tokens. */
  get size(): number {
    this.sweep();
    return this.grants.size;
  }

  private sweep(): void {
    const now = this.nowMs();
    for (const [token, grant] of this.grants) if (grant.expiresAtMs <= now) this.grants.delete(token);
  }
}
