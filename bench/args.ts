// The numeric flags of the standalone bench scripts (`--name N`), shared by them.

/** The number after `--name` on the command line, or `fallback`; at least `min`. */
export function numberArg(name: string, fallback: number, min = 0): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < min) throw new RangeError(`--${name} needs a number >= ${min}`);
  return v;
}
