"""Independent oracle: python-tuf's ngclient reads a site built by trellis-index.

Usage: python_tuf_oracle.py TRELLIS_INDEX_BINARY WORK_DIR

Builds a synthetic registry with `trellis-index init/synth/build`, serves it with
`trellis-index serve` on 127.0.0.1, then lets python-tuf's `ngclient.Updater`
refresh (root, timestamp, snapshot, targets, delegations, TAP 15 hash bins) and
download an index doc, a TUF target signed by a hash bin, the blocklist and a publisher
record (through the publishers role's succinct `pub-…` bins). Packages are not TUF
targets: the bins sign only index docs, and a package is downloaded by the path,
length and SHA-256 its index doc lists (python-tuf's `download_target` checks both),
the way a PEP 458 client trusts a distribution through the simple index. Bytes are
compared with the files the builder wrote. A registry only our own client can read is
not TUF.
Prints `python-tuf oracle: P passed, F failed` and exits non-zero on any failure.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import traceback

from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

binary, work = sys.argv[1], sys.argv[2]
registry = os.path.join(work, "registry")
site = os.path.join(work, "site")
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - report every failure, keep going
            results.append((name, error))
            print(f"FAIL {name}: {error!r}")
            traceback.print_exc()
        return fn
    return wrap


def run(*args):
    subprocess.run([binary, *args], check=True, stdout=subprocess.DEVNULL)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
run("init", registry, "--bin-bits", "6", "--root-keys", "2", "--root-threshold", "2")
run("synth", registry, "--plugins", "40", "--versions", "3")
run("build", registry, "--out", site)
# A second root signed by old and new root keys, so the client walks the chain.
run("rotate", registry, "root")
run("build", registry, "--out", site)

server = subprocess.Popen([binary, "serve", site, "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
try:
    line = server.stdout.readline()
    base = line.strip().rsplit(" at ", 1)[1]
    client = os.path.join(work, "client")
    downloads = os.path.join(work, "downloads")
    os.makedirs(client)
    os.makedirs(downloads)
    with open(os.path.join(site, "metadata", "1.root.json"), "rb") as f:
        trusted_root = f.read()

    def updater():
        return Updater(
            metadata_dir=client,
            metadata_base_url=base + "metadata/",
            target_base_url=base + "targets/",
            target_dir=downloads,
            bootstrap=trusted_root,
        )

    state = {}

    def blob_info(blob):
        """The download of a blob the verified index doc lists (its BlobRef)."""
        return TargetFile(length=blob["length"], hashes={"sha256": blob["sha256"]}, path=blob["path"])

    @check("refresh walks root 1 -> 2, timestamp, snapshot, targets")
    def _():
        u = updater()
        u.refresh()
        with open(os.path.join(client, "root.json")) as f:
            assert json.load(f)["signed"]["version"] == 2, "root was not updated to version 2"
        state["updater"] = u

    @check("downloads an index doc through targets -> bins -> bin-xx")
    def _():
        u = state["updater"]
        plugin = "v0.plugin-0"
        shard = hashlib.sha256(plugin.encode()).hexdigest()[:2]
        path = f"index/{shard}/{plugin}.json"
        info = u.get_targetinfo(path)
        assert info is not None, f"{path} not found"
        local = u.download_target(info, os.path.join(downloads, "index.json"))
        with open(local, "rb") as f:
            data = f.read()
        digest = info.hashes["sha256"]
        with open(os.path.join(site, "targets", "index", shard, f"{digest}.{plugin}.json"), "rb") as f:
            assert data == f.read(), "index doc bytes differ from the site's file"
        doc = json.loads(data)
        assert doc["id"] == plugin and len(doc["releases"]) == 3, doc
        state["doc"] = doc

    @check("downloads a package by its index doc's BlobRef and it equals the registry's package")
    def _():
        u = state["updater"]
        release = state["doc"]["releases"][-1]
        package = release["package"]
        assert u.get_targetinfo(package["path"]) is None, "the bins must not sign blobs"
        local = u.download_target(blob_info(package), os.path.join(downloads, "package.zip"))
        with open(local, "rb") as f:
            data = f.read()
        assert len(data) == package["length"]
        assert hashlib.sha256(data).hexdigest() == package["sha256"]
        source = os.path.join(registry, "releases", state["doc"]["id"], release["version"] + ".zip")
        with open(source, "rb") as f:
            assert data == f.read(), "package bytes differ from the registry's file"

    @check("the bins role is delegated index/*/* and every bin signs only index docs")
    def _():
        def role(name):
            with open(os.path.join(client, f"{name}.json")) as f:
                return json.load(f)["signed"]
        bins = [r for r in role("targets")["delegations"]["roles"] if r["name"] == "bins"]
        assert len(bins) == 1 and bins[0]["paths"] == ["index/*/*"], bins
        with open(os.path.join(site, "metadata", "timestamp.json")) as f:
            snapshot_version = json.load(f)["signed"]["meta"]["snapshot.json"]["version"]
        with open(os.path.join(site, "metadata", f"{snapshot_version}.snapshot.json")) as f:
            meta = json.load(f)["signed"]["meta"]
        bin_files = [(name, m["version"]) for name, m in meta.items() if name.startswith("bin-")]
        assert len(bin_files) == 64, len(bin_files)
        signed = []
        for name, version in bin_files:
            with open(os.path.join(site, "metadata", f"{version}.{name}")) as f:
                signed.extend(json.load(f)["signed"]["targets"])
        assert len(signed) == 40, len(signed)
        outside = [path for path in signed if not path.startswith("index/")]
        assert not outside, outside

    @check("finds the blocklist through the security delegation")
    def _():
        info = state["updater"].get_targetinfo("security/blocklist.json")
        assert info is not None
        local = state["updater"].download_target(info, os.path.join(downloads, "blocklist.json"))
        with open(local) as f:
            assert "entries" in json.load(f)

    @check("finds a publisher record through publishers -> pub-xx")
    def _():
        u = state["updater"]
        vendor = state["doc"]["id"].split(".")[0]
        path = f"publishers/{vendor}.json"
        info = u.get_targetinfo(path)
        assert info is not None, f"{path} not found"
        local = u.download_target(info, os.path.join(downloads, "publisher.json"))
        with open(local) as f:
            chain = json.load(f)["records"]
        # A record chain: versions 1..N, the newest last, each naming the publisher.
        assert [r["signed"]["version"] for r in chain] == list(range(1, len(chain) + 1)), chain
        assert chain[-1]["signed"]["id"] == vendor
        bins = [name for name in os.listdir(client) if name.startswith("pub-")]
        assert len(bins) == 1, f"python-tuf loaded publisher bins {bins}, expected only the vendor's"

    @check("refuses a package whose bytes differ from its BlobRef")
    def _():
        u = state["updater"]
        release = state["doc"]["releases"][0]
        info = blob_info(release["package"])
        directory, base_name = release["package"]["path"].rsplit("/", 1)
        served = os.path.join(site, "targets", directory, f"{info.hashes['sha256']}.{base_name}")
        with open(served, "r+b") as f:
            f.seek(0)
            f.write(b"X")
        try:
            u.download_target(info, os.path.join(downloads, "tampered.zip"))
        except RepositoryError:
            return
        raise AssertionError("python-tuf accepted a tampered blob")
finally:
    server.terminate()
    server.wait()

failed = sum(1 for _, error in results if error is not None)
print(f"python-tuf oracle: {len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed or not results else 0)
