/**
 * `ppsim real --demo`: the destination agent as a child process on loopback
 * (`node bin.js real --listen 127.0.0.1:0 --once`), so that each agent has an
 * event loop of its own as on two hosts. Its first line names its port.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { RealError } from "./errors.js";

export interface DemoDestination {
  port: number;
  /** Waits for the child to exit (it does after its one migration); kills it after timeoutMs. Resolves with its exit code. */
  finish(timeoutMs: number): Promise<number>;
}

/** `security`: the child's security flags (default --insecure: loopback). */
export function spawnDemoDestination(bin: string, log: (line: string) => void, security: string[] = ["--insecure"]): Promise<DemoDestination> {
  // PPSIM_CPU_PROF=DIR (opt-in): the destination's V8 profile there — NODE_OPTIONS refuses --cpu-prof, and the child is where half the loop CPU goes.
  const prof = process.env.PPSIM_CPU_PROF;
  const profArgs = prof !== undefined && prof !== "" ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
  const child = spawn(process.execPath, [...profArgs, bin, "real", "--listen", "127.0.0.1:0", "--once", ...security], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number>((r) => child.on("close", (code, signal) => r(code ?? (signal !== null ? 128 : 1))));
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on("line", (l) => {
    stderr.push(l);
    log(l);
  });
  return new Promise<DemoDestination>((resolve, reject) => {
    let port = -1;
    createInterface({ input: child.stdout }).on("line", (l) => {
      const m = /^listening on .*:(\d+)$/.exec(l);
      if (port < 0 && m !== null) {
        port = Number(m[1]);
        resolve({
          port,
          finish: async (timeoutMs) => {
            const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
            const code = await exited;
            clearTimeout(timer);
            return code;
          },
        });
      } else log(l);
    });
    void exited.then((code) => {
      if (port < 0) reject(new RealError(`the demo destination exited with code ${code} before listening: ${stderr.join(" ").trim()}`));
    });
  });
}
