"""OAuth clients no one here wrote, against a running Keyward.

Environment: KEYWARD_URL, CLIENT_ID, CLIENT_SECRET. Prints OK when every check passed;
any failure raises.
"""
import os

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from jwcrypto import jwk
from jwcrypto import jwt as jwcrypto_jwt
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session

base = os.environ["KEYWARD_URL"]
client_id = os.environ["CLIENT_ID"]
client_secret = os.environ["CLIENT_SECRET"]

# authlib's RFC 8414 validator on the metadata document.
metadata = AuthorizationServerMetadata(
    requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
)
metadata.validate()
assert metadata["grant_types_supported"] == ["client_credentials"]
token_url = metadata["token_endpoint"]
issuer = metadata["issuer"]

# authlib fetch_token with both client authentication methods.
tokens = []
for method in ("client_secret_basic", "client_secret_post"):
    session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method)
    token = session.fetch_token(token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer", token
    assert "refresh_token" not in token, token
    tokens.append(token["access_token"])

# requests-oauthlib's backend application flow (Basic auth).
oauthlib_session = RequestsOAuth2Session(client=BackendApplicationClient(client_id=client_id))
token = oauthlib_session.fetch_token(
    token_url=token_url, client_id=client_id, client_secret=client_secret, include_client_id=False
)
tokens.append(token["access_token"])

# A wrong secret: authlib raises the OAuth error invalid_client.
try:
    OAuth2Session(client_id, client_secret[:-1] + ("A" if client_secret[-1] != "A" else "B")).fetch_token(
        token_url, grant_type="client_credentials"
    )
    raise AssertionError("a wrong secret was accepted")
except Exception as error:  # authlib's OAuthError
    assert "invalid_client" in str(error), error

jwks_url = metadata["jwks_uri"]
jwks = requests.get(jwks_url, timeout=10).json()
for key in jwks["keys"]:
    assert "d" not in key and {"kid", "kty", "alg", "use"} <= key.keys(), key

for access_token in tokens:
    # pyjwt: the key from the served JWKS, with typ, iss and aud checked.
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt", header
    signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(access_token)
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=[header["alg"]],
        audience=issuer,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["client_id"] == client_id, claims

    # jwcrypto: the whole key set, claims checked.
    keyset = jwk.JWKSet.from_json(requests.get(jwks_url, timeout=10).text)
    checked = jwcrypto_jwt.JWT(
        jwt=access_token,
        key=keyset,
        check_claims={"iss": issuer, "aud": issuer, "exp": None},
    )
    assert checked.token.jose_header["typ"] == "at+jwt"

    # The token works on the management API.
    answer = requests.get(
        f"{base}/v1/keys", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text

# A tampered token is refused by pyjwt too (the signature no longer matches).
head, body, signature = tokens[0].split(".")
tampered = ".".join([head, body, ("A" if signature[0] != "A" else "B") + signature[1:]])
try:
    jwt.decode(tampered, signing_key.key, algorithms=[header["alg"]], audience=issuer, issuer=issuer)
    raise AssertionError("pyjwt accepted a tampered token")
except jwt.InvalidSignatureError:
    pass

print("OK")
