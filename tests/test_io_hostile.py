"""Hostile files and hostile save targets (SPEC "Saving").

Loading: a file cannot make ``load`` use more memory or time than its size allows — arrays
are checked against the byte budget of the file and against the shapes the net's structure
implies *before* their data is inflated, ``net.json`` is bounded in size and nesting, and
shape inference runs once per load (time linear in the spec). Loaded arrays must be finite.

Saving: the replaced file keeps its permission bits, only regular files are written (a
symlink is followed), a path with a NUL byte is a ``NetError``, and no temporary file
survives a failure.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import assert_same_net
from test_io import contents, npy, write_zip

import netgraph.io as nio
from netgraph import (
    ElementwiseLayer,
    LinearLayer,
    NetChain,
    NetError,
    NetGraph,
    NetInitialize,
    ShapeError,
    load,
    save,
)
from netgraph.graph import NetGraph as _Graph
from netgraph.layer import Layer

MB = 1 << 20


def spec_of(path):
    return json.loads(contents(path)["net.json"])


def peak_bytes(fn):
    """(result or raised exception, peak bytes traced while ``fn`` runs)."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - returned for the caller to check
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Opened:
    """Records which members of an archive are opened (the array data never is, when a file
    is refused before inflating)."""

    def __init__(self, monkeypatch):
        self.names: list[str] = []
        real = zipfile.ZipFile.open

        def spy(zf, name, *args, **kw):
            self.names.append(name if isinstance(name, str) else name.filename)
            return real(zf, name, *args, **kw)

        monkeypatch.setattr(zipfile.ZipFile, "open", spy)


# ------------------------------------------------------------------- arrays
@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A file of ~0.26 MB whose deflated weights member inflates to 256 MiB: a LinearLayer
    without port sizes, so that its structure alone does not pin the weights' shape."""
    tmp = tmp_path_factory.mktemp("bomb")
    save(NetInitialize(LinearLayer(3, Input=5), seed=0), tmp / "good")
    spec, files = spec_of(tmp / "good"), contents(tmp / "good")
    cols = (256 * MB) // 12
    spec["net"]["ports"] = {}
    spec["net"]["arrays"]["Weights"]["shape"] = [3, cols]
    weights = spec["net"]["arrays"]["Weights"]["member"]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (3, cols)})
    path = tmp / "bomb.wlnet"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("net.json", json.dumps(spec))
        for name, data in files.items():
            if name == weights:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as out:
                    out.write(header.getvalue())
                    for _ in range(12 * cols // MB):
                        out.write(bytes(MB))
                    out.write(bytes(12 * cols % MB))
            elif name != "net.json":
                zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(weights).file_size > 256 * MB - 64  # the member really is that big
    assert os.path.getsize(path) < MB
    return path


def test_huge_deflated_array_is_refused_before_inflating(bomb, monkeypatch):
    opened = Opened(monkeypatch)
    err, peak = peak_bytes(lambda: load(bomb))
    assert isinstance(err, NetError), err
    assert "'Weights'" in str(err) and f"(3, {(256 * MB) // 12})" in str(err)
    assert "bytes" in str(err)
    assert peak < 8 * MB, peak
    assert set(opened.names) == {"net.json"}  # the array member is never opened


def test_members_shared_by_many_arrays_cannot_multiply_the_file(tmp_path):
    """An overlapping-member bomb: 120 layers whose weights all name one 0.64 MB member."""
    n = 400
    chain = NetInitialize(NetChain([LinearLayer(n, biases=False) for _ in range(3)], Input=n),
                          seed=0)
    save(chain, tmp_path / "good")
    spec, files = spec_of(tmp_path / "good"), contents(tmp_path / "good")
    node = spec["net"]["nodes"][0]
    spec["net"]["nodes"] = [{**node, "name": i, "net": node["net"]} for i in range(120)]
    spec["net"]["edges"] = ([[{"node": None, "port": "Input"}, {"node": 0, "port": "Input"}]]
                            + [[{"node": i, "port": "Output"}, {"node": i + 1, "port": "Input"}]
                               for i in range(119)]
                            + [[{"node": 119, "port": "Output"}, {"node": None, "port": "Output"}]])
    spec["net"]["order"] = list(range(120))
    path = write_zip(tmp_path / "shared", {"net.json": json.dumps(spec),
                                           "arrays/0.npy": files["arrays/0.npy"]})
    assert os.path.getsize(path) < MB
    err, peak = peak_bytes(lambda: load(path))
    assert isinstance(err, NetError) and "'Weights' of node 1" in str(err), err
    assert "bytes" in str(err)
    assert peak < 8 * MB, peak  # one array of 0.64 MB read at most, not 120 of them


def test_recorded_shape_is_checked_against_the_structure_before_reading(tmp_path, monkeypatch):
    save(NetInitialize(LinearLayer(3, Input=5), seed=0), tmp_path / "good")
    spec, files = spec_of(tmp_path / "good"), contents(tmp_path / "good")
    spec["net"]["arrays"]["Weights"]["shape"] = [3, 7]  # file and member agree; Input=5 does not
    member = spec["net"]["arrays"]["Weights"]["member"]
    files.update({"net.json": json.dumps(spec), member: npy(np.ones((3, 7), np.float32))})
    bad = write_zip(tmp_path / "bad", files)
    reads = []
    real_load, real_read = np.load, np.lib.format.read_array
    monkeypatch.setattr(np, "load", lambda *a, **k: (reads.append("load"), real_load(*a, **k))[1])
    monkeypatch.setattr(np.lib.format, "read_array",
                        lambda *a, **k: (reads.append("read"), real_read(*a, **k))[1])
    with pytest.raises(ShapeError, match=r"size 5 .*size 7 .*\(3, 7\) of array 'Weights'"):
        load(bad)
    assert reads == []  # refused from the shapes alone: no array data was read


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_weights_are_refused(bad, tmp_path):
    net = NetGraph({"lin": LinearLayer(3, Input=5), "act": ElementwiseLayer("Tanh")},
                   [("lin", "act")])
    save(NetInitialize(net, seed=0), tmp_path / "good")
    files = contents(tmp_path / "good")
    ref = spec_of(tmp_path / "good")["net"]["nodes"][0]["net"]["arrays"]["Weights"]
    weights = np.zeros((3, 5), np.float32)
    weights[2, 4] = bad
    files[ref["member"]] = npy(weights)
    with pytest.raises(NetError, match=rf"array 'Weights' of node 'lin' contains NaN or Inf: {bad!r} at "
                                       r"index \(2, 4\)"):
        load(write_zip(tmp_path / "bad", files))


# ---------------------------------------------------------------------- spec
def nested_spec(tmp_path, depth):
    save(LinearLayer(3, Input=3), tmp_path / "leaf")
    node = spec_of(tmp_path / "leaf")
    net = node["net"]
    for _ in range(depth):
        net = {"kind": "graph", "type": "NetChain", "nodes": [{"name": 0, "net": net}],
               "edges": [[{"node": None, "port": "Input"}, {"node": 0, "port": "Input"}],
                         [{"node": 0, "port": "Output"}, {"node": None, "port": "Output"}]],
               "inputs": ["Input"], "outputs": ["Output"], "order": [0], "ports": {}}
    return {**node, "net": net}


@pytest.mark.parametrize("depth", [nio.MAX_DEPTH + 1, 100, 250, 20_000])
def test_deep_nesting_is_refused_promptly(depth, tmp_path):
    text = json.dumps(nested_spec(tmp_path, min(depth, 300)))
    if depth > 300:  # deeper than Python's recursion: brackets only
        text = "[" * depth + "]" * depth
    path = write_zip(tmp_path / "deep", {"net.json": text})
    assert os.path.getsize(path) < MB
    with pytest.raises(NetError, match=r"nests? more than \d+ levels deep"):
        load(path)


def test_nesting_up_to_the_bound_round_trips(tmp_path):
    net = LinearLayer(3, Input=3)
    for _ in range(nio.MAX_DEPTH):
        net = NetChain([net])
    net = NetInitialize(net, seed=0)
    back = load((save(net, tmp_path / "m"), tmp_path / "m")[1])
    x = np.arange(3, dtype=np.float32)
    assert back(x).tobytes() == net(x).tobytes()
    with pytest.raises(NetError, match=f"nest more than {nio.MAX_DEPTH} levels"):
        save(NetChain([net]), tmp_path / "deeper")
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_inference_runs_once_per_load(tmp_path, monkeypatch):
    """Loading time is linear in the spec: every net of the tree is constrained once (today's
    nested-containers case re-inferred each sub-tree at every level: quadratic)."""
    depth = 40
    net = NetInitialize(_nest(depth), seed=0)
    save(net, tmp_path / "m")
    calls = []
    for cls in (Layer, _Graph):
        real = cls._constrain

        def counting(self, S, path, _real=real):
            calls.append(path)
            return _real(self, S, path)

        monkeypatch.setattr(cls, "_constrain", counting)
    back = load(tmp_path / "m")
    assert len(calls) == depth + 1 and len(set(calls)) == depth + 1
    monkeypatch.undo()
    assert_same_net(net, back)


def _nest(depth):
    net = LinearLayer(3, Input=3)
    for _ in range(depth):
        net = NetChain([net])
    return net


def test_spec_cannot_inflate_beyond_the_file(tmp_path):
    """A deflated net.json of 1.2 MB in a file of ~40 kB is refused before it is parsed (a
    1 MB file could otherwise inflate to 64 MB of spec: 160,000 layers, a minute to load);
    the same net as save writes it (stored) loads."""
    net = NetChain([ElementwiseLayer("Tanh") for _ in range(3000)], Input=3)
    save(net, tmp_path / "stored")
    text = contents(tmp_path / "stored")["net.json"]
    assert len(text) > 1.05 * MB and os.path.getsize(tmp_path / "stored") >= len(text)
    with zipfile.ZipFile(tmp_path / "deflated", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("net.json", text)
    assert os.path.getsize(tmp_path / "deflated") < 0.1 * MB
    with pytest.raises(NetError, match=r"inflates to \d+ bytes, more than a file of \d+ bytes"):
        load(tmp_path / "deflated")
    assert_same_net(net, load(tmp_path / "stored"))


def test_a_one_megabyte_spec_loads_in_bounded_memory(tmp_path):
    """The largest spec a 1 MB file can hold (2,400 layers) loads using well under 100 MB."""
    net = NetChain([ElementwiseLayer("Tanh") for _ in range(2400)], Input=3)
    save(net, tmp_path / "m")
    assert os.path.getsize(tmp_path / "m") < MB
    back, peak = peak_bytes(lambda: load(tmp_path / "m"))
    assert not isinstance(back, Exception), back
    assert peak < 100 * MB, peak
    assert_same_net(net, back)


# ---------------------------------------------------------------------- save
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_resaving_keeps_permissions(mode, tmp_path):
    path = tmp_path / "m"
    save(LinearLayer(3, Input=5), path)
    os.chmod(path, mode)
    save(NetInitialize(LinearLayer(3, Input=5), seed=0), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert os.listdir(tmp_path) == ["m"]
    (tmp_path / "ref").write_bytes(b"")  # a new file gets the umask's mode, as open() gives
    save(LinearLayer(3), tmp_path / "new")
    assert os.stat(tmp_path / "new").st_mode == os.stat(tmp_path / "ref").st_mode


def special_files(tmp_path):
    os.mkdir(tmp_path / "dir")
    os.mkfifo(tmp_path / "fifo")
    kinds = {"dir": "a directory", "fifo": "a FIFO"}
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        kinds["sock"] = "a socket"
    except OSError:  # a socket path longer than the system allows
        pass
    finally:
        sock.close()
    if os.geteuid() == 0:  # a device node: a copy of /dev/null
        os.mknod(tmp_path / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        kinds["dev"] = "a character device"
    os.symlink("fifo", tmp_path / "link-to-fifo")
    kinds["link-to-fifo"] = "a FIFO"
    return kinds


def test_save_writes_regular_files_only(tmp_path):
    kinds = special_files(tmp_path)
    before = {n: os.lstat(tmp_path / n) for n in os.listdir(tmp_path)}
    for name, kind in kinds.items():
        with pytest.raises(NetError, match=f"cannot save to '.*{name}'.*it is {kind}"):
            save(LinearLayer(3, Input=5), tmp_path / name)
    after = {n: os.lstat(tmp_path / n) for n in os.listdir(tmp_path)}
    assert set(after) == set(before)  # no temporary files, nothing replaced
    for n, st in before.items():
        assert (after[n].st_ino, after[n].st_mode) == (st.st_ino, st.st_mode), n


def test_save_follows_a_symlink_to_a_regular_file(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model"
    save(LinearLayer(3, Input=5), target)
    os.chmod(target, 0o600)
    os.symlink(target, tmp_path / "link")
    net = NetInitialize(LinearLayer(3, Input=5), seed=4)
    save(net, tmp_path / "link")
    assert os.path.islink(tmp_path / "link") and os.readlink(tmp_path / "link") == str(target)
    assert_same_net(net, load(target))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]
    assert os.listdir(tmp_path / "real") == ["model"]


def test_nul_byte_in_path(tmp_path):
    for fn in (lambda p: save(LinearLayer(3), p), load):
        for p in (str(tmp_path / "a\0b"), os.fsencode(tmp_path / "a\0b")):
            with pytest.raises(NetError, match="NUL byte"):
                fn(p)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["fchmod", "write", "fsync", "interrupt"])
def test_no_temporary_file_survives_a_failure(where, tmp_path, monkeypatch):
    path = tmp_path / "m"
    save(LinearLayer(3, Input=5), path)
    os.chmod(path, 0o600)
    before = path.read_bytes()

    def fail(*args, **kw):
        raise KeyboardInterrupt if where == "interrupt" else OSError(5, "Input/output error")

    target = {"fchmod": (nio.os, "fchmod"), "write": (nio, "_write_zip"),
              "fsync": (nio.os, "fsync"), "interrupt": (nio, "_write_zip")}[where]
    monkeypatch.setattr(*target, fail)
    with pytest.raises(KeyboardInterrupt if where == "interrupt" else NetError):
        save(NetInitialize(LinearLayer(3, Input=5), seed=1), path)
    assert os.listdir(tmp_path) == ["m"] and path.read_bytes() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("shape", [[0, 10**30], [10**30, 0], [1] * 40, [2**40, 2**40]])
def test_absurd_recorded_shapes_are_refused(shape, tmp_path):
    save(NetInitialize(LinearLayer(3, Input=5), seed=0), tmp_path / "good")
    files, spec = contents(tmp_path / "good"), spec_of(tmp_path / "good")
    spec["net"]["ports"] = {}
    spec["net"]["arrays"]["Weights"]["shape"] = shape
    files["net.json"] = json.dumps(spec)
    with pytest.raises(NetError, match=r"array 'Weights' of net: 'net.json' gives (shape|it rank)"):
        load(write_zip(tmp_path / "bad", files))
