#!/usr/bin/env node
// NO_COLOR (https://no-color.org): colour off, whatever the terminal. The
// colour library decides once, as it loads, so this comes before anything
// imports it: hence the dynamic import.
if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") process.env.FORCE_COLOR = "0";
const { run } = await import("./main.js");
run(process.argv.slice(2));
