"""Schemathesis hooks for this API, loaded through schemathesis.toml.

Authentication. Every request that needs a token gets the token of the
user scripts/schemathesis.sh registered for the run, from a login made
here; a 401 makes a new login and one retry, since a fuzzed /logout/ ends
the token in use. A request that already carries a token some /login/
answered in this run keeps it: it got it through an OpenAPI link, as in the
stateful phase's register -> log in -> chat / history / balance / log out,
where each user's calls must go with that user's own token (Schemathesis's
own auth settings would replace it). Nothing here depends on the token's
form: it is whatever string /login/ returns, sent alone in Authorization.
"""

import os

import requests
import schemathesis

# Tokens handed out by /login/ responses to this run's requests.
_MINTED: set[str] = set()


@schemathesis.hook
def after_call(context, case, response):
    if case.operation.path != "/login/" or response.status_code != 200:
        return
    try:
        token = response.json()["token"]
    except (ValueError, KeyError, TypeError):
        return  # a malformed 200 is for the response checks to report
    if isinstance(token, str):
        _MINTED.add(token)


@schemathesis.auth(retry_on=[401])
class RunUser:
    def get(self, case, context):
        response = requests.post(
            f"{os.environ['SCHEMATHESIS_BASE_URL']}/login/",
            json={
                "username": os.environ["SCHEMATHESIS_USERNAME"],
                "password": os.environ["SCHEMATHESIS_PASSWORD"],
            },
            timeout=60,
        )
        response.raise_for_status()
        return response.json()["token"]

    def set(self, case, data, context):
        # Operations that take no token (`security: []`) are sent none.
        if case.operation.definition.raw.get("security") == []:
            return
        headers = case.headers if case.headers is not None else {}
        if headers.get("Authorization") in _MINTED:
            return
        headers["Authorization"] = data
        case.headers = headers
