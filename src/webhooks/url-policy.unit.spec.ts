import { describe, expect, it } from 'vitest';
import {
  addressRange,
  checkWebhookUrl,
  type HostLookup,
  parseWebhookUrl,
  resolveDeliveryAddress,
  webhookUrlLengthMax,
} from './url-policy.js';

const strict = { allowInsecure: false };
const insecure = { allowInsecure: true };

/** A DNS that answers from a table, and says how often it was asked; no network. */
function tableLookup(table: Record<string, readonly string[]>) {
  const asked: string[] = [];
  const lookup: HostLookup = async (hostname) => {
    asked.push(hostname);
    const addresses = table[hostname];
    if (addresses === undefined)
      throw Object.assign(new Error(`no such host ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { lookup, asked };
}

describe('parseWebhookUrl', () => {
  it('accepts an https URL with a host name or a public address', () => {
    for (const url of [
      'https://hooks.example.com/remit',
      'https://93.184.215.14:8443/x?y=1',
      'https://[2606:4700::1]/',
    ]) {
      const parsed = parseWebhookUrl(url, strict);
      expect(parsed.ok && parsed.value.href).toBe(new URL(url).href);
    }
  });

  it.each([
    ['a number', 42, 'webhook_url_invalid'],
    ['an empty string', '  ', 'webhook_url_invalid'],
    ['a relative path', '/hooks', 'webhook_url_invalid'],
    ['another scheme', 'ftp://hooks.example.com/', 'webhook_url_invalid'],
    ['javascript:', 'javascript:alert(1)', 'webhook_url_invalid'],
    ['credentials', 'https://user:secret@hooks.example.com/', 'webhook_url_invalid'],
    [
      'an overlong URL',
      `https://hooks.example.com/${'a'.repeat(webhookUrlLengthMax)}`,
      'webhook_url_invalid',
    ],
    ['http', 'http://hooks.example.com/', 'webhook_url_not_https'],
    ['loopback', 'https://127.0.0.1/', 'webhook_url_private_address'],
    ['loopback written in hex', 'https://0x7f.1/', 'webhook_url_private_address'],
    ['loopback as one number', 'https://2130706433/', 'webhook_url_private_address'],
    ['IPv6 loopback', 'https://[::1]/', 'webhook_url_private_address'],
    ['10/8', 'https://10.1.2.3/', 'webhook_url_private_address'],
    ['172.16/12', 'https://172.31.255.255/', 'webhook_url_private_address'],
    ['192.168/16', 'https://192.168.0.1/', 'webhook_url_private_address'],
    [
      'link-local (cloud metadata)',
      'https://169.254.169.254/latest/meta-data',
      'webhook_url_private_address',
    ],
    ['unspecified', 'https://0.0.0.0/', 'webhook_url_private_address'],
    ['IPv6 unspecified', 'https://[::]/', 'webhook_url_private_address'],
    ['CGNAT', 'https://100.64.0.1/', 'webhook_url_private_address'],
    ['multicast', 'https://224.0.0.1/', 'webhook_url_private_address'],
    ['IPv6 unique local', 'https://[fd00::1]/', 'webhook_url_private_address'],
    ['IPv6 link-local', 'https://[fe80::1]/', 'webhook_url_private_address'],
    ['IPv6 multicast', 'https://[ff02::1]/', 'webhook_url_private_address'],
    ['IPv4-mapped loopback', 'https://[::ffff:127.0.0.1]/', 'webhook_url_private_address'],
    ['IPv4-mapped private', 'https://[::ffff:10.0.0.1]/', 'webhook_url_private_address'],
    ['IPv4-compatible loopback', 'https://[::127.0.0.1]/', 'webhook_url_private_address'],
    ['NAT64 of loopback', 'https://[64:ff9b::7f00:1]/', 'webhook_url_private_address'],
  ])('refuses %s', (_name, url, code) => {
    const parsed = parseWebhookUrl(url, strict);
    expect(parsed.ok ? 'accepted' : parsed.code).toBe(code);
  });

  it('allows http and any address when insecure webhooks are allowed, but still only http(s)', () => {
    for (const url of [
      'http://127.0.0.1:4242/hooks',
      'https://[::1]/',
      'http://localhost/',
      'http://10.0.0.1/',
    ]) {
      expect(parseWebhookUrl(url, insecure).ok).toBe(true);
    }
    const refused = parseWebhookUrl('file:///etc/passwd', insecure);
    expect(refused.ok ? 'accepted' : refused.code).toBe('webhook_url_invalid');
  });
});

describe('addressRange', () => {
  it('classifies IPv4-mapped addresses by the IPv4 address they carry', () => {
    expect(addressRange('::ffff:8.8.8.8')).toBe('unicast');
    expect(addressRange('::ffff:192.168.1.1')).toBe('private');
    expect(addressRange('::ffff:169.254.0.1')).toBe('linkLocal');
    expect(addressRange('8.8.8.8')).toBe('unicast');
    expect(addressRange('2001:4860:4860::8888')).toBe('unicast');
  });
});

describe('checkWebhookUrl', () => {
  it('accepts a host whose every address is public', async () => {
    const { lookup } = tableLookup({
      'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    });
    const checked = await checkWebhookUrl('https://hooks.example.com/remit', strict, lookup);
    expect(checked.ok).toBe(true);
  });

  it('refuses a host that resolves to a private address, even among public ones', async () => {
    const { lookup } = tableLookup({
      localhost: ['127.0.0.1', '::1'],
      'mixed.example.com': ['93.184.215.14', '10.0.0.7'],
    });
    for (const url of ['https://localhost/', 'https://mixed.example.com/']) {
      const checked = await checkWebhookUrl(url, strict, lookup);
      expect(checked.ok ? 'accepted' : checked.code).toBe('webhook_url_private_address');
    }
  });

  it('refuses a host that does not resolve, and says why', async () => {
    const { lookup } = tableLookup({});
    const checked = await checkWebhookUrl('https://nowhere.example.com/', strict, lookup);
    expect(checked).toEqual({
      ok: false,
      code: 'webhook_url_unresolvable',
      detail: 'nowhere.example.com does not resolve (ENOTFOUND)',
    });
  });

  it('does not ask DNS about a URL that is refused already', async () => {
    const { lookup, asked } = tableLookup({ 'hooks.example.com': ['93.184.215.14'] });
    await checkWebhookUrl('http://hooks.example.com/', strict, lookup);
    expect(asked).toEqual([]);
  });
});

describe('resolveDeliveryAddress', () => {
  it('returns the checked address to connect to', async () => {
    const { lookup } = tableLookup({ 'hooks.example.com': ['93.184.215.14', '93.184.215.15'] });
    const resolved = await resolveDeliveryAddress(new URL('https://hooks.example.com/remit'), {
      ...strict,
      lookup,
    });
    expect(resolved).toEqual({ ok: true, value: { address: '93.184.215.14', family: 4 } });
  });

  it('refuses a name that was public at registration and resolves to a private address now (rebinding)', async () => {
    const answers: Record<string, string[]> = { 'rebind.example.com': ['93.184.215.14'] };
    const { lookup } = tableLookup(answers);
    const registered = await checkWebhookUrl('https://rebind.example.com/', strict, lookup);
    expect(registered.ok).toBe(true);
    answers['rebind.example.com'] = ['169.254.169.254'];
    const resolved = await resolveDeliveryAddress(new URL('https://rebind.example.com/'), {
      ...strict,
      lookup,
    });
    expect(resolved).toEqual({
      ok: false,
      code: 'webhook_url_private_address',
      detail: 'rebind.example.com (169.254.169.254) is a linkLocal address, not a public one',
    });
  });

  it('resolves a literal address to itself without asking DNS', async () => {
    const { lookup, asked } = tableLookup({});
    const resolved = await resolveDeliveryAddress(new URL('http://[::1]:4242/'), { ...insecure, lookup });
    expect(resolved).toEqual({ ok: true, value: { address: '::1', family: 6 } });
    expect(asked).toEqual([]);
  });

  it('delivers to loopback when insecure webhooks are allowed', async () => {
    const { lookup } = tableLookup({ localhost: ['127.0.0.1'] });
    const resolved = await resolveDeliveryAddress(new URL('http://localhost:4242/'), { ...insecure, lookup });
    expect(resolved).toEqual({ ok: true, value: { address: '127.0.0.1', family: 4 } });
  });

  it('refuses a name with no address at all', async () => {
    const { lookup } = tableLookup({ 'empty.example.com': [] });
    const resolved = await resolveDeliveryAddress(new URL('https://empty.example.com/'), {
      ...strict,
      lookup,
    });
    expect(resolved.ok ? 'accepted' : resolved.code).toBe('webhook_url_unresolvable');
  });
});
