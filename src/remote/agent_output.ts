/**
 * The agent's stdout, frame by frame (frames.ts), turned into calls: diff and digest bytes to write,
 * progress, log lines, the lock handshake's R and C. What the stream ends with (the trailer, an error frame,
 * the byte counts, a frame cut short) is returned for the outcome check (outcome.ts).
 */
import { IntegrityError } from "../errors.ts";
import { noteGarbage } from "../runtime.ts";
import { FRAME, FrameParser, type Trailer } from "./frames.ts";

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

export async function readAgentOutput(
  output: AsyncIterable<Uint8Array>,
  h: AgentOutputHandlers,
  description: string,
): Promise<AgentOutputEnd> {
  const parser = new FrameParser();
  const end: AgentOutputEnd = { trailer: null, error: null, diffBytes: 0, digestBytes: 0, leftover: 0 };
  for await (const chunk of output) {
    noteGarbage(chunk.length * 4); // ssh2 leaves several buffers per packet
    for (const f of parser.push(chunk)) {
      if (end.trailer) throw new IntegrityError(`agent output from ${description}: data after the trailer`);
      switch (f.type) {
        case FRAME.diff:
          end.diffBytes += f.payload.length;
          await h.diff(f.payload);
          f.release?.();
          break;
        case FRAME.digest:
          end.digestBytes += f.payload.length;
          await h.digest(f.payload);
          f.release?.();
          break;
        case FRAME.progress: {
          const p = JSON.parse(text(f.payload)); // {bytes, total}: total null where the size is unknown
          h.progress(p.bytes, p.total ?? null);
          break;
        }
        case FRAME.trailer:
          end.trailer = JSON.parse(text(f.payload));
          break;
        case FRAME.log:
          h.log(`${description}: ${text(f.payload)}`);
          break;
        case FRAME.error:
          end.error = text(f.payload);
          break;
        case FRAME.ready:
          await h.ready();
          break;
        case FRAME.created:
          await h.created();
      }
    }
  }
  end.leftover = parser.leftover;
  return end;
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}
