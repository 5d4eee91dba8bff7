"""A plain script with no project code: logs in over REST, switches a user's DND, calls getStates.

Usage: python plain_client.py BASE_URL LOGIN PASSWORD ACCOUNT BRIDGE_SECRET
Prints one JSON line: {"dndBefore": ..., "dndAfter": ..., "states": [...]}.
"""

import hashlib
import json
import sys
import urllib.request
import xmlrpc.client


def sha512(text):
    return hashlib.sha512(text.encode()).hexdigest()


def call(method, url, body=None, token=None):
    headers = {"Content-Type": "application/json", "X-Version": "2"}
    if token:
        headers["authToken"] = token
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method=method)) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def main(base, login, password, account, secret):
    challenge = call("GET", f"{base}/rest/login")
    challenge["secret"] = f"{login}:{sha512(login + challenge['nonce'] + sha512(password))}"
    token = call("POST", f"{base}/rest/login", challenge)["token"]
    config = call("GET", f"{base}/rest/users/{account}/phoneconfig", token=token)
    before = config["doNotDisturb"]
    config["doNotDisturb"] = not before
    call("PUT", f"{base}/rest/users/{account}/phoneconfig", config, token=token)
    after = call("GET", f"{base}/rest/users/{account}/phoneconfig", token=token)["doNotDisturb"]
    uci = f"{login}:{sha512(login + '*' + sha512(password))}"
    proxy = xmlrpc.client.ServerProxy(f"{base}/xml-rpc?de.vertico.starface.auth={uci}")
    states = proxy.TeamsConnectBridge.getStates({"secret": secret, "accounts": [int(account)]})["states"]
    call("DELETE", f"{base}/rest/login", token=token)
    print(json.dumps({"dndBefore": before, "dndAfter": after, "states": states}))


if __name__ == "__main__":
    main(*sys.argv[1:])
