#!/usr/bin/env python3
"""pollen sandbox: a stateful fake of the HighLevel API v2 (contacts + OAuth), standard library only.

    python3 tests/sandbox/sandbox.py --port 0 --port-file /tmp/sbx.port --seed-contacts 100

See tests/sandbox/README.md for every flag and the /_control/ API.
"""

import argparse
import os
import random
import signal
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ghl.server import App, Server  # noqa: E402

DEFAULT_TOKEN = "pit-demo-token=demoLocation00000001"
LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}


def parse_args(argv):
    p = argparse.ArgumentParser(description="Stateful fake of the HighLevel API v2 for pollen's tests.")
    p.add_argument("--host", default="127.0.0.1", help="bind address; only 127.0.0.1 / localhost are accepted")
    p.add_argument("--port", type=int, default=0, help="TCP port, 0 picks a free one (default 0)")
    p.add_argument("--port-file", help="write the bound port to this file (atomically)")
    p.add_argument("--token", action="append", default=[], metavar="TOKEN=LOCATIONID",
                   help="static private-integration token bound to a location (repeatable; default %s)" % DEFAULT_TOKEN)
    p.add_argument("--seed-contacts", type=int, default=0, metavar="N",
                   help="seed N contacts in the first token's location at start-up (not logged as changes)")
    p.add_argument("--tasks-per-contact", type=int, default=1, metavar="K")
    p.add_argument("--notes-per-contact", type=int, default=1, metavar="K")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same data (default 1)")
    p.add_argument("--activity", type=float, default=0.0, metavar="SECONDS",
                   help="perform one random realistic mutation every SECONDS (0 = off)")
    p.add_argument("--rate-limit", type=int, default=100,
                   help="requests per window per resource, 0 = off (default 100)")
    p.add_argument("--rate-window-ms", type=int, default=10000, help="rate-limit window in ms (default 10000)")
    p.add_argument("--daily-limit", type=int, default=200000, help="requests per UTC day per resource, 0 = off")
    p.add_argument("--deleted-status", type=int, default=404, choices=(400, 404, 410, 422),
                   help="status of GET-by-id for deleted or unknown records (default 404)")
    p.add_argument("--opportunities-default-status", default="open",
                   choices=("open", "won", "lost", "abandoned", "all"),
                   help="statuses GET /opportunities/search returns without a status parameter (default open)")
    p.add_argument("--user-delete-delay-ms", type=int, default=3000, metavar="MS",
                   help="an API user delete shows deleted:true after MS, and is gone MS later (default 3000)")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (needs --tls-key)")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")
    p.add_argument("--recursion-limit", type=int, default=0, metavar="N",
                   help="raise Python's recursion limit to N, so that records nested ~1000 levels deep "
                        "can be stored and served (default: Python's own, ~1000 frames)")
    opts = p.parse_args(argv)
    if opts.host not in LOOPBACK:
        p.error("refusing to bind %r: the sandbox only listens on 127.0.0.1" % opts.host)
    opts.host = LOOPBACK[opts.host]
    if not opts.token:
        opts.token = [DEFAULT_TOKEN]
    if bool(opts.tls_cert) != bool(opts.tls_key):
        p.error("--tls-cert and --tls-key go together")
    opts.tls = bool(opts.tls_cert)
    return opts


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def activity_loop(app, interval, stop):
    """--activity: one weighted random mutation every `interval` seconds in the default location."""
    rng = random.Random("%s:activity" % app.opts.seed)
    while not stop.wait(interval):
        with app.store.lock:
            loc = app.store.locations[app.default_location]
            try:
                app.store.random_mutation(loc, rng, source="activity")
            except Exception as e:  # keep the demo going whatever happens
                sys.stderr.write("activity: %s\n" % e)


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.recursion_limit > sys.getrecursionlimit():
        sys.setrecursionlimit(opts.recursion_limit)
    app = App(opts)
    if opts.seed_contacts:
        t = time.time()
        with app.store.lock:
            loc = app.store.locations[app.default_location]
            app.store.seed_location(loc, opts.seed_contacts, opts.tasks_per_contact, opts.notes_per_contact,
                                    seed=opts.seed, log=False)
        if not opts.quiet:
            sys.stderr.write("seeded %d contacts in %s in %.2fs\n" % (opts.seed_contacts, loc.id, time.time() - t))
    ctx = None
    if opts.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    server = Server((opts.host, opts.port), app, ctx)
    port = server.server_address[1]
    app.base_url = "%s://127.0.0.1:%d" % ("https" if opts.tls else "http", port)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if opts.activity > 0:
        threading.Thread(target=activity_loop, args=(app, opts.activity, stop), daemon=True).start()
    if opts.port_file:
        write_port_file(opts.port_file, port)
    print("sandbox listening on %s" % app.base_url, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
