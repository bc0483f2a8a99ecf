/**
 * The agent's stdout, frame by frame (frames.ts), turned into calls: diff and digest bytes to write,
 * progress, log lines, the lock handshake's R and C. Read up to the trailer first: what the stream held by
 * then (the trailer, an error frame, the byte counts, a frame cut short) goes to the outcome check
 * (outcome.ts). After a trailer only log lines (and an error) may follow: read with `rest`.
 */
import { IntegrityError } from "../errors.ts";
import { noteGarbage } from "../runtime.ts";
import { FRAME, type Frame, FrameParser, type Trailer } from "./frames.ts";

export interface AgentOutputHandlers {
  /** Diff or digest bytes; the payload is only valid until the returned promise resolves. */
  diff(payload: Uint8Array): Promise<void>;
  digest(payload: Uint8Array): Promise<void>;
  progress(bytes: number, total: number | null): void;
  log(line: string): void;
  /** 'R': the agent waits for the go byte (lvcreate comes next). */
  ready(): Promise<void>;
  /** 'C': the snapshot is created. */
  created(): Promise<void>;
}

export interface AgentOutputEnd {
  trailer: Trailer | null;
  /** The agent's error frame. */
  error: string | null;
  diffBytes: number;
  digestBytes: number;
  /** Bytes of a frame the stream ended in the middle of. */
  leftover: number;
}

export class AgentOutput {
  #parser = new FrameParser();
  #pending: Frame[] = [];
  #chunks: AsyncIterator<Uint8Array>;
  #ended = false;
  readonly end: AgentOutputEnd = { trailer: null, error: null, diffBytes: 0, digestBytes: 0, leftover: 0 };

  constructor(output: AsyncIterable<Uint8Array>, private readonly description: string) {
    this.#chunks = output[Symbol.asyncIterator]();
  }

  /** Frames up to the trailer (or the end of the stream). */
  async toTrailer(h: AgentOutputHandlers): Promise<AgentOutputEnd> {
    while (!this.end.trailer) {
      const f = await this.#next();
      if (!f) break;
      switch (f.type) {
        case FRAME.diff:
          this.end.diffBytes += f.payload.length;
          await h.diff(f.payload);
          f.release?.();
          break;
        case FRAME.digest:
          this.end.digestBytes += f.payload.length;
          await h.digest(f.payload);
          f.release?.();
          break;
        case FRAME.progress: {
          const p = JSON.parse(text(f.payload)); // {bytes, total}: total null where the size is unknown
          h.progress(p.bytes, p.total ?? null);
          break;
        }
        case FRAME.trailer:
          this.end.trailer = JSON.parse(text(f.payload));
          break;
        case FRAME.log:
          h.log(`${this.description}: ${text(f.payload)}`);
          break;
        case FRAME.error:
          this.end.error = text(f.payload);
          break;
        case FRAME.ready:
          await h.ready();
          break;
        case FRAME.created:
          await h.created();
      }
    }
    this.end.leftover = this.#ended ? this.#parser.leftover : 0;
    return this.end;
  }

  /** After the trailer: log lines, and an error (returned), to the end of the stream. */
  async rest(log: (line: string) => void): Promise<string | null> {
    let error: string | null = null;
    for (let f = await this.#next(); f; f = await this.#next()) {
      if (f.type === FRAME.log) log(`${this.description}: ${text(f.payload)}`);
      else if (f.type === FRAME.error) error = text(f.payload);
      else throw new IntegrityError(`agent output from ${this.description}: data after the trailer`);
    }
    if (this.#parser.leftover) {
      throw new IntegrityError(`agent output from ${this.description} ends in a frame`);
    }
    return error;
  }

  async #next(): Promise<Frame | null> {
    while (!this.#pending.length) {
      if (this.#ended) return null;
      const c = await this.#chunks.next();
      if (c.done) {
        this.#ended = true;
        return null;
      }
      noteGarbage(c.value.length * 4); // ssh2 leaves several buffers per packet
      this.#pending = this.#parser.push(c.value);
    }
    return this.#pending.shift()!;
  }
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}
