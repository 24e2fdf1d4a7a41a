/**
 * A benchmark's flags, read the way the CLI reads its own: `--help` lists
 * them, and a flag it does not know, or a value it refuses, is one line on
 * stderr and exit code 2, not a stack trace. What each flag means is in the
 * comment at the top of the bench's own file, which `--help` names.
 */
import { basename } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";

function benchName(): string {
  return basename(process.argv[1] ?? "bench").replace(/\.js$/, "");
}

function usage(config: ParseArgsConfig): string {
  const name = benchName();
  const flags = Object.entries(config.options ?? {}).map(([k, o]) => `[--${k}${o.type === "string" ? " VALUE" : ""}]`);
  return `usage: node dist/bench/${name}.js ${flags.join(" ")}${config.allowPositionals === true ? " [ARGS…]" : ""}\n(what each means: the comment at the top of bench/${name}.ts)`;
}

export function benchArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  if (process.argv.slice(2).some((a) => a === "--help" || a === "-h")) {
    console.log(usage(config));
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (e) {
    return refuse((e as Error).message, config);
  }
}

/** A value the bench cannot take: one line, the usage, exit code 2. */
export function refuse(why: string, config?: ParseArgsConfig): never {
  console.error(`${benchName()}: ${why}`);
  if (config !== undefined) console.error(usage(config));
  process.exit(2);
}
