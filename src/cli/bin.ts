#!/usr/bin/env node
import { run } from "./main.js";

run(process.argv.slice(2));
