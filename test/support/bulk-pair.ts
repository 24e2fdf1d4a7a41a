/**
 * The native data plane's sender and receiver joined by a socketpair, as the
 * in-process tests of the bulk path set them up (test/dataplane-native,
 * test/native-minor): every notice kept in order, and a non-pages frame
 * standing in for the switchover — from it on the guest "may run" and the
 * receiver, stopped at that frame, is released.
 */
import { receiverLimits } from "../../src/real/dataplane-recv.js";
import {
  closeFd,
  createBulkReceiver,
  socketPair,
  startBulkSender,
  type BulkNotice,
} from "../../src/real/native.js";

/** The receiver's per-type payload bounds for a guest of `pageCount` pages: the agent's (huge pages: 16 a frame). */
export { receiverLimits } from "../../src/real/dataplane-recv.js";

/** A sender reading `src` and a receiver on the other end of a socketpair; everything is closed by `cleanups`. */
export function bulkPair(cleanups: (() => void)[], src: number, pageSize: number, pageCount: number) {
  const [a, b] = socketPair();
  cleanups.push(() => closeFd(a), () => closeFd(b));
  const sender = startBulkSender(a, src, pageSize, pageCount, 64 * 1024, () => undefined);
  cleanups.push(() => sender.stop());
  const notices: BulkNotice[] = [];
  const receiver = createBulkReceiver(b, receiverLimits(pageSize, pageCount), 30_000, (ns) => {
    for (const n of ns) {
      notices.push(n);
      if (n.kind === "frame") {
        receiver.setRunning();
        receiver.release();
      }
    }
  });
  cleanups.push(() => receiver.stop());
  return { sender, receiver, notices };
}
