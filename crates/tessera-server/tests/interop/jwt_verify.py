"""PyJWT, a resource server's JWT library, verifies a Tessera access token through the JWKS and
rejects a tampered one.

Usage: jwt_verify.py JWKS_URL ISSUER AUDIENCE ACCESS_TOKEN
"""

import sys

import jwt

jwks_url, issuer, audience, access = sys.argv[1:5]
header = jwt.get_unverified_header(access)
assert header["typ"] == "at+jwt", header
key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(access)
claims = jwt.decode(access, key, algorithms=[header["alg"]], audience=audience, issuer=issuer,
                    options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]})
h, p, s = access.split(".")
flipped = s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
try:
    jwt.decode(f"{h}.{p}.{flipped}", key, algorithms=[header["alg"]], audience=audience)
    raise AssertionError("PyJWT accepted a tampered signature")
except jwt.InvalidSignatureError:
    pass
print(header["alg"], claims["sub"])
