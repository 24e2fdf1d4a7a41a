/**
 * Agents as processes of their own, so a test can kill one with SIGKILL as a
 * host dies: `ppsim real --listen` (its port from its first line) from the
 * built CLI (built first if missing).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

export const BIN = "dist/src/cli/bin.js";

export function ensureBuilt(): void {
  if (!existsSync(BIN)) execFileSync("npm", ["run", "-s", "build"]);
}

export interface AgentProcess {
  child: ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
}

/** A destination agent (`ppsim real --listen 127.0.0.1:0 --insecure`, plus `extra`). */
export function spawnDestination(extra: string[] = []): Promise<AgentProcess> {
  ensureBuilt();
  const child = spawn(process.execPath, [BIN, "real", "--listen", "127.0.0.1:0", "--insecure", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  createInterface({ input: child.stderr! }).on("line", (l) => lines.push(l));
  return new Promise((resolve, reject) => {
    let port = -1;
    createInterface({ input: child.stdout! }).on("line", (l) => {
      lines.push(l);
      const m = /^listening on .*:(\d+)$/.exec(l);
      if (port < 0 && m !== null) {
        port = Number(m[1]);
        resolve({ child, port, lines, exited });
      }
    });
    void exited.then((code) => {
      if (port < 0) reject(new Error(`the destination exited with ${code} before listening:\n${lines.join("\n")}`));
    });
  });
}

/** Waits (as long as it takes: never a timing threshold) until `ready()` holds. */
export async function until(ready: () => boolean, what: string, gaveUp: () => boolean = () => false): Promise<void> {
  while (!ready()) {
    if (gaveUp()) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
