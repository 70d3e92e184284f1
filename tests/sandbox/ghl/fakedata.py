"""Deterministic, realistic-looking record generators (all randomness comes from the rng passed in)."""

from . import util

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sofia", "Mark", "Emma", "Steven", "Olivia",
    "Andrew", "Ava", "Kenji", "Priya", "Luca", "Amara", "Noah", "Chloe", "Mateo", "Zoe",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Patel", "Kim",
]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "example.com", "proton.me"]
COMPANIES = [
    "Acme Roofing", "Blue Harbor Dental", "Summit Fitness", "Greenleaf Landscaping", "Northside Realty",
    "Brightpath Tutoring", "Cedar & Co Law", "Peak Performance Chiro", "Urban Bloom Florist", "Riverbend HVAC",
    "Golden Spoon Catering", "Lakeside Auto Repair", "Nova Med Spa", "Keystone Plumbing", "Harbor Light Insurance",
]
# (city, state, postal code prefix, timezone, area code)
CITIES = [
    ("Austin", "TX", "787", "America/Chicago", "512"), ("Denver", "CO", "802", "America/Denver", "303"),
    ("Seattle", "WA", "981", "America/Los_Angeles", "206"), ("Miami", "FL", "331", "America/New_York", "305"),
    ("Chicago", "IL", "606", "America/Chicago", "312"), ("Boston", "MA", "021", "America/New_York", "617"),
    ("Phoenix", "AZ", "850", "America/Phoenix", "602"), ("Portland", "OR", "972", "America/Los_Angeles", "503"),
    ("Nashville", "TN", "372", "America/Chicago", "615"), ("Atlanta", "GA", "303", "America/New_York", "404"),
]
STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Lakeview Rd", "Sunset Blvd",
           "2nd Ave", "Park Pl"]
SOURCES = ["website form", "facebook ads", "google ads", "referral", "walk-in", "instagram", "chat widget", "import"]
TAGS = ["lead", "customer", "vip", "newsletter", "webinar", "cold", "hot", "follow-up", "trial", "churned",
        "partner", "event-2025"]
TYPES = ["lead", "customer"]
TASK_TITLES = [
    "Call back", "Send proposal", "Follow up on quote", "Schedule demo", "Confirm appointment",
    "Collect payment", "Send contract", "Check in after onboarding", "Request review", "Renewal reminder",
]
TASK_BODIES = [
    "Asked to be called after 3pm.", "Waiting on budget approval.", "Prefers email over phone.",
    "Needs pricing for the premium plan.", "Left a voicemail, try again tomorrow.", "", "Send the PDF brochure first.",
]
NOTE_BODIES = [
    "Interested in the annual plan.", "Met at the spring expo.", "Had a great first call, very engaged.",
    "Asked about financing options.", "Referred by an existing customer.", "Not ready until next quarter.",
    "Complained about the last invoice; resolved.", "Wants a callback from the manager.",
]
NOTE_TITLES = ["Call summary", "Meeting notes", "Billing", "Feedback", "Intro", ""]
NOTE_COLORS = ["#FFAA00", "#4CAF50", "#2196F3", "#E91E63", "#9E9E9E"]
APPT_TITLES = ["Consultation", "Discovery call", "Follow-up visit", "Demo", "Onboarding session"]
APPT_STATUSES = ["booked", "confirmed", "showed", "cancelled", "noshow"]
CUSTOM_FIELD_NAMES = [("Lead score", "lead_score"), ("Preferred contact time", "preferred_contact_time"),
                      ("Budget", "budget"), ("Referral code", "referral_code")]
LOCATION_NAMES = ["Demo Dental", "Sunrise Realty", "Metro Fitness", "Coastal Roofing", "Pinecrest Law"]

# Seeded timestamps are fixed (not wall clock) so that --seed gives identical data every run.
SEED_START_MS = 1704067200000   # 2024-01-01T00:00:00.000Z
SEED_END_MS = 1767139200000     # 2025-12-31T00:00:00.000Z
DAY_MS = 86400000


def location_meta(rng, location_id):
    """Per-location reference data: users, custom fields, businesses, calendars, campaigns, workflows."""
    return {
        "users": [util.new_id(rng) for _ in range(5)],
        "customFields": [{"id": util.new_id(rng), "name": n, "fieldKey": "contact." + k, "dataType": "TEXT"}
                         for n, k in CUSTOM_FIELD_NAMES],
        "businesses": [util.new_object_id(rng) for _ in range(3)],
        "calendars": [util.new_id(rng) for _ in range(2)],
        "campaigns": [util.new_id(rng) for _ in range(3)],
        "workflows": [util.new_uuid(rng) for _ in range(3)],
        "name": rng.choice(LOCATION_NAMES),
        "address": "%d %s, %s, %s" % (rng.randint(10, 999), rng.choice(STREETS), *rng.choice(CITIES)[:2]),
    }


def phone_for(rng, area, serial):
    """A unique E.164 US number for serial < 10M (7919 is coprime with 10**7)."""
    return "+1%s%07d" % (area, (serial * 7919 + 1234567) % 10000000)


def _pick(r, seq):
    return seq[int(r() * len(seq))]


def _between(r, lo, hi):
    """Uniform integer in [lo, hi] from one random() call (faster than randint)."""
    return lo + int(r() * (hi - lo + 1))


def contact_fields(rng, meta, serial, email_taken=None):
    """Realistic field values for a new contact (no id / dates / locationId).  Hot path of seeding."""
    r = rng.random
    first = _pick(r, FIRST_NAMES)
    last = _pick(r, LAST_NAMES)
    city, state, zip3, tz, area = _pick(r, CITIES)
    domain = _pick(r, EMAIL_DOMAINS)
    email = "%s.%s%d@%s" % (first.lower(), last.lower(), serial, domain)
    while email_taken is not None and email in email_taken:
        serial += 1000003
        email = "%s.%s%d@%s" % (first.lower(), last.lower(), serial, domain)
    tags = sorted({_pick(r, TAGS) for _ in range(int(r() * 4))})
    dnd = r() < 0.05
    f = {
        "firstName": first,
        "lastName": last,
        "email": email,
        "type": _pick(r, TYPES),
        "source": _pick(r, SOURCES),
        "address1": "%d %s" % (_between(r, 1, 9999), _pick(r, STREETS)),
        "city": city,
        "state": state,
        "country": "US",
        "postalCode": "%s%02d" % (zip3, int(r() * 100)),
        "timezone": tz,
        "dnd": dnd,
        "tags": tags,
        "customFields": [],
        "followers": [],
    }
    if dnd:
        f["dndSettings"] = {"SMS": {"status": "active", "message": "opted out by sms", "code": "STOP"}}
    if r() < 0.97:
        f["phone"] = phone_for(rng, area, serial)
    if r() < 0.4:
        f["companyName"] = _pick(r, COMPANIES)
        f["website"] = "https://www.%s.com" % f["companyName"].lower().replace(" & ", "").replace(" ", "")
    if r() < 0.5:
        f["dateOfBirth"] = "%04d-%02d-%02dT00:00:00.000Z" % (_between(r, 1950, 2004), _between(r, 1, 12),
                                                            _between(r, 1, 28))
    if r() < 0.6:
        f["assignedTo"] = _pick(r, meta["users"])
    if r() < 0.3:
        f["businessId"] = _pick(r, meta["businesses"])
    if r() < 0.5:
        cf = _pick(r, meta["customFields"])
        f["customFields"] = [{"id": cf["id"], "value": str(_between(r, 1, 100))}]
    if r() < 0.2:
        f["followers"] = [_pick(r, meta["users"])]
    if r() < 0.3:
        f["attributionSource"] = {"url": "https://example.com/landing", "campaign": "spring", "utmSource": "google",
                                  "utmMedium": "cpc", "medium": "form"}
    return f


def contact_update(rng, meta, rec, email_taken):
    """A realistic random change to an existing contact: a dict of 1-2 fields (None removes)."""
    choices = ["firstName", "lastName", "phone", "companyName", "city", "tags", "dnd", "source",
               "customFields", "followers", "assignedTo", "email", "postalCode"]
    patch = {}
    for field in rng.sample(choices, rng.randint(1, 2)):
        if field == "firstName":
            patch[field] = rng.choice(FIRST_NAMES)
        elif field == "lastName":
            patch[field] = rng.choice(LAST_NAMES)
        elif field == "phone":
            patch[field] = phone_for(rng, rng.choice(CITIES)[4], rng.randint(0, 9999999))
        elif field == "companyName":
            patch[field] = rng.choice(COMPANIES)
        elif field == "city":
            c = rng.choice(CITIES)
            patch.update({"city": c[0], "state": c[1], "timezone": c[3]})
        elif field == "tags":
            tags = set(rec.get("tags", []))
            tag = rng.choice(TAGS)
            tags.symmetric_difference_update({tag})
            patch[field] = sorted(tags)
        elif field == "dnd":
            patch[field] = not rec.get("dnd", False)
        elif field == "source":
            patch[field] = rng.choice(SOURCES)
        elif field == "customFields":
            cf = rng.choice(meta["customFields"])
            patch[field] = [{"id": cf["id"], "value": str(rng.randint(1, 100))}]
        elif field == "followers":
            followers = set(rec.get("followers", []))
            followers.symmetric_difference_update({rng.choice(meta["users"])})
            patch[field] = sorted(followers)
        elif field == "assignedTo":
            patch[field] = rng.choice(meta["users"])
        elif field == "email":
            first = rec.get("firstName", "contact").lower()
            email = "%s.%d@%s" % (first, rng.randint(1, 10 ** 9), rng.choice(EMAIL_DOMAINS))
            if email not in email_taken:
                patch[field] = email
        elif field == "postalCode":
            patch[field] = "%05d" % rng.randint(10000, 99999)
    return patch


def task_fields(rng, meta, due_base_ms):
    r = rng.random
    due = due_base_ms + _between(r, 1, 60) * DAY_MS
    f = {
        "title": _pick(r, TASK_TITLES),
        "body": _pick(r, TASK_BODIES),
        "dueDate": util.iso(due - due % 1800000),
        "completed": r() < 0.3,
    }
    if r() < 0.8:
        f["assignedTo"] = _pick(r, meta["users"])
    return f


def task_update(rng, meta, rec):
    field = rng.choice(["title", "body", "dueDate", "completed", "completed", "assignedTo"])
    if field == "title":
        return {"title": rng.choice(TASK_TITLES)}
    if field == "body":
        return {"body": rng.choice(TASK_BODIES)}
    if field == "dueDate":
        base = util.parse_iso(rec.get("dueDate", "")) or SEED_END_MS
        return {"dueDate": util.iso(base + rng.randint(1, 14) * DAY_MS)}
    if field == "completed":
        return {"completed": not rec.get("completed", False)}
    return {"assignedTo": rng.choice(meta["users"])}


def note_fields(rng, meta):
    r = rng.random
    return {
        "body": _pick(r, NOTE_BODIES),
        "userId": _pick(r, meta["users"]),
        "title": _pick(r, NOTE_TITLES),
        "color": _pick(r, NOTE_COLORS),
        "pinned": r() < 0.1,
    }


def note_update(rng, meta, rec):
    field = rng.choice(["body", "body", "title", "color", "pinned"])
    if field == "body":
        return {"body": rng.choice(NOTE_BODIES) + " (edited)"}
    if field == "title":
        return {"title": rng.choice(NOTE_TITLES)}
    if field == "color":
        return {"color": rng.choice(NOTE_COLORS)}
    return {"pinned": not rec.get("pinned", False)}


def appointment(rng, meta, location_id, contact_id, added_ms):
    start = added_ms + rng.randint(1, 60) * DAY_MS
    start -= start % 1800000
    status = rng.choice(APPT_STATUSES)
    user = rng.choice(meta["users"])
    return {
        "id": util.new_id(rng),
        "calendarId": rng.choice(meta["calendars"]),
        "status": status,
        "title": rng.choice(APPT_TITLES),
        "assignedUserId": user,
        "notes": "",
        "startTime": util.iso_space(start),
        "endTime": util.iso_space(start + 1800000),
        "address": "Zoom",
        "locationId": location_id,
        "contactId": contact_id,
        "groupId": "",
        "appointmentStatus": status,
        "users": [user],
        "dateAdded": util.iso_space(added_ms),
        "dateUpdated": util.iso_space(added_ms),
        "assignedResources": [],
    }
