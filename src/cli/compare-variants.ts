/**
 * `ppsim compare --huge-policy whole,split,none` and `--async-faults on,off`:
 * the same workload in variants, each run in every mode, so that the table
 * shows what moving huge pages whole or split, or async faults, trade.
 */
import { HUGE_POLICIES, type HugePolicy, type Workload } from "../workload/types.js";
import { UsageError } from "./errors.js";

export const COMPARE_VARIANT_FLAGS = {
  "huge-policy": { type: "string" },
  "async-faults": { type: "string" },
} as const;

export interface VariantFlags {
  "huge-policy"?: string;
  "async-faults"?: string;
}

export interface Variant {
  /** Appended to the mode in the table's head; "" for the workload as written. */
  label: string;
  workload: (w: Workload) => Workload;
  /** The workload file as this variant reads it (a report's workload_spec, for rerun). */
  spec: (spec: unknown) => unknown;
}

const AS_WRITTEN: Variant = { label: "", workload: (w) => w, spec: (s) => s };

function list(text: string, flag: string, allowed: readonly string[]): string[] {
  const items = [...new Set(text.split(",").map((x) => x.trim()))];
  for (const x of items) if (!allowed.includes(x)) throw new UsageError(`--${flag} must be one or more of ${allowed.join(", ")}, comma-separated, got "${x}"`);
  return items;
}

function object(spec: unknown): Record<string, unknown> {
  return typeof spec === "object" && spec !== null ? (spec as Record<string, unknown>) : {};
}

/** The variants the flags ask for (both flags: every combination); one, as written, without them. */
export function compareVariants(flags: VariantFlags): Variant[] {
  let out: Variant[] = [AS_WRITTEN];
  if (flags["huge-policy"] !== undefined) {
    out = list(flags["huge-policy"], "huge-policy", [...HUGE_POLICIES, "none"]).map((name): Variant => {
      const policy = name as HugePolicy | "none";
      if (policy === "none") {
        return { label: "base pages", workload: ({ hugePages: _, ...w }) => w, spec: ({ huge_pages: _, ...s }: Record<string, unknown>) => s } as Variant;
      }
      return {
        label: `${policy} huge pages`,
        workload: (w) => {
          if (w.hugePages === undefined) throw new UsageError(`--huge-policy ${policy}: the workload "${w.name}" has no huge_pages (give it "huge_pages": { "size": "2MiB" })`);
          return { ...w, hugePages: { ...w.hugePages, policy } };
        },
        spec: (s) => ({ ...object(s), huge_pages: { ...object(object(s).huge_pages), policy } }),
      };
    });
  }
  if (flags["async-faults"] !== undefined) {
    const modes = list(flags["async-faults"], "async-faults", ["on", "off"]);
    out = out.flatMap((base) =>
      modes.map((m): Variant => ({
        label: [base.label, `async ${m}`].filter((x) => x !== "").join(", "),
        workload: (w0) => {
          const w = base.workload(w0);
          if (w.tasks === undefined) throw new UsageError(`--async-faults: the workload "${w.name}" has one task per vCPU (give it "tasks")`);
          return { ...w, tasks: { ...w.tasks, asyncFaults: m === "on" } };
        },
        spec: (s0) => {
          const s = object(base.spec(s0));
          return { ...s, tasks: { ...object(s.tasks), async_faults: m === "on" } };
        },
      })),
    );
  }
  return out;
}
