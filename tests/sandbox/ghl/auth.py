"""Tokens and OAuth 2.0 (apps/oauth.json, docs/oauth/Authorization.md, notes §2).

* Static private-integration tokens (--token TOKEN=LOCATIONID) never expire and carry every scope.
* OAuth clients and authorization codes are created through the control API.  Codes are single-use
  and valid for 10 minutes.  Access tokens live `access_token_lifetime_s` (default 86399).
* Refresh-token rotation: every refresh returns a new refresh token and the used one is dead.
  Reusing it gives the OAuth-standard 400 {"error":"invalid_grant","error_description":...}
  (the shape of node oauth2-server, which the token endpoint's messages follow).
"""

import collections
import random

from . import util
from .util import ApiError, now_ms

CODE_LIFETIME_MS = 600000
DEFAULT_LIFETIME_S = 86399


class Token:
    __slots__ = ("value", "kind", "user_type", "location_id", "company_id", "scopes", "expires_at",
                 "client_id", "user_id")

    def __init__(self, value, kind, user_type, location_id=None, company_id=None, scopes=None,
                 expires_at=None, client_id=None, user_id=None):
        self.value = value
        self.kind = kind                  # "static" | "oauth"
        self.user_type = user_type        # "Location" | "Company"
        self.location_id = location_id
        self.company_id = company_id
        self.scopes = scopes              # None = every scope
        self.expires_at = expires_at      # epoch ms, None = never
        self.client_id = client_id
        self.user_id = user_id

    @property
    def resource(self):
        """The rate-limit resource: the location, or the company for agency tokens."""
        return self.location_id if self.user_type == "Location" else "company:%s" % self.company_id

    def describe(self):
        return {"kind": self.kind, "userType": self.user_type, "locationId": self.location_id,
                "companyId": self.company_id, "scopes": self.scopes, "expiresAt": self.expires_at,
                "clientId": self.client_id}


def oauth_error(error, description, status=400):
    return ApiError(status, description, body={"error": error, "error_description": description})


class Auth:
    def __init__(self, store, seed=0):
        self.store = store
        self.rng = random.Random("%s:tokens" % seed)
        self.tokens = {}      # access token value -> Token (static and OAuth)
        self.refresh = {}     # refresh token value -> grant dict (+ "used")
        self.clients = {}     # client_id -> {client_secret, scopes, appId, versionId}
        self.installs = {}    # (client_id, company_id) -> {approvedLocations, installToFutureLocations}
        self.reset()

    def reset(self):
        """Forget codes, stats and settings; keep clients and issued tokens."""
        self.codes = {}
        self.lifetime_s = DEFAULT_LIFETIME_S
        self.prefix = "sbx_"
        self.stats = collections.Counter()
        self.failures = collections.Counter()

    # --- lookup ------------------------------------------------------------------------------

    def add_static(self, value, location_id=None, company_id=None):
        if location_id:
            loc = self.store.ensure_location(location_id, company_id)
            tok = Token(value, "static", "Location", location_id, loc.company_id)
        else:
            tok = Token(value, "static", "Company", None, company_id)
        self.tokens[value] = tok
        return tok

    def resolve(self, header):
        """Authorization header -> Token, or None for missing / unknown / expired tokens."""
        if not header:
            return None
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None
        tok = self.tokens.get(parts[1].strip())
        if tok is None:
            return None
        if tok.expires_at is not None and now_ms() >= tok.expires_at:
            return None
        return tok

    def _secret(self, kind):
        return "%s%s_%s" % (self.prefix, kind, "".join(self.rng.choices(util.ALNUM, k=40)))

    # --- control -----------------------------------------------------------------------------

    def add_client(self, client_id, client_secret, scopes):
        if not client_id or not client_secret:
            raise ApiError(400, "client_id and client_secret are required")
        if isinstance(scopes, str):
            scopes = scopes.split()
        self.clients[client_id] = {"client_id": client_id, "client_secret": client_secret,
                                   "scopes": list(scopes or []),
                                   "appId": util.new_object_id(self.rng), "versionId": util.new_object_id(self.rng)}
        return self.clients[client_id]

    def add_code(self, body):
        client_id = body.get("client_id")
        if client_id not in self.clients:
            raise ApiError(400, "unknown client_id")
        user_type = body.get("user_type", "Location")
        if user_type not in ("Location", "Company"):
            raise ApiError(400, "user_type must be Location or Company")
        location_id, company_id = body.get("location_id"), body.get("company_id")
        if user_type == "Location" and not location_id:
            raise ApiError(400, "location_id is required for a Location code")
        if user_type == "Company" and not company_id:
            raise ApiError(400, "company_id is required for a Company code")
        if location_id:
            company_id = self.store.ensure_location(location_id, company_id).company_id
        approved = list(body.get("approved_locations") or [])
        for lid in approved:
            self.store.ensure_location(lid, company_id)
        scopes = body.get("scopes", self.clients[client_id]["scopes"])
        if isinstance(scopes, str):
            scopes = scopes.split()
        code = "".join(self.rng.choices(util.HEX, k=40))
        self.codes[code] = {
            "client_id": client_id, "user_type": user_type, "location_id": location_id,
            "company_id": company_id, "scopes": list(scopes), "approved_locations": approved,
            "user_id": body.get("user_id") or util.new_id(self.rng), "redirect_uri": body.get("redirect_uri"),
            "expires": now_ms() + CODE_LIFETIME_MS, "used": False,
        }
        return code

    def expire_all(self, value=None):
        n = 0
        t = now_ms()
        for tok in self.tokens.values():
            if tok.kind == "oauth" and (value is None or tok.value == value):
                tok.expires_at = t
                n += 1
        return n

    # --- POST /oauth/token -------------------------------------------------------------------

    def token_endpoint(self, form):
        grant_type = form.get("grant_type")
        self.stats["total"] += 1
        self.stats[grant_type or "missing"] += 1
        try:
            return self._grant(form, grant_type)
        except ApiError:
            self.failures[grant_type or "missing"] += 1
            raise

    def _grant(self, form, grant_type):
        for name in ("client_id", "client_secret", "grant_type"):
            if not form.get(name):
                raise oauth_error("invalid_request", "Missing parameter: `%s`" % name)
        if grant_type not in ("authorization_code", "refresh_token"):
            raise oauth_error("unsupported_grant_type", "Unsupported grant type: `grant_type` is invalid")
        client = self.clients.get(form["client_id"])
        if client is None or client["client_secret"] != form["client_secret"]:
            raise oauth_error("invalid_client", "Invalid client: client is invalid")
        user_type = form.get("user_type")
        if user_type is not None and user_type not in ("Company", "Location"):
            raise oauth_error("invalid_request", "Invalid parameter: `user_type`")
        if grant_type == "authorization_code":
            code = form.get("code")
            if not code:
                raise oauth_error("invalid_request", "Missing parameter: `code`")
            grant = self.codes.get(code)
            if grant is None or grant["used"] or grant["client_id"] != client["client_id"]:
                raise oauth_error("invalid_grant", "Invalid grant: authorization code is invalid")
            if now_ms() >= grant["expires"]:
                raise oauth_error("invalid_grant", "Invalid grant: authorization code has expired")
            if grant["redirect_uri"] and form.get("redirect_uri") != grant["redirect_uri"]:
                raise oauth_error("invalid_request", "Invalid request: `redirect_uri` is invalid")
            grant["used"] = True
            if grant["user_type"] == "Company":
                self.installs[(client["client_id"], grant["company_id"])] = {
                    "approvedLocations": grant["approved_locations"], "installToFutureLocations": False}
        else:
            rt = form.get("refresh_token")
            if not rt:
                raise oauth_error("invalid_request", "Missing parameter: `refresh_token`")
            grant = self.refresh.get(rt)
            if grant is None or grant["used"] or grant["client_id"] != client["client_id"]:
                raise oauth_error("invalid_grant", "Invalid grant: refresh token is invalid")
            grant["used"] = True
        return self._issue(grant, client)

    def _issue(self, grant, client):
        access = self._secret("at")
        refresh = self._secret("rt")
        tok = Token(access, "oauth", grant["user_type"], grant["location_id"], grant["company_id"],
                    grant["scopes"], now_ms() + self.lifetime_s * 1000, client["client_id"], grant["user_id"])
        self.tokens[access] = tok
        new_grant = {k: v for k, v in grant.items() if k not in ("used", "expires", "redirect_uri")}
        new_grant["used"] = False
        self.refresh[refresh] = new_grant
        body = {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime_s,
                "refresh_token": refresh, "scope": " ".join(grant["scopes"]), "userType": grant["user_type"]}
        if grant["user_type"] == "Location":
            body["locationId"] = grant["location_id"]
            body["companyId"] = grant["company_id"]
        else:
            body["companyId"] = grant["company_id"]
            body["approvedLocations"] = grant["approved_locations"]
            body["installToFutureLocations"] = False
            body["approveAllLocations"] = False
        body["userId"] = grant["user_id"]
        body["isBulkInstallation"] = False
        return body

    # --- POST /oauth/locationToken -----------------------------------------------------------

    def location_token(self, agency, company_id, location_id):
        self.stats["locationToken"] += 1
        if company_id != agency.company_id:
            self.failures["locationToken"] += 1
            raise ApiError(400, "companyId does not match the token")
        install = self.installs.get((agency.client_id, agency.company_id), {})
        if location_id not in install.get("approvedLocations", []):
            self.failures["locationToken"] += 1
            raise ApiError(400, "The app is not installed on location %s" % location_id)
        client = self.clients[agency.client_id]
        access = self._secret("lt")
        self.tokens[access] = Token(access, "oauth", "Location", location_id, company_id, agency.scopes,
                                    now_ms() + self.lifetime_s * 1000, agency.client_id, agency.user_id)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime_s,
                "scope": " ".join(agency.scopes or []), "locationId": location_id, "userId": agency.user_id,
                "appId": client["appId"], "versionId": client["versionId"]}

    def installed_locations(self, agency):
        install = self.installs.get((agency.client_id, agency.company_id), {})
        return install.get("approvedLocations", []), install.get("installToFutureLocations", False)

    def stats_dict(self):
        return {"token_calls": self.stats["total"],
                "by_grant_type": {k: v for k, v in self.stats.items() if k not in ("total", "locationToken")},
                "failures": dict(self.failures),
                "location_token_calls": self.stats["locationToken"],
                "access_token_lifetime_s": self.lifetime_s}
