"""Stateful fake of the HighLevel (GoHighLevel) API v2 used by pollen's tests.

Standard library only.  Layout:

    util.py      ids, timestamps, JSON, the ApiError exception
    fakedata.py  deterministic realistic record generators
    store.py     all state: locations, contacts, tasks, notes, enrolments, change log
    search.py    filters / sort / cursor logic of POST /contacts/search and GET /contacts/
    auth.py      static tokens, OAuth clients, codes, access and refresh tokens
    limits.py    per-resource sliding-window and daily rate limiter
    faults.py    fault injection registry and hostile bodies
    api.py       the public route table and handlers (paths as in apps/contacts.json, apps/oauth.json)
    control.py   the /_control/ API used by tests
    server.py    the HTTP layer (ThreadingHTTPServer, keep-alive, request log, fault writing)
"""
