import type { HostProfile } from "../../src/sim/host.js";

/** Every figure the profile must have at 0, none of the optional ones (the fault lane, the switchover's legs: each changes what is charged, not only how much). */
export const FREE: HostProfile = {
  ppsim_host_profile: 1,
  measured_on: "free",
  send_ns_per_page: 0,
  send_ns_per_zero_page: 0,
  install_ns_per_page: 0,
  install_ns_per_zero_page: 0,
  message_ns: 0,
  fault_delivery_us: 0,
  pause_us: 0,
  resume_us: 0,
  guest_start_us: 0,
};
