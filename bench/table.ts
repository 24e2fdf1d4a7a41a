/** Benchmark output: one JSON object (for machines) and a markdown table (for docs/), both on stdout. */
export type Row = Record<string, string | number | boolean | null>;

export function markdownTable(rows: Row[]): string {
  if (rows.length === 0) return "(no rows)";
  const keys = Object.keys(rows[0]);
  const cell = (v: Row[string]) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
  return [`| ${keys.join(" | ")} |`, `| ${keys.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${keys.map((k) => cell(r[k])).join(" | ")} |`)].join("\n");
}

export function printBench(name: string, command: string, meta: Record<string, unknown>, rows: Row[]): void {
  console.log(JSON.stringify({ bench: name, command, ...meta, rows }, null, 2));
  console.log();
  console.log(markdownTable(rows));
}

/** The lower median (the middle run of an odd count): the figure a bench reports beside its min–max. */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1] ?? NaN;
}
