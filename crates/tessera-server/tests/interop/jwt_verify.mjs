// panva's jose, the JWT library of Node.js resource servers, verifies a Tessera access token
// through the JWKS (RFC 9068: typ at+jwt, the required claims) and rejects a tampered one.
//
// Usage: node jwt_verify.mjs JWKS_URL ISSUER AUDIENCE ACCESS_TOKEN
import * as jose from 'jose';

const [jwksUrl, issuer, audience, token] = process.argv.slice(2);
const jwks = jose.createRemoteJWKSet(new URL(jwksUrl));
const options = {
  issuer,
  audience,
  typ: 'at+jwt',
  requiredClaims: ['exp', 'iat', 'sub', 'jti', 'client_id'],
};
const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, options);

const [h, p, s] = token.split('.');
const claims = JSON.parse(Buffer.from(p, 'base64url'));
claims.sub = 'someone-else';
const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
try {
  await jose.jwtVerify(forged, jwks, options);
  throw new Error('jose accepted a tampered token');
} catch (e) {
  if (e.code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw e;
}
console.log(`${protectedHeader.alg} ${payload.sub}`);
