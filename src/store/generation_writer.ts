/**
 * How a backup writes a new generation into a chain's store and publishes it; nothing is visible before
 * `publish`. A local directory (here): temporary files, fsynced, linked into place under the journal,
 * `.ver` last. A bucket: s3/generation_upload.ts. A backup does not know which (writers.ts).
 */
import * as path from "node:path";
import { IntegrityError } from "../errors.ts";
import { encodeManifest, type Manifest } from "../format/manifest.ts";
import { FdWritable } from "../io/sink.ts";
import type { Chain } from "./chain.ts";
import { NotDurableError, PendingFiles, writeVersion } from "./commit.ts";
import { beginCommit, endCommit } from "./journal.ts";
import type { GenerationWriter, NewGeneration } from "./writer_types.ts";

export class LocalGenerationWriter implements GenerationWriter {
  readonly #pending = new PendingFiles();
  readonly diffOut: FdWritable;
  readonly digestOut: FdWritable;
  readonly diffPath: string;
  readonly #digestPath: string;

  constructor(private readonly chain: Chain, private readonly o: NewGeneration) {
    this.diffPath = chain.diffPath(o.generation, o.compression);
    this.#digestPath = chain.digestPath(o.generation);
    this.diffOut = new FdWritable(this.#pending.create(this.diffPath), { sync: true });
    this.digestOut = new FdWritable(this.#pending.create(this.#digestPath), { sync: true });
  }

  get diffFile(): string {
    return path.basename(this.diffPath);
  }
  get digestFile(): string {
    return path.basename(this.#digestPath);
  }

  /**
   * Journal (store/journal.ts), the files linked into place (never over an existing one), `.ver` last.
   * `.ver` must still say what it said when the run began; any failure before `.ver` is renamed takes the
   * files out again.
   */
  publish(manifest: Manifest): Promise<void> {
    const { chain } = this, { generation, previous } = this.o;
    this.#pending.writeFile(chain.manifestPath(generation), encodeManifest(manifest));
    const unchanged = () => {
      const now = chain.readVersion();
      if (now !== previous) {
        throw new IntegrityError(
          `${chain.name}.ver changed during this run (${previous} -> ${now}: another writer that does not ` +
            `take the chain's lock?); nothing of this run was published`,
        );
      }
    };
    unchanged();
    const files = [this.diffPath, this.#digestPath, chain.manifestPath(generation)].map((f) =>
      path.basename(f)
    );
    try {
      beginCommit(chain, { generation, previous, files });
      this.#pending.publish("link");
      unchanged();
      writeVersion(chain, generation);
    } catch (err) {
      if (!(err instanceof NotDurableError)) this.#pending.unpublish();
      endCommit(chain);
      throw err;
    }
    endCommit(chain);
    return Promise.resolve();
  }

  discardNow(): void {
    this.#pending.discard();
  }

  discard(): Promise<void> {
    this.diffOut.destroy();
    this.digestOut.destroy();
    this.#pending.discard();
    return Promise.resolve();
  }
}
