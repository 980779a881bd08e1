import type { Clock } from '../runtime/clock.js';
import type { Random } from '../runtime/random.js';
import type { Transport, TransportPeer, WireValue } from './transport.js';

/** The faults a memory network injects, each frame drawn on its own from the injected Random. */
export interface MemoryNetworkFaults {
  /** Probability that a frame is lost. */
  readonly dropRate: number;
  /** Probability that a frame is delivered twice. */
  readonly duplicateRate: number;
  /** A delayed delivery waits a uniform time in `[0, delayMaxMs]` on the injected Clock. */
  readonly delayMaxMs: number;
  /** Probability that a delivery is delayed at all (1: every one is). */
  readonly delayRate: number;
}

export const noNetworkFaults: MemoryNetworkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayMaxMs: 0,
  delayRate: 1,
};

export interface MemoryNetworkStats {
  readonly sent: number;
  readonly delivered: number;
  readonly dropped: number;
}

/**
 * The wire of every `MemoryTransport` in one process, for tests and the simulator. Frames are
 * copied through `structuredClone` (which keeps bigints, as the TCP codec does), so no object is
 * shared between nodes. Loss, duplication, delay and partitions come from the injected Clock and
 * Random, so a run replays exactly. With a delay, frames between two nodes may overtake each
 * other: tests that need the transport's order run without one.
 */
export class MemoryNetwork {
  private readonly transports = new Map<string, MemoryTransport>();
  /** Unordered node pairs that cannot reach each other, as `a|b` with a < b. */
  private readonly cuts = new Set<string>();
  private faults: MemoryNetworkFaults;
  private sentCount = 0;
  private deliveredCount = 0;
  private droppedCount = 0;

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    faults: Partial<MemoryNetworkFaults> = {},
  ) {
    this.faults = { ...noNetworkFaults, ...faults };
  }

  /**
   * A transport for `nodeId` on this network. A node id is connected once at a time; after its
   * transport is closed (the process died), a restarted node connects again under the same id.
   */
  connect(nodeId: string): MemoryTransport {
    if (this.transports.get(nodeId)?.isClosed() === false)
      throw new Error(`node ${nodeId} is already on the memory network`);
    const transport = new MemoryTransport(nodeId, this);
    this.transports.set(nodeId, transport);
    return transport;
  }

  setFaults(faults: Partial<MemoryNetworkFaults>): void {
    this.faults = { ...this.faults, ...faults };
  }

  /** Cuts every link between the two groups, both ways, until `heal`. */
  partition(side: readonly string[], otherSide: readonly string[]): void {
    for (const a of side) for (const b of otherSide) this.cuts.add(pairKey(a, b));
  }

  heal(): void {
    this.cuts.clear();
  }

  stats(): MemoryNetworkStats {
    return { sent: this.sentCount, delivered: this.deliveredCount, dropped: this.droppedCount };
  }

  /** @internal Called by `MemoryTransport.send`. */
  carry(from: string, to: string, frame: WireValue): boolean {
    this.sentCount++;
    const target = this.transports.get(to);
    if (target === undefined || target.isClosed()) {
      this.droppedCount++;
      return false;
    }
    if (this.cuts.has(pairKey(from, to)) || this.random.chance(this.faults.dropRate)) {
      // Lost on the way: the sender cannot tell, as with a connection that breaks after the write.
      this.droppedCount++;
      return true;
    }
    const copies = this.random.chance(this.faults.duplicateRate) ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const payload = structuredClone(frame);
      const deliver = () => {
        // A partition or a close that happens while the frame is on its way loses it too.
        if (target.isClosed() || this.cuts.has(pairKey(from, to))) {
          this.droppedCount++;
          return;
        }
        this.deliveredCount++;
        target.receive(from, payload);
      };
      const delayed =
        this.faults.delayMaxMs > 0 &&
        (this.faults.delayRate >= 1 || this.random.chance(this.faults.delayRate));
      const delayMs = delayed ? this.random.int(this.faults.delayMaxMs + 1) : 0;
      this.clock.schedule(delayMs, deliver);
    }
    return true;
  }
}

/** One node's end of a `MemoryNetwork`. */
export class MemoryTransport implements Transport {
  private handler: ((fromNodeId: string, frame: WireValue) => void) | undefined;
  private peers = new Set<string>();
  private closed = false;

  constructor(
    readonly nodeId: string,
    private readonly network: MemoryNetwork,
  ) {}

  send(toNodeId: string, frame: WireValue): boolean {
    if (this.closed || !this.peers.has(toNodeId)) return false;
    return this.network.carry(this.nodeId, toNodeId, frame);
  }

  onFrame(handler: (fromNodeId: string, frame: WireValue) => void): void {
    this.handler = handler;
  }

  setPeers(peers: readonly TransportPeer[]): void {
    this.peers = new Set(peers.map((peer) => peer.nodeId).filter((nodeId) => nodeId !== this.nodeId));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  isClosed(): boolean {
    return this.closed;
  }

  /** @internal Called by the network when a frame arrives. */
  receive(fromNodeId: string, frame: WireValue): void {
    if (this.closed) return;
    this.handler?.(fromNodeId, frame);
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
