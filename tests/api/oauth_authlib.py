"""An independent OAuth 2.0 client (authlib) against a running oxbadge.

  oauth_authlib.py register BASE
      Discovers the server (RFC 8414), checks the metadata with authlib's validator, registers a
      confidential client (RFC 7591) at the advertised registration endpoint and checks the
      answer with authlib's client metadata validator. Prints the registration answer as JSON.

  oauth_authlib.py check BASE CLIENT_ID CLIENT_SECRET TOKEN
      As that client, with authlib's OAuth2Session: introspects TOKEN (RFC 7662), revokes it
      (RFC 7009), introspects it again. Prints {"before", "revoke_status", "after"} as JSON.

The test server speaks plain http on 127.0.0.1, so AUTHLIB_INSECURE_TRANSPORT is set: authlib
otherwise insists on https, which is the only thing it is told to overlook.
"""

import json
import os
import sys

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

import requests  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oauth2.rfc7591 import ClientMetadataClaims  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url  # noqa: E402

OB = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"


def discover(base):
    url = get_well_known_url(base, external=True)
    resp = requests.get(url, timeout=30)
    resp.raise_for_status()
    metadata = AuthorizationServerMetadata(resp.json())
    metadata.validate()
    if metadata["issuer"] != base:
        raise SystemExit(f"issuer {metadata['issuer']} is not {base}")
    return metadata


def register(base):
    metadata = discover(base)
    request = {
        "client_name": "authlib wallet",
        "client_uri": "https://wallet.example.org/",
        "logo_uri": "https://wallet.example.org/logo.png",
        "tos_uri": "https://wallet.example.org/tos",
        "policy_uri": "https://wallet.example.org/privacy",
        "software_id": "authlib-wallet",
        "software_version": "1.0.0",
        "redirect_uris": ["https://wallet.example.org/callback"],
        "scope": f"{OB}credential.readonly {OB}profile.readonly offline_access",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "contacts": ["admin@wallet.example.org"],
    }
    resp = requests.post(metadata["registration_endpoint"], json=request, timeout=30)
    if resp.status_code != 201:
        raise SystemExit(f"registration: {resp.status_code} {resp.text}")
    answer = resp.json()
    # authlib's RFC 7591 validator over the metadata the server echoed.
    claims = ClientMetadataClaims(
        {k: v for k, v in answer.items() if k in ClientMetadataClaims.REGISTERED_CLAIMS}, {}
    )
    claims.validate()
    for key, value in request.items():
        if answer.get(key) != value:
            raise SystemExit(f"{key}: sent {value!r}, echoed {answer.get(key)!r}")
    print(json.dumps(answer))


def check(base, client_id, client_secret, token):
    metadata = discover(base)
    session = OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
    )
    before = session.introspect_token(
        metadata["introspection_endpoint"], token=token, token_type_hint="access_token"
    )
    before.raise_for_status()
    revoked = session.revoke_token(
        metadata["revocation_endpoint"], token=token, token_type_hint="access_token"
    )
    after = session.introspect_token(metadata["introspection_endpoint"], token=token)
    after.raise_for_status()
    print(
        json.dumps(
            {
                "before": before.json(),
                "revoke_status": revoked.status_code,
                "after": after.json(),
            }
        )
    )


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "register":
        register(*args)
    elif command == "check":
        check(*args)
    else:
        raise SystemExit(f"unknown command {command}")
