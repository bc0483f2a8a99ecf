/**
 * Where a prune writes a kept generation's new diff, which absorbs the generations removed before it, and
 * how that is published (writers.ts). A local directory (here): a temporary file, then the journal's fold
 * commit (store/fold_commit.ts). A bucket: s3/fold_upload.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { onCleanup } from "../cleanup.ts";
import { EXTENSION } from "../compress/codec.ts";
import { describeIoError } from "../errors.ts";
import type { Manifest } from "../format/manifest.ts";
import { FdWritable } from "../io/sink.ts";
import type { Chain } from "./chain.ts";
import { tempPathFor } from "./commit.ts";
import { commitFold } from "./fold_commit.ts";
import type { FoldWriter, NewFold } from "./writer_types.ts";

export class LocalFoldWriter implements FoldWriter {
  readonly out: FdWritable;
  readonly where: string;
  readonly #final: string;
  readonly #fd: number;
  readonly #unregister: () => void;

  constructor(private readonly chain: Chain, private readonly o: NewFold) {
    this.#final = chain.path(`.${o.into}${EXTENSION[o.compression]}`);
    this.where = tempPathFor(this.#final);
    try {
      this.#fd = fs.openSync(this.where, "wx", 0o600);
    } catch (err) {
      throw describeIoError(`creating ${this.where}`, err);
    }
    this.#unregister = onCleanup(() => fs.rmSync(this.where, { force: true }));
    this.out = new FdWritable(this.#fd, { sync: true });
  }

  get diffFile(): string {
    return path.basename(this.#final);
  }

  commit(manifest: Manifest): Promise<void> {
    this.#close();
    commitFold(this.chain, {
      generation: this.o.into,
      removes: this.o.removes,
      staged: path.basename(this.where),
      diffFile: this.diffFile,
      oldDiffFile: path.basename(this.chain.findDiff(this.o.into).path),
      manifest,
    });
    return Promise.resolve();
  }

  discard(): Promise<void> {
    this.out.destroy();
    this.#close();
    fs.rmSync(this.where, { force: true });
    return Promise.resolve();
  }

  #close(): void {
    this.#unregister();
    try {
      fs.closeSync(this.#fd);
    } catch { /* closed already */ }
  }
}
