/** A frame between nodes: JSON-compatible data in which bigints are allowed (the codec keeps them). */
export type WireValue = unknown;

export interface TransportPeer {
  readonly nodeId: string;
  /** host:port of the peer's cluster listener. */
  readonly address: string;
}

/**
 * Carries frames between the nodes of a cluster. Delivery is best effort: a frame may be lost
 * (connection lost, buffer full, peer unknown); everything that matters is delivered at least once
 * above it. Frames from one node to another arrive in the order sent, or not at all.
 */
export interface Transport {
  /** The node this transport belongs to. */
  readonly nodeId: string;
  /** Sends a frame; false when it was dropped at once (unknown peer, buffer full). Never throws. */
  send(toNodeId: string, frame: WireValue): boolean;
  /** One handler; frames arrive decoded, bigints as bigints. */
  onFrame(handler: (fromNodeId: string, frame: WireValue) => void): void;
  /** The peers to keep connections to; peers no longer listed are disconnected. */
  setPeers(peers: readonly TransportPeer[]): void;
  close(): Promise<void>;
}
