"""authlib (an independent OAuth 2.0 client) drives oxbadge's authorization-code flow.

authlib builds the authorization URL with PKCE S256 and a state of its own; a signed-in browser
session (the cookie the Rust test passes) approves the consent page over plain HTTP; authlib's
fetch_token checks the state of the redirect and exchanges the code with client_secret_basic; its
refresh_token rotates the refresh token; the access token calls the API. Prints one JSON line.
"""

import html
import json
import os
import re
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

base = os.environ["BASE"]
redirect_uri = os.environ["REDIRECT_URI"]
cookie = os.environ["COOKIE"]

client = OAuth2Session(
    os.environ["CLIENT_ID"],
    os.environ["CLIENT_SECRET"],
    scope=os.environ["SCOPE"],
    redirect_uri=redirect_uri,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
verifier = generate_token(64)
url, state = client.create_authorization_url(base + "/oauth/authorize", code_verifier=verifier)
assert "code_challenge_method=S256" in url, url

browser = requests.Session()
browser.headers["Cookie"] = cookie
page = browser.get(url, allow_redirects=False)
assert page.status_code == 200, (page.status_code, page.text[:500])
fields = {
    html.unescape(name): html.unescape(value)
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
}
fields["decision"] = "approve"
answer = browser.post(base + "/oauth/consent", data=fields, allow_redirects=False)
assert answer.status_code == 303, (answer.status_code, answer.text[:500])
location = answer.headers["Location"]
assert location.startswith(redirect_uri), location

# authlib parses the redirect, checks its state, and exchanges the code.
token = client.fetch_token(
    base + "/oauth/token",
    authorization_response=location,
    state=state,
    code_verifier=verifier,
)
api = requests.get(
    base + "/api/v1/issuers", headers={"Authorization": "Bearer " + token["access_token"]}
)
refreshed = client.refresh_token(base + "/oauth/token", refresh_token=token["refresh_token"])
print(json.dumps({
    "token": dict(token),
    "refreshed": dict(refreshed),
    "api_status": api.status_code,
}))
sys.exit(0)
