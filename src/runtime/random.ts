/**
 * Randomness, behind an interface so a seeded simulator replays exactly. Backoff jitter, fault
 * injection and load generation all draw from an injected Random, never from Math.random().
 */
export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** True with the given probability. */
  chance(probability: number): boolean;
}

abstract class BaseRandom implements Random {
  abstract next(): number;

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}

class SystemRandom extends BaseRandom {
  next(): number {
    return Math.random();
  }
}

export const systemRandom: Random = new SystemRandom();

/**
 * sfc32, seeded through splitmix32: small, fast and well distributed. The same seed gives the same
 * sequence on every platform, because it uses only 32-bit integer arithmetic.
 */
export class SeededRandom extends BaseRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    super();
    let state = seed >>> 0;
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
  }

  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** An independent stream derived from this one, so parts of a simulation don't perturb each other. */
  fork(): SeededRandom {
    return new SeededRandom(this.int(0x7fffffff));
  }
}
