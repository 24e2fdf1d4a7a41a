/**
 * `ppsim record`: runs a program under valgrind's lackey tool and writes its
 * page-access trace (docs/trace-format.md). Lackey's output arrives on a
 * pipe (fd 3 of valgrind, `--log-fd=3`) and is windowed as it streams; it is
 * never stored. The program keeps ppsim's stdin, stdout and stderr, so
 * `ppsim record -- gzip -c < in > out` records a compressor on a stream.
 */
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, renameSync, rmSync } from "node:fs";
import { arch, cpus, release, type as osType } from "node:os";
import { once } from "node:events";
import { createGzip } from "node:zlib";
import { endLine, headerLines, windowLine, type TraceHeader } from "../workload/trace-format.js";
import { LackeyWindows } from "./lackey.js";

export interface RecordOptions {
  command: string[];
  out: string;
  /** Instructions per window. */
  window: number;
  pageSize: number;
  /** Also run the command once without valgrind and keep its wall time (for replay at the recorded speed). */
  timeNative: boolean;
  valgrind?: string;
  log?: (line: string) => void;
}

export interface RecordResult {
  windows: number;
  instructions: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export class RecordError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = "RecordError";
  }
}

function valgrindVersion(valgrind: string): string {
  try {
    return execFileSync(valgrind, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch (e) {
    throw new RecordError(`cannot run ${valgrind} (install Debian's valgrind package): ${(e as Error).message}`);
  }
}

async function runNatively(command: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "ignore", "ignore"] });
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new RecordError(`--time-native: ${command.join(" ")} exited with ${String(code)} when run without valgrind`);
  return Number(process.hrtime.bigint() - t0) / 1000;
}

export async function record(o: RecordOptions): Promise<RecordResult> {
  if (o.command.length === 0) throw new RecordError("nothing to record: give the command after --, e.g. ppsim record -- gzip -c FILE");
  const valgrind = o.valgrind ?? "valgrind";
  const tool = valgrindVersion(valgrind);
  const nativeUs = o.timeNative ? await runNatively(o.command) : null;
  const cpu = cpus()[0]?.model ?? "unknown";
  const header: TraceHeader = {
    page_size: o.pageSize,
    window: { unit: "instructions", size: o.window },
    command: o.command,
    cwd: process.cwd(),
    tool: `${tool} --tool=lackey --trace-mem=yes`,
    host: { os: `${osType()} ${release()}`, arch: arch(), cpu },
    recorded_at: new Date().toISOString(),
    native_us: nativeUs === null ? null : Math.round(nativeUs),
  };

  const partial = `${o.out}.partial`;
  const gz = createGzip({ level: 9 });
  const file = createWriteStream(partial);
  gz.pipe(file);
  const fileDone = once(file, "close");
  gz.write(headerLines(header));
  const windows = new LackeyWindows(o.window, o.pageSize, (w) => gz.write(windowLine(w) + "\n"));

  const args = ["--tool=lackey", "--trace-mem=yes", "--log-fd=3", ...o.command];
  const child = spawn(valgrind, args, { stdio: ["inherit", "inherit", "inherit", "pipe"] });
  const log = child.stdio[3];
  if (log === null || log === undefined || !("on" in log)) throw new RecordError("cannot open the pipe for lackey's output");
  log.on("data", (chunk: Buffer) => windows.push(chunk));
  const logDone = once(log, "end");
  const spawnError = new Promise<never>((_, reject) => child.on("error", (e) => reject(new RecordError(`cannot run ${valgrind}: ${e.message}`))));
  let code: number | null;
  let signal: NodeJS.Signals | null;
  try {
    [code, signal] = (await Promise.race([once(child, "close"), spawnError])) as [number | null, NodeJS.Signals | null];
    await logDone;
  } catch (e) {
    gz.end();
    await fileDone;
    rmSync(partial, { force: true });
    throw e;
  }
  windows.finish();
  if (windows.windows === 0) {
    gz.end();
    await fileDone;
    rmSync(partial, { force: true });
    throw new RecordError(`lackey reported no instructions for ${o.command.join(" ")} (exit ${String(code ?? signal)})`);
  }
  gz.end(endLine(windows.windows, windows.instructions));
  await fileDone;
  renameSync(partial, o.out);
  if (windows.strayLines > 0) o.log?.(`note: ${windows.strayLines} lines of lackey's output were not accesses and were skipped`);
  return { windows: windows.windows, instructions: windows.instructions, exitCode: code, signal };
}
