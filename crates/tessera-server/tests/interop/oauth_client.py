"""Tessera driven by third-party libraries nobody here wrote.

- Authlib's OAuth 2.0 client discovers the endpoints (RFC 8414), refreshes (RFC 6749 §6),
  introspects (RFC 7662) and revokes (RFC 7009), authenticating with HTTP Basic.
- PyJWT verifies the access tokens against the JWKS, as any resource server in Python would,
  and rejects a tampered one.

Usage: oauth_client.py BASE_URL CLIENT_ID CLIENT_SECRET REFRESH_TOKEN AUDIENCE
Exits non-zero (an AssertionError with the reason) when anything is not as the RFCs say.
"""

import base64
import json
import sys

import jwt
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

base, client_id, secret, refresh_token, audience = sys.argv[1:6]

meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
assert meta["issuer"] == base, meta
assert meta["grant_types_supported"] == ["refresh_token"], meta

client = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic")

# Refresh: a new pair, the old refresh token rotated away.
token = client.refresh_token(meta["token_endpoint"], refresh_token=refresh_token)
assert token["token_type"] == "Bearer", token
assert token["refresh_token"] != refresh_token, "rotated"
access = token["access_token"]

# A second refresh with the newest token, as a client library keeps doing.
token = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
access = token["access_token"]

# The replaced refresh token is refused with invalid_grant (grace is 0 here: reuse).
try:
    client.refresh_token(meta["token_endpoint"], refresh_token=refresh_token)
    raise AssertionError("an old refresh token was accepted")
except OAuthError as e:
    assert e.error == "invalid_grant", e.error

# Reuse revoked the family: log in again happens in the Rust test; here, a fresh session token is
# handed over on stdin for the rest.
fresh = json.loads(sys.stdin.readline())
token = client.refresh_token(meta["token_endpoint"], refresh_token=fresh["refresh_token"])
access = token["access_token"]

# PyJWT verifies it with the JWKS, checking signature, issuer, audience and required claims.
jwks = jwt.PyJWKClient(meta["jwks_uri"])
header = jwt.get_unverified_header(access)
assert header["typ"] == "at+jwt", header  # RFC 9068 §2.1
key = jwks.get_signing_key_from_jwt(access)
claims = jwt.decode(
    access,
    key,
    algorithms=[header["alg"]],
    audience=audience,
    issuer=base,
    options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
)
assert claims["client_id"] == client_id, claims  # RFC 9068 §2.2

# A tampered token (another subject in the payload, same signature) is rejected.
h, p, s = access.split(".")
payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
payload["sub"] = "someone-else"
forged_p = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
try:
    jwt.decode(f"{h}.{forged_p}.{s}", key, algorithms=[header["alg"]], audience=audience)
    raise AssertionError("PyJWT accepted a tampered token")
except jwt.InvalidSignatureError:
    pass

# Introspection agrees: active, with the same subject.
info = client.introspect_token(meta["introspection_endpoint"], token=access).json()
assert info["active"] is True and info["sub"] == claims["sub"], info

# Revoke the refresh token: the session ends, its access token with it.
r = client.revoke_token(
    meta["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
)
assert r.status_code == 200, r.text
info = client.introspect_token(meta["introspection_endpoint"], token=access).json()
assert info == {"active": False}, info
try:
    client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    raise AssertionError("a revoked refresh token was accepted")
except OAuthError as e:
    assert e.error == "invalid_grant", e.error

print(json.dumps({"revoked_access_token": access, "sub": claims["sub"]}))
