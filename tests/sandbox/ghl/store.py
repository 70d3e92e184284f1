"""All sandbox state and every state-changing operation.

Records are treated as immutable: a write builds a new dict and swaps it in.  The change log can
therefore keep references to records instead of copies (lists inside records are never mutated
in place either).  Every method here must be called with `Store.lock` held.
"""

import bisect
import gc
import random
import threading

from . import fakedata, util
from .util import ApiError, iso, now_ms

DEFAULT_COMPANY = "sbxCompany0000000001"
MAX_LOG = 500_000           # change-log entries kept (the oldest half is dropped beyond)

# Top-level contact fields that the public API and the control API may set.
CONTACT_WRITABLE = {
    "firstName", "lastName", "name", "email", "phone", "companyName", "address1", "city", "state",
    "postalCode", "country", "website", "timezone", "dnd", "dndSettings", "inboundDndSettings", "tags",
    "customFields", "source", "dateOfBirth", "assignedTo", "type", "gender", "businessId", "followers",
    "attributionSource", "lastAttributionSource", "additionalEmails", "additionalPhones",
}
TASK_WRITABLE = ("title", "body", "assignedTo", "dueDate", "completed")
NOTE_WRITABLE = ("body", "userId", "title", "color", "pinned")


class View:
    """What search sees of a contact: the record and its two timestamps in epoch ms."""
    __slots__ = ("rec", "added_ms", "updated_ms")

    def __init__(self, rec, added_ms, updated_ms):
        self.rec, self.added_ms, self.updated_ms = rec, added_ms, updated_ms


class ContactEntry:
    __slots__ = ("rec", "added_ms", "updated_ms", "deleted", "tasks", "notes", "events",
                 "campaigns", "workflows", "history", "history_base")

    def __init__(self, rec, added_ms, updated_ms):
        self.rec = rec
        self.added_ms = added_ms
        self.updated_ms = updated_ms
        self.deleted = False
        self.tasks = {}        # task id -> TaskSchema dict, creation order
        self.notes = {}        # note id -> GetNoteSchema dict, creation order
        self.events = []       # GetEventSchema dicts (static)
        self.campaigns = {}    # campaign id -> enrolment
        self.workflows = {}    # workflow id -> enrolment
        self.history = None    # [(t_ms, View|None)] while a search lag is configured
        self.history_base = None


class Location:
    def __init__(self, location_id, company_id, meta):
        self.id = location_id
        self.company_id = company_id
        self.meta = meta
        self.clear()

    def clear(self):
        self.contacts = {}         # id -> ContactEntry (deleted ones too: soft delete)
        self.index = []            # sorted [(added_ms, id)] of live contacts
        self.updated_index = []    # sorted [(updated_ms, id)] of live contacts (dateUpdated range filters)
        self.order = []            # ids in creation order (deleted ones too): deterministic random picks
        self.email_idx = {}        # lower-case email -> id (live contacts)
        self.phone_idx = {}        # phone -> id (live contacts)
        self.business_idx = {}     # businessId -> set(ids) (live contacts)
        self.version = 0           # bumped on every contact change (search cache key)
        self.search_cache = {}
        self.serial = 0
        self.ext = {}              # the other categories' records (resources.py), built on first use

    def live(self, contact_id):
        e = self.contacts.get(contact_id)
        return e if e is not None and not e.deleted else None


def normalize_phone(value):
    if not isinstance(value, str):
        return value
    s = "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if not s:
        return value.strip()
    if s.startswith("+"):
        return "+" + s[1:].replace("+", "")
    if len(s) == 10:
        return "+1" + s
    if len(s) == 11 and s.startswith("1"):
        return "+" + s
    return s


def derive_contact(rec):
    """Keep the derived name / lower-case fields consistent with the source fields."""
    first, last = rec.get("firstName"), rec.get("lastName")
    for src, dst in (("firstName", "firstNameLowerCase"), ("lastName", "lastNameLowerCase"),
                     ("email", "emailLowerCase")):
        if rec.get(src):
            rec[dst] = rec[src].lower()
        else:
            rec.pop(dst, None)
    full = " ".join(x for x in (first, last) if x)
    if full:
        rec["name"] = full
        rec["fullNameLowerCase"] = full.lower()
    else:
        rec.pop("fullNameLowerCase", None)
        if not rec.get("name"):
            rec.pop("name", None)


def merge_custom_fields(current, updates):
    """Merge [{id, value}] by id; a None or "" value removes the field."""
    out = {cf["id"]: cf for cf in current}
    for cf in updates:
        if cf.get("value") is None or cf.get("value") == "":
            out.pop(cf["id"], None)
        else:
            out[cf["id"]] = {"id": cf["id"], "value": cf["value"]}
    return list(out.values())


class Store:
    def __init__(self, seed=0, config=None):
        self.lock = threading.RLock()
        self.seed = seed
        self.config = config if config is not None else {}
        self.locations = {}
        self.change_seq = 0
        self.changes = []
        self.tickers = []          # fn(store) run before every request: time-driven changes (user deletes)
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------

    def reset(self):
        self.rng = random.Random("%s:runtime" % self.seed)
        for loc in self.locations.values():
            loc.clear()
        self.task_owner = {}       # task id -> (location id, contact id)
        self.note_owner = {}       # note id -> (location id, contact id)
        self.all_ids = set()       # every id ever issued (collision guard)
        self.changes = []          # seq numbers keep increasing across resets
        self.seed_calls = 0
        self.companies = {}        # company id -> users and snapshots (resources.py)

    def tick(self):
        """Apply the changes that became due with time (called before every request)."""
        for fn in self.tickers:
            fn(self)

    def ensure_location(self, location_id, company_id=None):
        loc = self.locations.get(location_id)
        if loc is None:
            meta = fakedata.location_meta(random.Random("%s:%s:meta" % (self.seed, location_id)), location_id)
            loc = Location(location_id, company_id or DEFAULT_COMPANY, meta)
            self.locations[location_id] = loc
        elif company_id and loc.company_id == DEFAULT_COMPANY:
            loc.company_id = company_id
        return loc

    def _new_id(self, rng=None):
        rng = rng or self.rng
        while True:
            i = util.new_id(rng)
            if i not in self.all_ids:
                self.all_ids.add(i)
                return i

    # --- change log --------------------------------------------------------------------------

    def _log(self, out, loc, kind, op, rid, fields, record, source, t_ms, contact_id=None):
        self.change_seq += 1
        entry = {"seq": self.change_seq, "time": t_ms / 1000.0, "location": loc.id, "kind": kind,
                 "op": op, "id": rid, "fields": fields, "record": record, "source": source}
        if contact_id is not None:
            entry["contactId"] = contact_id
        self.changes.append(entry)
        if len(self.changes) > MAX_LOG:
            del self.changes[: MAX_LOG // 2]
        out.append(entry)

    def changes_since(self, since, limit=None):
        if not self.changes:
            return []
        start = max(0, since - self.changes[0]["seq"] + 1)
        out = self.changes[start:]
        return out[:limit] if limit else out

    # --- search-lag history ------------------------------------------------------------------

    def _lag(self):
        return self.config.get("search_lag_ms", 0) > 0

    @staticmethod
    def view(entry):
        return None if entry.deleted else View(entry.rec, entry.added_ms, entry.updated_ms)

    def _history(self, entry, prev_view, t):
        if entry.history is None:
            entry.history = []
            entry.history_base = prev_view
        entry.history.append((t, self.view(entry)))
        cutoff = t - 300000
        while entry.history and entry.history[0][0] <= cutoff:
            entry.history_base = entry.history.pop(0)[1]

    @staticmethod
    def visible_at(entry, t):
        """The state search sees at time t (None = invisible)."""
        if entry.history is None:
            return Store.view(entry)
        state = entry.history_base
        for ht, v in entry.history:
            if ht > t:
                break
            state = v
        return state

    # --- indexes -----------------------------------------------------------------------------

    @staticmethod
    def _sorted_remove(index, key):
        i = bisect.bisect_left(index, key)
        if i < len(index) and index[i] == key:
            del index[i]

    def _index_add(self, loc, entry):
        rec = entry.rec
        bisect.insort(loc.index, (entry.added_ms, rec["id"]))
        bisect.insort(loc.updated_index, (entry.updated_ms, rec["id"]))
        self._secondary(loc, rec, None)

    def _index_remove(self, loc, entry):
        self._sorted_remove(loc.index, (entry.added_ms, entry.rec["id"]))
        self._sorted_remove(loc.updated_index, (entry.updated_ms, entry.rec["id"]))
        self._secondary(loc, None, entry.rec)

    def _set_updated(self, loc, entry, rec, t):
        """Swap in a new record version with dateUpdated t (epoch ms), keeping updated_index sorted."""
        self._sorted_remove(loc.updated_index, (entry.updated_ms, rec["id"]))
        entry.rec, entry.updated_ms = rec, t
        bisect.insort(loc.updated_index, (t, rec["id"]))

    @staticmethod
    def _secondary(loc, new, old):
        """Update email / phone / business indexes from record `old` to record `new`."""
        for field, idx in (("emailLowerCase", loc.email_idx), ("phone", loc.phone_idx)):
            ov = old.get(field) if old else None
            nv = new.get(field) if new else None
            if ov != nv:
                if ov and idx.get(ov) == old["id"]:
                    del idx[ov]
                if nv:
                    idx.setdefault(nv, new["id"])
        ob = old.get("businessId") if old else None
        nb = new.get("businessId") if new else None
        if ob != nb or (old is None) != (new is None):
            if ob:
                s = loc.business_idx.get(ob)
                if s:
                    s.discard(old["id"])
            if nb:
                loc.business_idx.setdefault(nb, set()).add(new["id"])

    def check_duplicate(self, loc, rec, self_id=None, changed=None):
        """400 like the live API when email or phone is already used by another live contact."""
        if self.config.get("allow_duplicates"):
            return
        for field, idx, name in (("emailLowerCase", loc.email_idx, "email"), ("phone", loc.phone_idx, "phone")):
            if changed is not None and field not in changed:
                continue
            v = rec.get(field)
            other = idx.get(v) if v else None
            if other and other != self_id:
                raise ApiError(400, "This location does not allow duplicated contacts.",
                               {"meta": {"contactName": loc.contacts[other].rec.get("name", ""),
                                         "contactId": other, "matchingField": name}})

    def find_duplicate(self, loc, email=None, phone=None):
        if email:
            cid = loc.email_idx.get(email.lower())
            if cid:
                return loc.contacts[cid]
        if phone:
            cid = loc.phone_idx.get(normalize_phone(phone))
            if cid:
                return loc.contacts[cid]
        return None

    def _bump(self, entry):
        t = now_ms()
        return t if t > entry.updated_ms else entry.updated_ms + 1

    # --- contacts ----------------------------------------------------------------------------

    def create_contact(self, loc, fields, source, check_dup=True):
        """`fields` are normalized values (None values dropped).  Returns (entry, changes)."""
        cid = self._new_id()
        t = now_ms()
        rec = {"id": cid, "locationId": loc.id}
        rec.update({k: v for k, v in fields.items() if v is not None})
        if isinstance(rec.get("customFields"), list):
            rec["customFields"] = merge_custom_fields([], rec["customFields"])
        rec.setdefault("type", "lead")
        rec.setdefault("dnd", False)
        for k in ("tags", "customFields", "followers", "additionalEmails"):
            rec.setdefault(k, [])
        if rec.get("name") and not rec.get("firstName") and not rec.get("lastName"):
            parts = rec["name"].split(None, 1)
            rec["firstName"] = parts[0]
            if len(parts) > 1:
                rec["lastName"] = parts[1]
        derive_contact(rec)
        if check_dup:
            self.check_duplicate(loc, rec)
        rec["dateAdded"] = rec["dateUpdated"] = iso(t)
        entry = ContactEntry(rec, t, t)
        loc.contacts[cid] = entry
        loc.order.append(cid)
        self._index_add(loc, entry)
        loc.version += 1
        if self._lag():
            self._history(entry, None, t)
        out = []
        self._log(out, loc, "contact", "created", cid, sorted(rec), rec, source, t)
        return entry, out

    def update_contact(self, loc, entry, patch, source):
        """Apply `patch` (field -> value, None removes).  No-op writes change and log nothing."""
        old = entry.rec
        new = dict(old)
        for k, v in patch.items():
            if k == "customFields" and v is not None:
                v = merge_custom_fields(old.get("customFields", []), v)
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        if "name" in patch and "firstName" not in patch and "lastName" not in patch and patch["name"]:
            parts = patch["name"].split(None, 1)
            new["firstName"] = parts[0]
            if len(parts) > 1:
                new["lastName"] = parts[1]
            else:
                new.pop("lastName", None)
        derive_contact(new)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not changed:
            return []
        self.check_duplicate(loc, new, self_id=old["id"], changed=changed)
        prev = self.view(entry) if self._lag() else None
        t = self._bump(entry)
        new["dateUpdated"] = iso(t)
        changed.append("dateUpdated")
        self._set_updated(loc, entry, new, t)
        self._secondary(loc, new, old)
        loc.version += 1
        if self._lag():
            self._history(entry, prev, t)
        out = []
        self._log(out, loc, "contact", "updated", old["id"], changed, new, source, t)
        return out

    def delete_contact(self, loc, entry, source):
        prev = self.view(entry) if self._lag() else None
        self._index_remove(loc, entry)
        entry.deleted = True
        loc.version += 1
        t = now_ms()
        if self._lag():
            self._history(entry, prev, t)
        out = []
        self._log(out, loc, "contact", "deleted", entry.rec["id"], [], entry.rec, source, t)
        return out

    def _touch(self, out, loc, entry, source):
        """Bump a contact's dateUpdated because one of its tasks or notes changed."""
        prev = self.view(entry) if self._lag() else None
        t = self._bump(entry)
        new = dict(entry.rec)
        new["dateUpdated"] = iso(t)
        self._set_updated(loc, entry, new, t)
        loc.version += 1
        if self._lag():
            self._history(entry, prev, t)
        self._log(out, loc, "contact", "updated", new["id"], ["dateUpdated"], new, source, t)

    # --- tasks -------------------------------------------------------------------------------

    @staticmethod
    def _task_record(tid, contact_id, f):
        rec = {"id": tid, "title": f.get("title", "")}
        for k in ("body", "assignedTo", "dueDate"):
            if f.get(k) is not None:
                rec[k] = f[k]
        rec["completed"] = bool(f.get("completed", False))
        rec["contactId"] = contact_id
        return rec

    def create_task(self, loc, entry, fields, source):
        tid = self._new_id()
        rec = self._task_record(tid, entry.rec["id"], fields)
        entry.tasks[tid] = rec
        self.task_owner[tid] = (loc.id, entry.rec["id"])
        out = []
        self._log(out, loc, "task", "created", tid, sorted(rec), rec, source, now_ms(), entry.rec["id"])
        self._touch(out, loc, entry, source)
        return rec, out

    def update_task(self, loc, entry, tid, patch, source):
        old = entry.tasks[tid]
        new = dict(old)
        for k, v in patch.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not changed:
            return old, []
        ordered = self._task_record(tid, old["contactId"], new)
        entry.tasks[tid] = ordered
        out = []
        self._log(out, loc, "task", "updated", tid, changed, ordered, source, now_ms(), old["contactId"])
        self._touch(out, loc, entry, source)
        return ordered, out

    def delete_task(self, loc, entry, tid, source):
        rec = entry.tasks.pop(tid)
        self.task_owner.pop(tid, None)
        out = []
        self._log(out, loc, "task", "deleted", tid, [], rec, source, now_ms(), rec["contactId"])
        self._touch(out, loc, entry, source)
        return out

    # --- notes -------------------------------------------------------------------------------

    @staticmethod
    def _note_record(nid, contact_id, date_added, f):
        rec = {"id": nid, "body": f.get("body", "")}
        if f.get("userId") is not None:
            rec["userId"] = f["userId"]
        rec["dateAdded"] = date_added
        rec["contactId"] = contact_id
        for k in ("title", "color"):
            if f.get(k) is not None:
                rec[k] = f[k]
        rec["pinned"] = bool(f.get("pinned", False))
        return rec

    def create_note(self, loc, entry, fields, source):
        nid = self._new_id()
        t = now_ms()
        rec = self._note_record(nid, entry.rec["id"], iso(t), fields)
        entry.notes[nid] = rec
        self.note_owner[nid] = (loc.id, entry.rec["id"])
        out = []
        self._log(out, loc, "note", "created", nid, sorted(rec), rec, source, t, entry.rec["id"])
        self._touch(out, loc, entry, source)
        return rec, out

    def update_note(self, loc, entry, nid, patch, source):
        old = entry.notes[nid]
        new = dict(old)
        for k, v in patch.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not changed:
            return old, []
        ordered = self._note_record(nid, old["contactId"], old["dateAdded"], new)
        entry.notes[nid] = ordered
        out = []
        self._log(out, loc, "note", "updated", nid, changed, ordered, source, now_ms(), old["contactId"])
        self._touch(out, loc, entry, source)
        return ordered, out

    def delete_note(self, loc, entry, nid, source):
        rec = entry.notes.pop(nid)
        self.note_owner.pop(nid, None)
        out = []
        self._log(out, loc, "note", "deleted", nid, [], rec, source, now_ms(), rec["contactId"])
        self._touch(out, loc, entry, source)
        return out

    # --- campaign / workflow enrolments (they do not change the contact record) --------------

    def add_campaign(self, loc, entry, campaign_id, source):
        if campaign_id in entry.campaigns:
            return []
        t = now_ms()
        rec = {"campaignId": campaign_id, "contactId": entry.rec["id"], "status": "active", "dateAdded": iso(t)}
        entry.campaigns[campaign_id] = rec
        out = []
        self._log(out, loc, "campaign", "created", campaign_id, sorted(rec), rec, source, t, entry.rec["id"])
        return out

    def remove_campaign(self, loc, entry, campaign_id, source):
        rec = entry.campaigns.pop(campaign_id, None)
        if rec is None:
            return []
        out = []
        self._log(out, loc, "campaign", "deleted", campaign_id, [], rec, source, now_ms(), entry.rec["id"])
        return out

    def add_workflow(self, loc, entry, workflow_id, event_start_time, source):
        t = now_ms()
        rec = {"workflowId": workflow_id, "contactId": entry.rec["id"], "dateAdded": iso(t)}
        if event_start_time:
            rec["eventStartTime"] = event_start_time
        old = entry.workflows.get(workflow_id)
        if old is not None and old.get("eventStartTime") == rec.get("eventStartTime"):
            return []
        entry.workflows[workflow_id] = rec
        out = []
        self._log(out, loc, "workflow", "created" if old is None else "updated", workflow_id,
                  sorted(rec), rec, source, t, entry.rec["id"])
        return out

    def remove_workflow(self, loc, entry, workflow_id, source):
        rec = entry.workflows.pop(workflow_id, None)
        if rec is None:
            return []
        out = []
        self._log(out, loc, "workflow", "deleted", workflow_id, [], rec, source, now_ms(), entry.rec["id"])
        return out

    # --- seeding -----------------------------------------------------------------------------

    def seed_location(self, loc, n, tasks_per_contact=0, notes_per_contact=0, seed=None, log=False, source="seed",
                      now=False):
        """Create n contacts with K tasks and K notes each, deterministic from `seed`.

        Seeded timestamps lie in 2024-2025 (fixed, not wall clock), or are the current time when
        `now` is true (for records that must look newly created to a poller).  Returns (ids, changes)."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of new dicts would trigger long, useless collections
        try:
            return self._seed(loc, n, tasks_per_contact, notes_per_contact, seed, log, source, now)
        finally:
            if gc_was_enabled:
                gc.enable()
            gc.freeze()  # keep the seeded records out of future collections

    def _seed(self, loc, n, tasks_per_contact, notes_per_contact, seed, log, source, now):
        if seed is None:
            seed = "%s:%d" % (self.seed, self.seed_calls)
        self.seed_calls += 1
        rng = random.Random("%s:%s:contacts" % (seed, loc.id))
        meta = loc.meta
        ids = []
        out = []
        keys = []
        prev_added = fakedata.SEED_START_MS
        span = fakedata.SEED_END_MS - fakedata.SEED_START_MS
        start_ms = now_ms()
        for i in range(n):
            loc.serial += 1
            f = fakedata.contact_fields(rng, meta, loc.serial, loc.email_idx)
            if f.get("phone") in loc.phone_idx:
                del f["phone"]
            cid = self._new_id(rng)
            r = rng.random
            added = prev_added if r() < 0.05 else fakedata.SEED_START_MS + int(r() * span)
            prev_added = added
            updated = min(added + int(r() * 30 * fakedata.DAY_MS), fakedata.SEED_END_MS)
            if now:
                added = updated = start_ms + i
            rec = {"id": cid, "locationId": loc.id}
            rec.update(f)
            derive_contact(rec)
            rec["dateAdded"] = iso(added)
            rec["dateUpdated"] = iso(updated)
            entry = ContactEntry(rec, added, updated)
            loc.contacts[cid] = entry
            keys.append((added, cid))
            self._secondary(loc, rec, None)
            ids.append(cid)
            for _ in range(tasks_per_contact):
                tid = self._new_id(rng)
                task = self._task_record(tid, cid, fakedata.task_fields(rng, meta, updated))
                entry.tasks[tid] = task
                self.task_owner[tid] = (loc.id, cid)
            for _ in range(notes_per_contact):
                nid = self._new_id(rng)
                note_added = added + int(r() * (updated - added + 1))
                note = self._note_record(nid, cid, iso(note_added), fakedata.note_fields(rng, meta))
                entry.notes[nid] = note
                self.note_owner[nid] = (loc.id, cid)
            if r() < 0.15:
                ev = fakedata.appointment(rng, meta, loc.id, cid, added)
                self.all_ids.add(ev["id"])
                entry.events.append(ev)
            if log:
                t = now_ms()
                self._log(out, loc, "contact", "created", cid, sorted(rec), rec, source, t)
                for task in entry.tasks.values():
                    self._log(out, loc, "task", "created", task["id"], sorted(task), task, source, t, cid)
                for note in entry.notes.values():
                    self._log(out, loc, "note", "created", note["id"], sorted(note), note, source, t, cid)
        loc.index.extend(keys)
        loc.index.sort()
        loc.updated_index.extend((loc.contacts[cid].updated_ms, cid) for cid in ids)
        loc.updated_index.sort()
        loc.order.extend(ids)
        loc.version += 1
        return ids, out

    # --- random realistic mutations (control API "random" and --activity) -------------------

    WEIGHTS = [
        (("contact", "create"), 15), (("contact", "update"), 25), (("contact", "delete"), 3),
        (("task", "create"), 12), (("task", "update"), 8), (("task", "complete"), 6), (("task", "delete"), 3),
        (("note", "create"), 12), (("note", "update"), 8), (("note", "delete"), 3),
    ]

    def _random_live(self, loc, rng):
        """A random live contact, picked from the creation order (independent of timestamps)."""
        if not loc.index:
            return None
        while True:
            for _ in range(64):
                e = loc.contacts[loc.order[int(rng.random() * len(loc.order))]]
                if not e.deleted:
                    return e
            loc.order = [cid for cid in loc.order if not loc.contacts[cid].deleted]

    def _random_with(self, loc, rng, attr):
        for _ in range(30):
            e = self._random_live(loc, rng)
            if e is not None and getattr(e, attr):
                return e
        return None

    def random_mutation(self, loc, rng, kinds=None, source="activity"):
        """Apply one weighted random realistic change; returns its change entries."""
        choices = [(k, w) for k, w in self.WEIGHTS if kinds is None or k[0] in kinds]
        if not choices:
            raise ApiError(400, "no mutation kinds selected")
        (kind, op), = rng.choices([k for k, _ in choices], weights=[w for _, w in choices])
        meta = loc.meta
        if not loc.index and (kind, op) != ("contact", "create"):
            if kinds is not None and "contact" not in kinds:
                return []
            kind, op = "contact", "create"
        if kind == "contact":
            if op == "create":
                loc.serial += 1
                f = fakedata.contact_fields(rng, meta, loc.serial + 5000000, loc.email_idx)
                if f.get("phone") in loc.phone_idx:
                    del f["phone"]
                return self.create_contact(loc, f, source)[1]
            e = self._random_live(loc, rng)
            if op == "delete":
                return self.delete_contact(loc, e, source)
            patch = fakedata.contact_update(rng, meta, e.rec, loc.email_idx)
            if patch.get("phone") and loc.phone_idx.get(patch["phone"], e.rec["id"]) != e.rec["id"]:
                del patch["phone"]
            return self.update_contact(loc, e, patch, source)
        attr = "tasks" if kind == "task" else "notes"
        if op == "create":
            e = self._random_live(loc, rng)
            if kind == "task":
                return self.create_task(loc, e, fakedata.task_fields(rng, meta, now_ms()), source)[1]
            return self.create_note(loc, e, fakedata.note_fields(rng, meta), source)[1]
        e = self._random_with(loc, rng, attr)
        if e is None:
            return self.random_mutation(loc, rng, kinds=[kind], source=source) if op != "create" else []
        rid = rng.choice(list(getattr(e, attr)))
        if kind == "task":
            if op == "delete":
                return self.delete_task(loc, e, rid, source)
            patch = {"completed": True} if op == "complete" else fakedata.task_update(rng, meta, e.tasks[rid])
            if op == "complete" and e.tasks[rid]["completed"]:
                patch = {"completed": False}
            return self.update_task(loc, e, rid, patch, source)[1]
        if op == "delete":
            return self.delete_note(loc, e, rid, source)
        return self.update_note(loc, e, rid, fakedata.note_update(rng, meta, e.notes[rid]), source)[1]

    # --- dumps -------------------------------------------------------------------------------

    @staticmethod
    def dump_contact(entry):
        rec = dict(entry.rec)
        rec["deleted"] = entry.deleted
        return rec

    def dump(self, loc, contact_id=None, summary=False, include_deleted=True):
        if summary:
            live = len(loc.index)
            return {"location": loc.id, "companyId": loc.company_id, "contacts": live,
                    "deletedContacts": len(loc.contacts) - live,
                    "tasks": sum(len(e.tasks) for e in loc.contacts.values()),
                    "notes": sum(len(e.notes) for e in loc.contacts.values()),
                    "meta": loc.meta}
        if contact_id is not None:
            e = loc.contacts.get(contact_id)
            entries = [e] if e is not None else []
        else:
            entries = [loc.contacts[cid] for _, cid in loc.index]
            if include_deleted:
                entries += [e for e in loc.contacts.values() if e.deleted]
        out = {"location": loc.id, "companyId": loc.company_id, "meta": loc.meta, "contacts": [],
               "tasks": {}, "notes": {}, "appointments": {}, "campaigns": {}, "workflows": {}}
        for e in entries:
            cid = e.rec["id"]
            out["contacts"].append(self.dump_contact(e))
            out["tasks"][cid] = list(e.tasks.values())
            out["notes"][cid] = list(e.notes.values())
            if e.events:
                out["appointments"][cid] = e.events
            if e.campaigns:
                out["campaigns"][cid] = list(e.campaigns.values())
            if e.workflows:
                out["workflows"][cid] = list(e.workflows.values())
        return out
