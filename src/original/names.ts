/**
 * The original blockdiff's tools, which this one program is when it is invoked under their names (a
 * symlink or hard link named like the tool). Kept free of imports: the installer reads the list too.
 */
export const ORIGINAL_NAMES = [
  "blockdiff_dump",
  "blockdiff_merge",
  "blockdiff_backup",
  "ssh_blockdiff_dump",
  "ssh_lvm_dump",
  "mysqllock",
] as const;

export type OriginalName = typeof ORIGINAL_NAMES[number];

/** The original tool a program name (the basename it was invoked as) stands for, or null. */
export function originalTool(invokedAs: string): OriginalName | null {
  return (ORIGINAL_NAMES as readonly string[]).includes(invokedAs) ? invokedAs as OriginalName : null;
}
