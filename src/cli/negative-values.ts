/**
 * `--seed -1`: util.parseArgs takes a value that starts with a dash for an
 * option of its own and fails with "argument is ambiguous". A negative number
 * after a flag that takes a value is a value, so it is joined to its flag
 * (`--seed=-1`) before parsing, and the flag's own check says what is wrong
 * with it ("--seed must be an integer ≥ 0, got -1").
 */
export function joinNegativeValues(argv: string[], options: Record<string, { type: "string" | "boolean" }>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    const name = a.startsWith("--") ? a.slice(2) : null;
    if (name !== null && options[name]?.type === "string" && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}
