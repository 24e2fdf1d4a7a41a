export { Simulation, simulate, DEFAULT_MAX_VIRTUAL_MS, type Outage, type SimConfig } from "./simulation.js";
export { Link, parseLink, formatLink, type LinkSpec, type Direction, type LinkEvent, type LinkHooks } from "./link.js";
export { EventQueue } from "./event-queue.js";
export { Guest, GuestShared, ACCESS_US } from "./guest.js";
