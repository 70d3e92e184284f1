"""The /_control/ API: test-only endpoints (no auth, JSON in and out, not rate limited or logged)."""

import random

from . import api, associations, businesses, fakedata, opportunities, resources, snapshots, users, workflows
from .store import CONTACT_WRITABLE
from .util import ApiError


class Control:
    def __init__(self, app):
        self.app = app
        self.mutate_calls = 0
        self.table = {
            ("GET", "/_control/health"): self.health,
            ("GET", "/_control/routes"): self.routes,
            ("POST", "/_control/reset"): self.reset,
            ("POST", "/_control/seed"): self.seed,
            ("POST", "/_control/mutate"): self.mutate,
            ("GET", "/_control/changes"): self.changes,
            ("GET", "/_control/state"): self.state,
            ("GET", "/_control/ids"): self.ids,
            ("GET", "/_control/faults"): self.list_faults,
            ("POST", "/_control/faults"): self.add_faults,
            ("DELETE", "/_control/faults"): self.clear_faults,
            ("GET", "/_control/requests"): self.requests,
            ("GET", "/_control/max_window"): self.max_window,
            ("GET", "/_control/config"): self.get_config,
            ("POST", "/_control/config"): self.set_config,
            ("GET", "/_control/tokens"): self.list_tokens,
            ("POST", "/_control/tokens"): self.add_token,
            ("POST", "/_control/oauth/clients"): self.oauth_client,
            ("POST", "/_control/oauth/codes"): self.oauth_code,
            ("POST", "/_control/oauth/config"): self.oauth_config,
            ("POST", "/_control/oauth/expire_all"): self.oauth_expire,
            ("GET", "/_control/oauth/stats"): self.oauth_stats,
        }

    def handle(self, method, path, query, body):
        """-> (status, JSON body).  Errors are {"error": message}."""
        fn = self.table.get((method, path))
        if fn is None:
            known = sorted({p for _, p in self.table})
            return 404, {"error": "no control endpoint %s %s" % (method, path), "endpoints": known}
        if body is not None and not isinstance(body, dict):
            return 400, {"error": "control bodies must be JSON objects"}
        try:
            with self.app.store.lock:
                self.app.store.tick()
                return fn({k: v[-1] for k, v in query.items()}, body or {})
        except ApiError as e:
            out = {"error": e.message if isinstance(e.message, str) else "; ".join(e.message)}
            out.update(e.extra)
            return e.status, out
        except (TypeError, ValueError, KeyError) as e:
            return 400, {"error": "bad control request: %s: %s" % (type(e).__name__, e)}

    # --- helpers -----------------------------------------------------------------------------

    def _location(self, location_id):
        store = self.app.store
        if not location_id:
            return store.locations[self.app.default_location]
        if location_id not in store.locations:
            raise ApiError(404, "unknown location %s (register a token for it first)" % location_id)
        return store.locations[location_id]

    # --- endpoints ---------------------------------------------------------------------------

    def health(self, q, b):
        return 200, {"ok": True, "url": self.app.base_url, "defaultLocation": self.app.default_location,
                     "locations": sorted(self.app.store.locations)}

    def routes(self, q, b):
        return 200, {"routes": [r.describe() for r in self.app.router.routes]}

    def reset(self, q, b):
        self.app.reset()
        return 200, {"ok": True}

    def seed(self, q, b):
        loc = self._location(b.get("location"))
        n = int(b.get("contacts", 0))
        if n < 0:
            raise ApiError(400, "contacts must be >= 0")
        ids, changes = self.app.store.seed_location(
            loc, n, int(b.get("tasks_per_contact", 0)), int(b.get("notes_per_contact", 0)),
            seed=b.get("seed"), log=bool(b.get("log", True)), source="control", now=bool(b.get("now", False)))
        out = {"location": loc.id, "count": len(ids), "changes": len(changes)}
        if n <= 1000:
            out["contact_ids"] = ids
        self._seed_others(loc, b, out)
        return 200, out

    def _seed_others(self, loc, b, out):
        """opportunities:N, users:N, businesses:N, associations:N on top of the reference records (resources.py)."""
        store = self.app.store
        rng = random.Random("%s:%s:seed-others:%s" % (store.seed, loc.id, b.get("seed")))
        logged = bool(b.get("log", True))
        resources.ext(store, loc)
        n = int(b.get("opportunities", 0))
        if n:
            ids, changes = opportunities.seed(store, loc, n, rng, "control", logged)
            if n <= 1000:
                out["opportunity_ids"] = ids
            out["changes"] += len(changes)
        for kind, mod, key in (("user", users, "users"), ("business", businesses, "businesses"),
                               ("association", associations, "associations")):
            ids = []
            for _ in range(int(b.get(key, 0))):
                change = mod.mutate(store, loc, {"op": "create", "kind": kind}, rng, "control")
                ids.append(change[0]["id"])
            if ids:
                out["%s_ids" % kind] = ids
                out["changes"] += len(ids)

    def mutate(self, q, b):
        loc = self._location(b.get("location"))
        store = self.app.store
        self.mutate_calls += 1
        seed = b.get("seed", "%s:mutate:%d" % (store.seed, self.mutate_calls))
        rng = random.Random(str(seed))
        out = []
        if "random" in b:
            kinds = b.get("kinds")
            known = {"contact", "task", "note", "opportunity"}
            if kinds is not None and (not isinstance(kinds, list) or set(kinds) - known):
                raise ApiError(400, "kinds must be a subset of [contact, task, note, opportunity]")
            # opportunities only when asked for, so that the default sequence stays what it was
            others = None if kinds is None else [k for k in kinds if k != "opportunity"]
            for _ in range(int(b["random"])):
                if kinds is not None and "opportunity" in kinds and (not others or rng.random() < 0.5):
                    out.extend(opportunities.random_mutation(store, loc, rng, "control"))
                else:
                    out.extend(store.random_mutation(loc, rng, others, source="control"))
            return 200, {"changes": out}
        ops = b.get("ops")
        if not isinstance(ops, list):
            raise ApiError(400, "give ops:[...] or random:N")
        for i, op in enumerate(ops):
            try:
                out.extend(self._apply(loc, op, rng))
            except ApiError as e:
                msg = e.message if isinstance(e.message, str) else "; ".join(e.message)
                raise ApiError(400, "ops[%d]: %s" % (i, msg), {"changes": out})
        return 200, {"changes": out}

    def _contact(self, loc, cid, rng):
        store = self.app.store
        if cid is None:
            entry = store._random_live(loc, rng)
            if entry is None:
                raise ApiError(400, "the location has no live contact")
            return entry
        entry = loc.live(cid)
        if entry is None:
            raise ApiError(404, "no live contact %s in %s" % (cid, loc.id))
        return entry

    def _child(self, loc, kind, rid, contact_id, rng):
        """(contact entry, child id) of a task or note, random when rid is None."""
        store = self.app.store
        attr = "tasks" if kind == "task" else "notes"
        if rid is None:
            entry = self._contact(loc, contact_id, rng) if contact_id else store._random_with(loc, rng, attr)
            if entry is None or not getattr(entry, attr):
                raise ApiError(400, "no %s to pick from" % kind)
            return entry, rng.choice(list(getattr(entry, attr)))
        owner = (store.task_owner if kind == "task" else store.note_owner).get(rid)
        if owner is None or owner[0] != loc.id:
            raise ApiError(404, "no %s %s in %s" % (kind, rid, loc.id))
        return self._contact(loc, owner[1], rng), rid

    @staticmethod
    def _contact_fields(fields):
        bad = [k for k in fields if k not in CONTACT_WRITABLE]
        if bad:
            raise ApiError(400, "not writable contact fields: %s" % ", ".join(bad))
        dto = {k: v for k, v in fields.items() if k in api.CREATE_FIELDS}
        patch = api.contact_patch(dto, api.CREATE_FIELDS, nullable=set(dto))
        for k, v in fields.items():
            if k not in dto:
                patch[k] = api.normalize_tags(v, k) if k == "tags" else v
        return patch

    OTHER_KINDS = {"opportunity": opportunities.mutate, "pipeline": opportunities.mutate_pipeline,
                   "lost_reason": opportunities.mutate_lost_reason,
                   "user": users.mutate, "business": businesses.mutate, "workflow": workflows.mutate_workflow,
                   "campaign": workflows.mutate_campaign, "snapshot_push": snapshots.mutate_push,
                   "association": associations.mutate, "relation": associations.mutate_relation}

    def _apply(self, loc, op, rng):
        if not isinstance(op, dict):
            raise ApiError(400, "each op must be an object")
        store = self.app.store
        kind, verb, fields = op.get("kind"), op.get("op"), op.get("fields")
        if kind in self.OTHER_KINDS:
            if fields is not None and not isinstance(fields, dict):
                raise ApiError(400, "fields must be an object")
            return self.OTHER_KINDS[kind](store, loc, op, rng, "control")
        if kind not in ("contact", "task", "note") or verb not in ("create", "update", "delete", "complete"):
            raise ApiError(400, "op needs kind contact|task|note|%s and its op" % "|".join(self.OTHER_KINDS))
        if fields is not None and not isinstance(fields, dict):
            raise ApiError(400, "fields must be an object")
        meta = loc.meta
        if kind == "contact":
            if verb == "create":
                loc.serial += 1
                base = fakedata.contact_fields(rng, meta, loc.serial + 7000000, loc.email_idx)
                if base.get("phone") in loc.phone_idx:
                    del base["phone"]
                base.update(self._contact_fields(fields or {}))
                return store.create_contact(loc, base, "control")[1]
            entry = self._contact(loc, op.get("id"), rng)
            if verb == "delete":
                return store.delete_contact(loc, entry, "control")
            if fields:
                patch = self._contact_fields(fields)
            else:
                patch = fakedata.contact_update(rng, meta, entry.rec, loc.email_idx)
                if patch.get("phone") and loc.phone_idx.get(patch["phone"], entry.rec["id"]) != entry.rec["id"]:
                    del patch["phone"]
            return store.update_contact(loc, entry, patch, "control")
        if verb == "create":
            entry = self._contact(loc, op.get("contactId"), rng)
            if kind == "task":
                f = fakedata.task_fields(rng, meta, fakedata.SEED_END_MS)
                f.update(api.task_patch(fields or {}, ()))
                return store.create_task(loc, entry, f, "control")[1]
            f = fakedata.note_fields(rng, meta)
            f.update(api.note_patch(fields or {}, False))
            return store.create_note(loc, entry, f, "control")[1]
        entry, rid = self._child(loc, kind, op.get("id"), op.get("contactId"), rng)
        if kind == "task":
            if verb == "delete":
                return store.delete_task(loc, entry, rid, "control")
            if verb == "complete":
                patch = {"completed": True}
            elif fields:
                patch = api.task_patch(fields, ())
            else:
                patch = fakedata.task_update(rng, meta, entry.tasks[rid])
            return store.update_task(loc, entry, rid, patch, "control")[1]
        if verb == "delete":
            return store.delete_note(loc, entry, rid, "control")
        if verb == "complete":
            raise ApiError(400, "notes cannot be completed")
        patch = api.note_patch(fields, False) if fields else fakedata.note_update(rng, meta, entry.notes[rid])
        return store.update_note(loc, entry, rid, patch, "control")[1]

    def changes(self, q, b):
        since = int(q.get("since", 0))
        limit = int(q["limit"]) if q.get("limit") else None
        out = self.app.store.changes_since(since)
        if q.get("location"):
            out = [c for c in out if c["location"] == q["location"]]
        if q.get("kind"):
            out = [c for c in out if c["kind"] == q["kind"]]
        if limit:
            out = out[:limit]
        return 200, {"changes": out, "last_seq": self.app.store.change_seq}

    def state(self, q, b):
        loc = self._location(q.get("location"))
        summary = q.get("summary") in ("1", "true")
        if q.get("contact") and q["contact"] not in loc.contacts:
            raise ApiError(404, "no contact %s in %s" % (q["contact"], loc.id))
        out = self.app.store.dump(loc, q.get("contact"), summary)
        out["records"] = self._records(loc, summary)
        return 200, out

    def ids(self, q, b):
        """A random sample of distinct live contacts, tasks or notes, deterministic for a `seed`:
        contacts as ids, tasks and notes as {id, contactId}, without dumping the whole state."""
        loc = self._location(q.get("location"))
        kind = q.get("kind", "contact")
        if kind not in ("contact", "task", "note"):
            raise ApiError(400, "kind must be contact, task or note")
        limit = int(q.get("limit", 100))
        if limit < 0:
            raise ApiError(400, "limit must be >= 0")
        rng = random.Random("%s:ids:%s" % (self.app.store.seed, q.get("seed", "")))
        live = [cid for cid in loc.order if not loc.contacts[cid].deleted]
        rng.shuffle(live)
        out = []
        for cid in live:
            if len(out) >= limit:
                break
            if kind == "contact":
                out.append(cid)
                continue
            children = sorted(getattr(loc.contacts[cid], "tasks" if kind == "task" else "notes"))
            if children:
                out.append({"id": rng.choice(children), "contactId": cid})
        return 200, {"location": loc.id, "kind": kind, "ids": out}

    def _records(self, loc, summary):
        """The other categories' records (enrolments stay under "campaigns"/"workflows")."""
        store = self.app.store
        ext = resources.ext(store, loc)
        comp = resources.company(store, loc.company_id)
        out = {kind: [e.rec for e in ext[kind].values()] for kind in resources.LIST_ORDER}
        out["users"] = [dict(e.rec, queuedDelete=e.due is not None) for e in comp["users"].values()]
        out["snapshots"] = comp["snapshots"]
        if summary:
            return {k: len(v) for k, v in out.items()}
        return out

    def list_faults(self, q, b):
        return 200, {"faults": self.app.faults.list()}

    def add_faults(self, q, b):
        return 200, {"ids": self.app.faults.add(b.get("faults"))}

    def clear_faults(self, q, b):
        self.app.faults.clear()
        return 200, {"ok": True}

    def requests(self, q, b):
        out = self.app.requests.since(int(q.get("since", 0)))
        if q.get("location"):
            out = [r for r in out if r["location"] == q["location"]]
        if q.get("operation"):
            out = [r for r in out if r["operation"] == q["operation"]]
        if q.get("limit"):
            out = out[: int(q["limit"])]
        return 200, {"requests": out, "last_seq": self.app.requests.seq}

    def max_window(self, q, b):
        window_ms = int(q.get("window_ms", 10000))
        exclude = q.get("exclude_429") in ("1", "true")
        n, start = self.app.requests.max_window(q.get("location"), window_ms, exclude)
        return 200, {"location": q.get("location"), "window_ms": window_ms, "max": n, "window_start": start}

    def get_config(self, q, b):
        return 200, dict(self.app.config)

    def set_config(self, q, b):
        known = {"rate_limit", "rate_window_ms", "daily_limit", "deleted_status", "search_lag_ms",
                 "allow_duplicates", "strict_bodies", "quiet", "opportunities_default_status",
                 "opportunities_allow_duplicates", "user_delete_delay_ms", "user_deleted_visible_ms"}
        bad = set(b) - known
        if bad:
            raise ApiError(400, "unknown config keys: %s (known: %s)"
                           % (", ".join(sorted(bad)), ", ".join(sorted(known))))
        if "opportunities_default_status" in b and b["opportunities_default_status"] not in opportunities.STATUS_ENUM:
            raise ApiError(400, "opportunities_default_status must be one of %s" % ", ".join(opportunities.STATUS_ENUM))
        for k, v in b.items():
            if k == "opportunities_default_status":
                continue
            flag = k in ("allow_duplicates", "strict_bodies", "quiet", "opportunities_allow_duplicates")
            if (flag and not isinstance(v, bool)) or (not flag and (isinstance(v, bool) or not isinstance(v, int)
                                                                    or v < 0)):
                raise ApiError(400, "%s must be %s" % (k, "a boolean" if flag else "a non-negative integer"))
        if "deleted_status" in b and not 400 <= b["deleted_status"] <= 499:
            raise ApiError(400, "deleted_status must be a 4xx status")
        if b.get("rate_window_ms") == 0:
            raise ApiError(400, "rate_window_ms must be > 0")
        self.app.configure(b)
        return 200, dict(self.app.config)

    def list_tokens(self, q, b):
        return 200, {"tokens": {t: tok.describe() for t, tok in self.app.auth.tokens.items() if tok.kind == "static"}}

    def add_token(self, q, b):
        if not b.get("token") or not (b.get("location_id") or b.get("company_id")):
            raise ApiError(400, "token and location_id (or company_id for an agency token) are required")
        tok = self.app.auth.add_static(b["token"], b.get("location_id"), b.get("company_id"))
        return 200, tok.describe()

    def oauth_client(self, q, b):
        c = self.app.auth.add_client(b.get("client_id"), b.get("client_secret"), b.get("scopes"))
        return 200, c

    def oauth_code(self, q, b):
        return 200, {"code": self.app.auth.add_code(b)}

    def oauth_config(self, q, b):
        auth = self.app.auth
        if "access_token_lifetime_s" in b:
            auth.lifetime_s = int(b["access_token_lifetime_s"])
        if "token_prefix" in b:
            auth.prefix = str(b["token_prefix"])
        return 200, {"access_token_lifetime_s": auth.lifetime_s, "token_prefix": auth.prefix}

    def oauth_expire(self, q, b):
        return 200, {"expired": self.app.auth.expire_all(b.get("access_token"))}

    def oauth_stats(self, q, b):
        return 200, self.app.auth.stats_dict()
