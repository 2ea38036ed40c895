/**
 * Splits the bytes a WebSocket server reads from its socket at ws frame boundaries and takes the
 * page frames out of the stream before ws sees them, so a migration receiver gets them without
 * ws's per-message allocation. ws reassembles a payload that spans socket reads (64 KiB each)
 * into a fresh Buffer: for a 1 GiB migration in 1 MiB frames, 1,024 allocations of 1 MiB that V8
 * counts as external memory, which brings "external memory pressure" collections and up to 64 MiB
 * of dead buffers in the agent's RSS while it waits for them. Taken-out frames are delivered as a
 * view of the socket chunk when they lie inside one read, else assembled in one reused buffer.
 *
 * What is taken out, exactly: a single, final, binary frame (FIN, no RSV bits, opcode 2) from a
 * client (MASK set, as RFC 6455 requires) whose masking key is zero, whose payload is at most
 * `maxPayloadBytes` and begins with the page-frame kind byte, arriving while ws is between
 * messages. Every other byte (control messages, pings, close, fragments, masked data, anything
 * malformed) is forwarded to ws unchanged and in order, at frame boundaries, so ws still checks
 * and answers it as before.
 */

/** Where split bytes go. */
export interface FrameSplitterSinks {
  /** Bytes for ws's own receiver: whole frames (a frame's bytes may come in several calls), in order. */
  forward(bytes: Buffer): void;
  /** A taken-out frame's payload after the kind byte. Valid only during the call (the buffer is reused). */
  frame(payload: Buffer): void;
}

/** Options of a FrameSplitter. */
export interface FrameSplitterOptions {
  /** The first payload byte that marks a frame to take out. */
  readonly kindByte: number;
  /** Larger frames go to ws (which refuses them with 1009). */
  readonly maxPayloadBytes: number;
}

/** Longest ws frame header: 2 bytes, 8 of extended length, 4 of masking key. */
const MAX_HEADER_BYTES = 14;

type Mode = 'header' | 'forward' | 'take';

/**
 * A push parser of client-to-server ws frames. Feed it every chunk read from the socket, in order
 * (`push`); it calls its sinks synchronously. It never trusts a length it has not bounded.
 */
export class FrameSplitter {
  private readonly sinks: FrameSplitterSinks;
  private readonly kindByte: number;
  private readonly maxPayloadBytes: number;
  private mode: Mode = 'header';
  /** Header bytes (plus the first payload byte) gathered so far, while undecided. */
  private head = Buffer.alloc(MAX_HEADER_BYTES + 1);
  private headBytes = 0;
  /** Bytes left of the frame being forwarded or taken. */
  private left = 0;
  /** ws is inside a fragmented message: everything goes to it until a final frame. */
  private inFragmentedMessage = false;
  private frameIsFinal = false;
  /** The reused assembly buffer and how much of the current frame is in it. */
  private assembly = Buffer.alloc(0);
  private assembled = 0;
  private takeBytes = 0;
  /** Set once a frame's length cannot be trusted: ws refuses it and closes; everything goes to ws. */
  private passthrough = false;

  constructor(sinks: FrameSplitterSinks, options: FrameSplitterOptions) {
    this.sinks = sinks;
    this.kindByte = options.kindByte;
    this.maxPayloadBytes = options.maxPayloadBytes;
  }

  /** Consumes one chunk read from the socket. */
  push(chunk: Buffer): void {
    if (this.passthrough) {
      this.sinks.forward(chunk);
      return;
    }
    let at = 0;
    while (at < chunk.length) {
      if (this.mode === 'forward') {
        const n = Math.min(this.left, chunk.length - at);
        this.sinks.forward(chunk.subarray(at, at + n));
        at += n;
        this.left -= n;
        if (this.left === 0) this.mode = 'header';
      } else if (this.mode === 'take') {
        at = this.take(chunk, at);
      } else {
        at = this.readHeader(chunk, at);
      }
    }
  }

  /** Gathers header bytes until the frame can be classified, then starts forwarding or taking it. */
  private readHeader(chunk: Buffer, at: number): number {
    while (at < chunk.length && this.headBytes < this.head.length) {
      this.head[this.headBytes++] = chunk[at++]!;
      const verdict = this.classify();
      if (verdict === 'more') continue;
      const headerBytes = verdict.headerBytes;
      if (verdict.take) {
        // Drop the header and the kind byte; the rest of the payload is the frame.
        this.mode = 'take';
        this.takeBytes = verdict.payloadBytes - 1;
        this.left = this.takeBytes;
        this.assembled = 0;
        this.headBytes = 0;
        if (this.left === 0) this.finishTake(undefined);
        return at;
      }
      if (headerBytes < 0) {
        this.passthrough = true;
        this.sinks.forward(Buffer.from(this.head.subarray(0, this.headBytes)));
        this.headBytes = 0;
        if (at < chunk.length) this.sinks.forward(chunk.subarray(at));
        return chunk.length;
      }
      // Forward the gathered bytes, then the rest of the frame.
      const total = headerBytes + verdict.payloadBytes;
      this.sinks.forward(Buffer.from(this.head.subarray(0, this.headBytes)));
      this.left = total - this.headBytes;
      this.headBytes = 0;
      this.trackFragments(verdict.opcode);
      this.mode = this.left > 0 ? 'forward' : 'header';
      return at;
    }
    return at;
  }

  /** Classifies the gathered head: 'more' bytes needed, or the frame's layout and fate. */
  private classify(): 'more' | { readonly take: boolean; readonly headerBytes: number; readonly payloadBytes: number; readonly opcode: number } {
    const h = this.head;
    const n = this.headBytes;
    if (n < 2) return 'more';
    const b0 = h[0]!;
    const b1 = h[1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv = b0 & 0x70;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const lengthBytes = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const headerBytes = 2 + lengthBytes + (masked ? 4 : 0);
    if (n < 2 + lengthBytes) return 'more';
    this.frameIsFinal = fin;
    let payloadBytes: number;
    if (lengthBytes === 0) payloadBytes = len7;
    else if (lengthBytes === 2) payloadBytes = h.readUInt16BE(2);
    else {
      const high = h.readUInt32BE(2);
      // Past 2^53 the length is not a safe number: hand it and everything after it to ws, which
      // refuses it and closes the connection (headerBytes -1 says so).
      if (high > 0x1fffff) return { take: false, headerBytes: -1, payloadBytes: 0, opcode };
      payloadBytes = high * 2 ** 32 + h.readUInt32BE(6);
    }
    const candidate = fin && rsv === 0 && opcode === 0x2 && masked && !this.inFragmentedMessage && payloadBytes >= 1 && payloadBytes <= this.maxPayloadBytes;
    if (!candidate) return { take: false, headerBytes, payloadBytes, opcode };
    if (n < headerBytes + 1) return 'more';
    const keyAt = headerBytes - 4;
    const zeroKey = h[keyAt] === 0 && h[keyAt + 1] === 0 && h[keyAt + 2] === 0 && h[keyAt + 3] === 0;
    const take = zeroKey && h[headerBytes] === this.kindByte;
    return { take, headerBytes, payloadBytes, opcode };
  }

  /** Remembers whether ws is now inside a fragmented message (data frame without FIN, until a final continuation). */
  private trackFragments(opcode: number): void {
    if (opcode >= 0x8) return; // control frames may come between fragments
    if (opcode === 0x0) {
      if (this.frameIsFinal) this.inFragmentedMessage = false;
    } else {
      this.inFragmentedMessage = !this.frameIsFinal;
    }
  }

  /** Takes payload bytes of the current frame from `chunk` at `at`; returns where it stopped. */
  private take(chunk: Buffer, at: number): number {
    const n = Math.min(this.left, chunk.length - at);
    if (this.assembled === 0 && n === this.takeBytes) {
      // The whole payload lies in this chunk: a view, no copy.
      this.left = 0;
      this.finishTake(chunk.subarray(at, at + n));
      return at + n;
    }
    if (this.assembly.length < this.takeBytes) this.assembly = Buffer.allocUnsafeSlow(this.takeBytes); // its own memory: kept and reused, never pooled
    chunk.copy(this.assembly, this.assembled, at, at + n);
    this.assembled += n;
    this.left -= n;
    if (this.left === 0) this.finishTake(this.assembly.subarray(0, this.takeBytes));
    return at + n;
  }

  private finishTake(payload: Buffer | undefined): void {
    this.mode = 'header';
    this.assembled = 0;
    this.sinks.frame(payload ?? Buffer.alloc(0));
  }
}
