/**
 * Whether this host lets a process put itself in SCHED_RR (CAP_SYS_NICE or
 * RLIMIT_RTPRIO): asked of a child process, so the caller's own threads keep
 * their class. The real-time tests expect SCHED_RR where it is allowed and
 * the logged refusal where not.
 */
import { execFileSync } from "node:child_process";

export function mayRealtime(): boolean {
  const out = execFileSync(process.execPath, ["-e", `try{require("child_process").execFileSync("chrt",["-r","-p","1",String(process.pid)],{stdio:"ignore"});process.stdout.write("yes")}catch{process.stdout.write("no")}`]).toString();
  return out === "yes";
}
