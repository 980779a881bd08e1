/**
 * Orders sent to a running Remit over HTTP, for end-to-end specs of real processes: poll a
 * condition, and push one order through a node until it is final.
 */

export interface UntilOptions {
  /** Polls before giving up; one every `pollIntervalMs`. */
  readonly attemptsMax?: number;
  /** What the error adds when the condition never holds (e.g. the processes' warnings). */
  readonly explain?: () => string;
}

const pollIntervalMs = 100;
const requestTimeoutMs = 20_000;
const terminalStatuses = ['executed', 'declined', 'rejected', 'failed'];

/** Resolves once `condition` holds; a condition that throws has not held yet. */
export async function until(
  condition: () => Promise<boolean>,
  what: string,
  options: UntilOptions = {},
): Promise<void> {
  const attemptsMax = options.attemptsMax ?? 600;
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    if (await condition().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
  const explanation = options.explain?.() ?? '';
  throw new Error(`${what} did not happen${explanation === '' ? '' : `:\n${explanation}`}`);
}

/**
 * Sends an order of 12.50 EUR through the node at `url` (again with the same idempotency key until
 * it is accepted), then reads it through that node until its status is final, and returns that.
 */
export async function finalStatusThrough(
  url: string,
  apiKey: string,
  idempotencyKey: string,
  explain?: () => string,
): Promise<string> {
  let id: string | undefined;
  await until(
    async () => {
      const response = await fetch(`${url}/v1/orders`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'idempotency-key': idempotencyKey,
          prefer: 'wait=5',
        },
        body: JSON.stringify({
          amount: 1_250,
          currency: 'EUR',
          card: { number: '4111111111111111', expMonth: 12, expYear: 2030, cvc: '123' },
        }),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      const json = (await response.json()) as { id?: unknown };
      if ((response.status === 201 || response.status === 202) && typeof json.id === 'string') id = json.id;
      return id !== undefined;
    },
    `order ${idempotencyKey} accepted`,
    { attemptsMax: 60, ...(explain === undefined ? {} : { explain }) },
  );
  let status = '';
  await until(
    async () => {
      const response = await fetch(`${url}/v1/orders/${id}`, {
        headers: { authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      if (response.status !== 200) return false;
      status = ((await response.json()) as { status: string }).status;
      return terminalStatuses.includes(status);
    },
    `order ${idempotencyKey} final`,
    explain === undefined ? {} : { explain },
  );
  return status;
}
