/**
 * Unix sockets (listen/connect/accept, socketpair, SO_PEERCRED, fds over
 * SCM_RIGHTS) and a TCP socket's send buffer (native/src/unix_socket.cc).
 */
import { loadAddon } from "./native-load.js";

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedFds {
  data: Buffer;
  fds: number[];
}

interface RawSocket {
  unixListen(path: string): number;
  unixConnect(path: string): number;
  unixAccept(fd: number, timeoutMs?: number): Promise<number>;
  socketPair(): [number, number];
  peerCred(fd: number): PeerCred;
  setSendBuffer(fd: number, bytes: number): number;
  sendFds(fd: number, data: Uint8Array, fds: number[]): void;
  recvFds(fd: number, length: number, maxFds?: number, timeoutMs?: number): Promise<ReceivedFds>;
}

const addon = (): RawSocket => loadAddon<RawSocket>();

/** socket+bind+listen on a path (the caller removes the path afterwards). */
export function unixListen(path: string): number {
  return addon().unixListen(path);
}
export function unixConnect(path: string): number {
  return addon().unixConnect(path);
}
/** Accepts one connection on a pool thread; rejects with code ETIMEDOUT after timeoutMs (< 0: never). */
export function unixAccept(listenFd: number, timeoutMs = -1): Promise<number> {
  return addon().unixAccept(listenFd, timeoutMs);
}
export function socketPair(): [number, number] {
  return addon().socketPair();
}
/** SO_PEERCRED of a connected unix socket. */
export function peerCred(fd: number): PeerCred {
  return addon().peerCred(fd);
}
/**
 * SO_SNDBUF of a socket: bounds the bytes the kernel queues for it. Returns
 * the size the kernel reports (double what was asked: its bookkeeping).
 */
export function setSendBuffer(fd: number, bytes: number): number {
  return addon().setSendBuffer(fd, bytes);
}

/** sendmsg with SCM_RIGHTS: the fds ride on data's first byte (data must not be empty). */
export function sendFds(fd: number, data: Uint8Array, fds: number[]): void {
  addon().sendFds(fd, data, fds);
}
/** Receives exactly `length` bytes and the fds that came with them (MSG_CMSG_CLOEXEC). */
export function recvFds(fd: number, length: number, maxFds = 8, timeoutMs = -1): Promise<ReceivedFds> {
  return addon().recvFds(fd, length, maxFds, timeoutMs);
}
