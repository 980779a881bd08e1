import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/**
 * Which URLs a merchant may register as a webhook endpoint, and which addresses Remit may deliver
 * to. A webhook makes the gateway send requests to a URL someone else chose, so without a policy
 * it is a server-side request forgery: an endpoint at `http://169.254.169.254/` or
 * `https://10.0.0.5/admin` would have Remit probe its own network. Only `https` is allowed, and
 * no address that is not public unicast: loopback, private (RFC 1918, fc00::/7), link-local,
 * unspecified, carrier-grade NAT (100.64/10), multicast, broadcast, reserved and documentation
 * ranges, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo),
 * which could reach any of those through a translator. The ranges come from ipaddr.js.
 *
 * A host name is checked twice: at registration, on every address it resolves to, and again at
 * each delivery on the address actually connected to, since DNS can answer differently the second
 * time (DNS rebinding). `resolveDeliveryAddress` returns that address; the caller connects to it
 * (with the URL's host name for TLS and the Host header), never resolving the name again.
 *
 * `allowInsecure` (`REMIT_WEBHOOKS_ALLOW_INSECURE=true`, `--webhooks-allow-insecure`) allows `http`
 * and every address, for development and tests whose receivers listen on 127.0.0.1.
 */

export interface WebhookUrlPolicy {
  readonly allowInsecure: boolean;
}

export type WebhookUrlErrorCode =
  | 'webhook_url_invalid'
  | 'webhook_url_not_https'
  | 'webhook_url_private_address'
  | 'webhook_url_unresolvable';

export type WebhookUrlResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: WebhookUrlErrorCode; readonly detail: string };

/** The address a delivery connects to, already checked against the policy. */
export interface DeliveryAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

export interface ResolvedHostAddress {
  readonly address: string;
  readonly family: number;
}

/** Resolves a host name to all its addresses; `node:dns` in production, a table in tests. */
export type HostLookup = (hostname: string) => Promise<readonly ResolvedHostAddress[]>;

export const systemHostLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true });

/** Longer URLs are refused: they are stored, listed and logged with every delivery. */
export const webhookUrlLengthMax = 2048;

const webhookUrlInputSchema = z
  .string({ error: 'the webhook URL must be a string' })
  .trim()
  .min(1, { error: 'the webhook URL is empty' })
  .max(webhookUrlLengthMax, { error: `the webhook URL is longer than ${webhookUrlLengthMax} characters` });

/**
 * Parses a URL given at the boundary and checks what can be checked without DNS: the scheme, no
 * credentials in it, and a literal IP address's range. A host name passes here; `checkWebhookUrl`
 * resolves it.
 */
export function parseWebhookUrl(input: unknown, policy: WebhookUrlPolicy): WebhookUrlResult<URL> {
  const text = webhookUrlInputSchema.safeParse(input);
  if (!text.success) return refuse('webhook_url_invalid', text.error.issues[0]?.message ?? 'not a URL');
  if (!URL.canParse(text.data)) return refuse('webhook_url_invalid', 'the webhook URL cannot be parsed');
  const url = new URL(text.data);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return refuse('webhook_url_invalid', `a webhook URL is http(s), not ${url.protocol.slice(0, -1)}`);
  }
  if (url.protocol !== 'https:' && !policy.allowInsecure) {
    return refuse('webhook_url_not_https', 'a webhook URL must use https');
  }
  // Credentials in the URL would be shown wherever the endpoint is listed.
  if (url.username !== '' || url.password !== '') {
    return refuse('webhook_url_invalid', 'a webhook URL cannot contain a user name or password');
  }
  const literal = literalAddress(url);
  if (literal !== undefined) {
    const refused = refuseDisallowedAddress(literal, policy);
    if (refused !== undefined) return refused;
  }
  return { ok: true, value: url };
}

/**
 * The registration check: `parseWebhookUrl`, then every address the host resolves to must be
 * allowed. One disallowed address is enough to refuse, since a delivery could connect to any.
 */
export async function checkWebhookUrl(
  input: unknown,
  policy: WebhookUrlPolicy,
  lookup: HostLookup = systemHostLookup,
): Promise<WebhookUrlResult<URL>> {
  const parsed = parseWebhookUrl(input, policy);
  if (!parsed.ok) return parsed;
  const resolved = await resolveAllowed(parsed.value, policy, lookup);
  return resolved.ok ? parsed : resolved;
}

/**
 * The delivery check: resolves the URL's host (a literal address resolves to itself), refuses if
 * any address is disallowed, and returns the first one, to connect to without resolving again.
 */
export async function resolveDeliveryAddress(
  url: URL,
  options: WebhookUrlPolicy & { readonly lookup?: HostLookup },
): Promise<WebhookUrlResult<DeliveryAddress>> {
  const parsed = parseWebhookUrl(url.href, options);
  if (!parsed.ok) return parsed;
  const resolved = await resolveAllowed(parsed.value, options, options.lookup ?? systemHostLookup);
  if (!resolved.ok) return resolved;
  const [first] = resolved.value;
  if (first === undefined) return refuse('webhook_url_unresolvable', `${url.hostname} has no address`);
  return { ok: true, value: first };
}

/**
 * The range an address is in, as ipaddr.js names it; `unicast` is the only one deliveries may
 * reach. IPv4-mapped IPv6 addresses are classified by the IPv4 address they carry, and the rest
 * of ::/8 (IPv4-compatible and reserved) is `reserved`.
 */
export function addressRange(address: string): string {
  const ipv6 = ipaddr.parse(address);
  if (ipv6 instanceof ipaddr.IPv4) return ipv6.range();
  if (ipv6.isIPv4MappedAddress()) return ipv6.toIPv4Address().range();
  const range = ipv6.range();
  if (range === 'unicast' && (ipv6.parts[0] ?? 0) < 0x0100) return 'reserved';
  return range;
}

async function resolveAllowed(
  url: URL,
  policy: WebhookUrlPolicy,
  lookup: HostLookup,
): Promise<WebhookUrlResult<readonly DeliveryAddress[]>> {
  const literal = literalAddress(url);
  const hostname = url.hostname;
  let resolved: readonly ResolvedHostAddress[];
  try {
    resolved = literal === undefined ? await lookup(hostname) : [{ address: literal, family: isIP(literal) }];
  } catch (error) {
    const reason = error instanceof Error && 'code' in error ? String(error.code) : String(error);
    return refuse('webhook_url_unresolvable', `${hostname} does not resolve (${reason})`);
  }
  const addresses: DeliveryAddress[] = [];
  for (const { address } of resolved) {
    const family = isIP(address);
    if (family !== 4 && family !== 6) {
      return refuse('webhook_url_unresolvable', `${hostname} resolved to something that is not an address`);
    }
    const refused = refuseDisallowedAddress(address, policy, hostname);
    if (refused !== undefined) return refused;
    addresses.push({ address, family });
  }
  if (addresses.length === 0) return refuse('webhook_url_unresolvable', `${hostname} has no address`);
  return { ok: true, value: addresses };
}

/** The URL's host if it is an IP address (without the brackets of an IPv6 literal). */
function literalAddress(url: URL): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? undefined : host;
}

function refuseDisallowedAddress(
  address: string,
  policy: WebhookUrlPolicy,
  hostname?: string,
): { ok: false; code: WebhookUrlErrorCode; detail: string } | undefined {
  if (policy.allowInsecure) return undefined;
  const range = addressRange(address);
  if (range === 'unicast') return undefined;
  const what = hostname === undefined || hostname === address ? address : `${hostname} (${address})`;
  return refuse('webhook_url_private_address', `${what} is a ${range} address, not a public one`);
}

function refuse(
  code: WebhookUrlErrorCode,
  detail: string,
): { ok: false; code: WebhookUrlErrorCode; detail: string } {
  return { ok: false, code, detail };
}
