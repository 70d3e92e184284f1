"""`meson install` (issue #14): the build's own install (`meson install
--destdir TMP --no-rebuild`: fast, no second build) puts the binary, the
catalog and the example configuration in place, and the installed binary runs
with no catalog flag: it reads the installed catalog, never the source tree.
The build-tree binary keeps reading the source tree (src/core/paths.h)."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness

BUILD_ROOT = os.path.dirname(os.path.abspath(harness.POLLEN_BIN))
FAST = "rate_limit = 100\nrate_window = 1s\n"


def meson_installed():
    """{build or source file: install path (without DESTDIR)} of the build."""
    out = subprocess.run(["meson", "introspect", "--installed", BUILD_ROOT], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


class Install:
    """One `meson install --destdir` of the build under test."""

    def __init__(self):
        self.destdir = tempfile.mkdtemp(prefix="pollen-install-")
        subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--destdir", self.destdir,
                        "--no-rebuild", "--quiet"], check=True, capture_output=True, text=True)
        self.installed = meson_installed()
        by_name = {os.path.basename(src): dst for src, dst in self.installed.items()}
        self.bin_path = by_name["pollen"]  # as installed, without DESTDIR
        self.catalog_path = by_name["triggers"].rsplit("/", 1)[0]
        self.bin = self.staged(self.bin_path)
        self.catalog = self.staged(self.catalog_path)
        self.example = self.staged(by_name["pollen.ini"])

    def staged(self, path):
        return self.destdir + path

    def remove(self):
        shutil.rmtree(self.destdir, ignore_errors=True)


class InstallTest(harness.PollenTest):
    @classmethod
    def setUpClass(cls):
        cls.inst = Install()

    @classmethod
    def tearDownClass(cls):
        cls.inst.remove()

    def run_bin(self, binary, *args, env=None):
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=300,
                              env=env or self.env)

    def test_install_puts_binary_catalog_and_example_in_place(self):
        inst = self.inst
        self.assertTrue(os.access(inst.bin, os.X_OK), inst.bin)
        for sub in ("triggers", "actions", "resources"):
            src = sorted(f for f in os.listdir(os.path.join(harness.SOURCE_ROOT, sub))
                         if f.endswith(".ini"))
            self.assertEqual(sorted(os.listdir(os.path.join(inst.catalog, sub))), src, sub)
        self.assertTrue(inst.catalog_path.endswith("/share/pollen"), inst.catalog_path)
        with open(inst.example) as f, open(os.path.join(harness.SOURCE_ROOT, "conf",
                                                        "pollen.ini")) as g:
            self.assertEqual(f.read(), g.read())

    def test_installed_binary_checks_the_example_with_the_installed_catalog(self):
        env = dict(self.env, GHL_TOKEN="pit-example")
        proc = self.run_bin(self.inst.bin, "check", "-c", self.inst.example, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"; catalog {self.inst.catalog} (", proc.stdout)
        self.assertNotIn(harness.SOURCE_ROOT + " (", proc.stdout)

    def test_build_tree_binary_reads_the_source_tree(self):
        env = dict(self.env, GHL_TOKEN="pit-example")
        proc = self.pollen("check", "-c", os.path.join(harness.SOURCE_ROOT, "conf", "pollen.ini"),
                           env=env)
        self.assertIn(f"; catalog {os.path.realpath(harness.SOURCE_ROOT)} (", proc.stdout)

    def test_a_copy_outside_both_reads_the_compiled_in_catalog(self):
        """Neither in the build tree nor beside an installed share/pollen: the
        compiled-in DATADIR/pollen (absent here, since only DESTDIR has it)."""
        if os.path.isdir(self.inst.catalog_path):
            self.skipTest(f"{self.inst.catalog_path} exists on this machine")
        lone = os.path.join(self.dir, "lone", "bin")
        os.makedirs(lone)
        shutil.copy(self.inst.bin, lone)
        proc = self.run_bin(os.path.join(lone, "pollen"), "catalog")
        self.assertNotEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(self.inst.catalog_path + "/triggers: cannot read the catalog directory",
                      proc.stderr)

    def test_installed_binary_runs_once_with_the_installed_catalog(self):
        """A definition that exists only in the installed catalog: the run can
        only succeed if the installed binary reads DATADIR/pollen."""
        with open(os.path.join(self.inst.catalog, "triggers", "contacts.ini")) as f:
            text = f.read()
        section = re.search(r"^\[contacts\.list\]\n(.*?)(?=^\[)", text, re.S | re.M).group(1)
        extra = os.path.join(self.inst.catalog, "triggers", "zz-install-test.ini")
        with open(extra, "w") as f:
            f.write("[install.contacts]\n" + section)
        self.addCleanup(os.remove, extra)
        ids = self.sandbox.seed(7)["contact_ids"]
        cfg = self.write_config("[trigger listed]\nuse = install.contacts\nevery = 1s\n"
                                "first_poll = emit\n", location=FAST)
        # The build-tree binary does not know the definition...
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("unknown catalog trigger 'install.contacts'", proc.stderr)
        # ...the installed one does, and polls with it.
        proc = self.run_bin(self.inst.bin, "run", "-c", cfg, "--once")
        self.assertEqual(proc.returncode, 0, proc.stderr[-4000:])
        events = self.events(cfg)
        self.assertEqual(sorted(e["record_id"] for e in events), sorted(ids))
        self.assertTrue(all(e["trigger"] == "listed" and e["type"] == "created" for e in events))


class BackupTest(harness.PollenTest):
    """README "State and backups": mdb_copy of a running engine's state is a
    consistent database that pollen reads."""
    sandbox_args = ("--rate-limit", "0")

    def test_mdb_copy_while_running(self):
        if shutil.which("mdb_copy") is None:
            self.skipTest("mdb_copy is not installed (Debian's lmdb-utils)")
        ids = self.sandbox.seed(20)["contact_ids"]
        cfg = self.write_config("[trigger contacts]\nuse = contacts.search\nevery = 1s\n"
                                "first_poll = emit\n", location=FAST)
        self.start_engine(cfg)
        self.wait_for(lambda: len(self.events(cfg)) == len(ids), what="the first events")
        backup = os.path.join(self.dir, "backup")
        os.mkdir(backup, 0o700)
        proc = subprocess.run(["mdb_copy", os.path.join(self.dir, "state"), backup],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIsNone(self.engine.poll(), "the engine kept running")
        with open(cfg) as f:
            text = f.read()
        copy = os.path.join(self.dir, "copy.ini")
        with open(copy, "w") as f:
            f.write(text.replace("state_dir = state", "state_dir = backup"))
        os.chmod(copy, 0o600)
        restored = self.events(copy)
        self.assertEqual(sorted(e["record_id"] for e in restored), sorted(ids))
        self.assertEqual(restored, self.events(cfg)[:len(restored)])


if __name__ == "__main__":
    harness.main()
