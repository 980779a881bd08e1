import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  generateWebhookSecret,
  signWebhook,
  verifyWebhookSignature,
  type WebhookVerification,
} from './signature.js';

// The expected hex values were computed outside this code, with
// `printf '%s' '1767225600.{"id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec_test'` (and whsec_old).
const body = '{"id":"evt_1"}';
const t = 1_767_225_600;
const signedWithTest = '45b40331de0325606dc5400202ade162460fbe48daf9401adfdcd0d7b4f35470';
const signedWithOld = 'cc8eec4a38fd1fcbf2239fdfaa2af6db3f6cd83419e90882421c22d9dc23ba8c';

describe('signWebhook', () => {
  it('signs <t>.<raw body> with HMAC-SHA256 keyed with the whole secret, as t=<t>,v1=<hex>', () => {
    expect(signWebhook({ secret: 'whsec_test', body, timestampSeconds: t })).toBe(
      `t=${t},v1=${signedWithTest}`,
    );
  });

  it('signs with the current and the expiring secret during a rotation', () => {
    expect(
      signWebhook({ secret: 'whsec_test', expiringSecret: 'whsec_old', body, timestampSeconds: t }),
    ).toBe(`t=${t},v1=${signedWithTest},v1=${signedWithOld}`);
  });

  it('refuses a timestamp that is not whole seconds, and an empty secret', () => {
    expect(() => signWebhook({ secret: 'whsec_test', body, timestampSeconds: 1.5 })).toThrow(/whole seconds/);
    expect(() => signWebhook({ secret: '', body, timestampSeconds: t })).toThrow(/empty/);
  });
});

describe('verifyWebhookSignature', () => {
  const header = `t=${t},v1=${signedWithTest}`;

  it('accepts an authentic delivery within the tolerance, and says its timestamp', () => {
    expect(verifyWebhookSignature({ header, body, secret: 'whsec_test', nowSeconds: t + 300 })).toEqual({
      ok: true,
      timestamp: t,
    });
    expect(
      verifyWebhookSignature({ header, body: Buffer.from(body), secret: 'whsec_test', nowSeconds: t }),
    ).toEqual({
      ok: true,
      timestamp: t,
    });
  });

  it('accepts either secret of a rotation, whichever the receiver has', () => {
    const rotating = signWebhook({
      secret: 'whsec_new',
      expiringSecret: 'whsec_old',
      body,
      timestampSeconds: t,
    });
    for (const secret of ['whsec_new', 'whsec_old']) {
      expect(verifyWebhookSignature({ header: rotating, body, secret, nowSeconds: t }).ok).toBe(true);
    }
    expect(verifyWebhookSignature({ header: rotating, body, secret: 'whsec_other', nowSeconds: t })).toEqual({
      ok: false,
      reason: 'no_matching_signature',
    });
  });

  it('refuses a changed body, another secret, or a signature over another timestamp', () => {
    const refused = { ok: false, reason: 'no_matching_signature' };
    expect(verifyWebhookSignature({ header, body: `${body} `, secret: 'whsec_test', nowSeconds: t })).toEqual(
      refused,
    );
    expect(verifyWebhookSignature({ header, body, secret: 'whsec_tesT', nowSeconds: t })).toEqual(refused);
    const moved = `t=${t + 1},v1=${signedWithTest}`;
    expect(verifyWebhookSignature({ header: moved, body, secret: 'whsec_test', nowSeconds: t })).toEqual(
      refused,
    );
    expect(verifyWebhookSignature({ header, body, secret: '', nowSeconds: t })).toEqual(refused);
  });

  it('refuses an authentic delivery older or newer than the tolerance', () => {
    const late = { ok: false, reason: 'timestamp_outside_tolerance' };
    expect(verifyWebhookSignature({ header, body, secret: 'whsec_test', nowSeconds: t + 301 })).toEqual(late);
    expect(verifyWebhookSignature({ header, body, secret: 'whsec_test', nowSeconds: t - 301 })).toEqual(late);
    expect(
      verifyWebhookSignature({
        header,
        body,
        secret: 'whsec_test',
        nowSeconds: t + 3600,
        toleranceSeconds: 3600,
      }).ok,
    ).toBe(true);
  });

  it('checks the signature before the time, so a forgery is never told it is merely late', () => {
    const forged = `t=${t},v1=${'0'.repeat(64)}`;
    expect(
      verifyWebhookSignature({ header: forged, body, secret: 'whsec_test', nowSeconds: t + 10_000 }),
    ).toEqual({
      ok: false,
      reason: 'no_matching_signature',
    });
  });

  it('ignores elements of other schemes and accepts elements in any order', () => {
    const reordered = `v0=abc,v1=${'f'.repeat(64)},v1=${signedWithTest.toUpperCase()},t=${t}`;
    expect(verifyWebhookSignature({ header: reordered, body, secret: 'whsec_test', nowSeconds: t }).ok).toBe(
      true,
    );
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['no timestamp', `v1=${signedWithTest}`],
    ['no v1 signature', `t=${t},v0=${signedWithTest}`],
    ['two timestamps', `t=${t},t=${t},v1=${signedWithTest}`],
    ['a timestamp that is not a number', `t=soon,v1=${signedWithTest}`],
    ['a negative timestamp', `t=-1,v1=${signedWithTest}`],
    ['an element without =', `t=${t},v1`],
    ['a header repeated', [header, header]],
    ['a header too long', `t=${t},${'v0=x,'.repeat(1000)}v1=${signedWithTest}`],
  ])('calls %s malformed', (_name, malformed) => {
    expect(verifyWebhookSignature({ header: malformed, body, secret: 'whsec_test', nowSeconds: t })).toEqual({
      ok: false,
      reason: 'malformed_header',
    });
  });

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(
        fc.anything(),
        fc.anything(),
        fc.anything(),
        fc.anything(),
        (anyHeader, anyBody, secret, now) => {
          // A JavaScript receiver can pass anything at all; the types are not there to stop it.
          const input = { header: anyHeader, body: anyBody, secret, nowSeconds: now };
          const result: WebhookVerification = Reflect.apply(verifyWebhookSignature, undefined, [input]);
          expect(result.ok).toBe(false);
        },
      ),
    );
  });

  it('accepts every body it signed, and no other', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string({ minLength: 1 }), (signedBody, otherBody, secret) => {
        const signed = signWebhook({ secret, body: signedBody, timestampSeconds: t });
        expect(verifyWebhookSignature({ header: signed, body: signedBody, secret, nowSeconds: t }).ok).toBe(
          true,
        );
        if (otherBody !== signedBody) {
          expect(verifyWebhookSignature({ header: signed, body: otherBody, secret, nowSeconds: t }).ok).toBe(
            false,
          );
        }
      }),
    );
  });
});

describe('generateWebhookSecret', () => {
  it('is whsec_ and 32 random bytes in base64url', () => {
    const bytes = (size: number) => Uint8Array.from({ length: size }, (_, index) => index);
    expect(generateWebhookSecret(bytes)).toBe(`whsec_${Buffer.from(bytes(32)).toString('base64url')}`);
    expect(generateWebhookSecret()).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(generateWebhookSecret()).not.toBe(generateWebhookSecret());
  });

  it('refuses a source that gives too few bytes', () => {
    expect(() => generateWebhookSecret(() => new Uint8Array(16))).toThrow(/32 random bytes/);
  });
});

describe('verify.ts, the file merchants copy', () => {
  it('imports nothing but node:crypto', () => {
    const source = readFileSync(new URL('./verify.ts', import.meta.url), 'utf8');
    const imported = [...source.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+'([^']+)'/gms)].map(
      (match) => match[1],
    );
    expect(imported).toEqual(['node:crypto']);
  });
});
