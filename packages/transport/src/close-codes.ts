/**
 * Every WebSocket close code Ferry uses, in one place, with stable names. 1xxx are the standard
 * codes ws itself sends; 4xxx are Ferry's own (4000–4999 is the range RFC 6455 leaves to
 * applications). A peer that closes with one of these gets the name back from `closeCodeName`.
 */
export const FERRY_CLOSE = {
  /** Normal end of a conversation. */
  NORMAL: 1000,
  /** The process is shutting down (SIGINT/SIGTERM). */
  GOING_AWAY: 1001,
  /** No close frame: the socket died (peer killed, network cut). Reported, never sent. */
  ABNORMAL: 1006,
  /** A ws message over `maxPayload` (ws closes before allocating it). */
  MESSAGE_TOO_BIG: 1009,
  /** Bytes that are not a valid Ferry message: unknown kind byte, text frame, undecodable or invalid control message. */
  BAD_MESSAGE: 4001,
  /** A control message over the channel's control-message cap (smaller than the frame cap). */
  CONTROL_TOO_LARGE: 4002,
  /** A binary page frame where none is expected (no frame handler, or the protocol state forbids it). */
  UNEXPECTED_FRAME: 4003,
  /** A protocol version this side does not accept. */
  PROTOCOL_VERSION: 4004,
  /** The peer's request was refused (registration refused, duplicate host, unknown migration). */
  REFUSED: 4005,
  /** No pong within the heartbeat timeout: the peer is presumed dead. Local only (the socket is terminated). */
  HEARTBEAT_TIMEOUT: 4008,
  /** The peer stopped reading and the send buffer passed its hard cap. */
  BUFFER_OVERFLOW: 4009,
  /** The migration was aborted (cancel, failure on either side). */
  MIGRATION_ABORTED: 4010,
  /** A newer connection from the same peer replaced this one. */
  REPLACED: 4011,
} as const;

/** One of Ferry's close code names. */
export type FerryCloseName = keyof typeof FERRY_CLOSE;

const byCode = new Map<number, FerryCloseName>(Object.entries(FERRY_CLOSE).map(([k, v]) => [v, k as FerryCloseName]));

/** The stable name of a close code (`BAD_MESSAGE`), or `CODE_<n>` for codes Ferry does not define. */
export function closeCodeName(code: number): string {
  return byCode.get(code) ?? `CODE_${code}`;
}
