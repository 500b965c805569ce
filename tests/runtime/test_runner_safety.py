"""What a runner does with bad input, and its cache of exported graphs and ``auto`` choices when the
files there are broken, foreign, shared or cannot be written."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ecgfounder.models.description import model_fingerprint
from ecgfounder.runtime import choose_path, make_runner, openvino_available
from ecgfounder.testing import tiny_model

X = np.random.default_rng(0).standard_normal((3, 12, 5000)).astype(np.float32)
BACKENDS = ["torch", "onnxruntime"] + (["openvino"] if openvino_available() else [])


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


@pytest.mark.parametrize("backend", BACKENDS)
def test_runner_refuses_windows_of_another_shape_or_not_finite(tiny, backend, graph_cache):
    run = make_runner(tiny, "fp32", backend, cache_dir=graph_cache)
    ref_s, _ = run(X)
    for bad in (X[:, :11], X[0], X[:, :, :4999] if backend != "torch" else X[:, :, :, None]):
        with pytest.raises(ValueError, match=r"windows must be float32 \(n, 12, "):
            run(bad)
    x = X.copy()
    x[1, 3, 7] = np.nan
    with pytest.raises(ValueError, match="windows hold 1 NaN or infinite values"):
        run(x)
    s, f = run(X[:0])  # an empty batch: empty outputs (OpenVINO answered with the previous batch's)
    assert s.shape == (0, 150) and f.shape == (0, tiny.config.num_features)
    np.testing.assert_allclose(run(X)[0], ref_s, atol=1e-6)


def test_runner_options_are_checked(tiny):
    for kw, match in ((dict(batch=0), "batch must be an integer >= 1"), (dict(threads=-1), "threads must be"),
                      (dict(device="gpu"), "unknown device 'gpu'")):
        with pytest.raises(ValueError, match=match):
            make_runner(tiny, "fp32", "torch", **kw)


def _fp32_graph(cache, model):
    return cache / f"net1d-{model_fingerprint(model)[:16]}-fp32.onnx"


def test_broken_or_foreign_cached_graph_is_written_again(tiny, tmp_path):
    ref_s, _ = make_runner(tiny, "fp32", "torch")(X)
    other = tiny_model(seed=1)
    make_runner(other, "fp32", "onnxruntime", cache_dir=tmp_path / "other")
    foreign = _fp32_graph(tmp_path / "other", other).read_bytes()
    path = _fp32_graph(tmp_path, tiny)
    make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)
    whole = path.read_bytes()
    for content in (whole[: len(whole) // 2], b"", foreign):
        path.write_bytes(content)
        why = "belongs to other weights" if content == foreign else "is cut, empty or not ONNX"
        with pytest.warns(UserWarning, match=f"{why}; writing it again"):
            run = make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)
        assert np.abs(run(X)[0] - ref_s).max() <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound entry is used as it is
        make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)


def test_cached_graphs_are_keyed_by_the_release_and_recipe(tiny, tmp_path, monkeypatch):
    """Another release (or quantisation recipe) misses the cache and writes its graphs again, in
    place; the same release takes them as they are."""
    import ecgfounder
    import ecgfounder.runtime.graphs as graphs
    from ecgfounder.runtime.export import onnx_metadata_props

    def files():
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.glob("*.onnx")}

    make_runner(tiny, "int8", "onnxruntime", cache_dir=tmp_path, calibration=X[:2])
    first = files()
    assert len(first) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same release: both graphs used as they are
        make_runner(tiny, "int8", "onnxruntime", cache_dir=tmp_path, calibration=X[:2])
    assert files() == first
    monkeypatch.setattr(graphs, "INT8_SETTINGS", {**graphs.INT8_SETTINGS, "fp32_convs": 0})
    with pytest.warns(UserWarning) as said:  # another quantisation recipe: the int8 graph alone
        make_runner(tiny, "int8", "onnxruntime", cache_dir=tmp_path, calibration=X[:2])
    assert [str(w.message).split(" graph ")[0] for w in said] == ["cached int8"]
    assert "was made by another release or recipe (ecgfounder " in str(said[0].message)
    int8 = next(tmp_path.glob("*-int8-*.onnx"))
    mark = int8.with_name(f"{int8.stem}-ov.none")  # derived from the old graph (OpenVINO: no pad to move)
    mark.touch()
    monkeypatch.setattr(ecgfounder, "__version__", "99.0")
    with pytest.warns(UserWarning, match=r"was made by another release or recipe \(ecgfounder .*, opset 17\); "
                                          "writing it again") as said:
        run = make_runner(tiny, "int8", "onnxruntime", cache_dir=tmp_path, calibration=X[:2])
    assert len(said) == 2 and sorted(files()) == sorted(first)  # both rewritten, under the same names
    assert all(files()[k] != first[k] for k in first)
    assert all('"ecgfounder": "99.0"' in onnx_metadata_props(p)[graphs.RECIPE] for p in tmp_path.glob("*.onnx"))
    assert not mark.exists()  # it went with the graph it was made from
    assert run(X)[0].shape == (3, 150)


def test_graph_metadata_read_without_the_graph_equals_onnx_load(tiny, tmp_path):
    """The cache check walks the file's top-level fields (0.2 ms for the published model's 123-MB
    graph against 150-330 ms for onnx.load): the same metadata, and no answer for a cut file."""
    import onnx

    from ecgfounder.runtime.export import onnx_metadata_props as onnx_metadata

    make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)
    path = _fp32_graph(tmp_path, tiny)
    ref = {e.key: e.value for e in onnx.load(str(path)).metadata_props}
    assert onnx_metadata(path) == ref and ref["ecgfounder.fingerprint"] == model_fingerprint(tiny)
    whole = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    for n in (len(whole) - 1, len(whole) - len(whole) // 50, len(whole) // 2, 3, 0):
        cut.write_bytes(whole[:n])
        assert onnx_metadata(cut) is None, n
    cut.write_bytes(b"\xff" * 64)  # not protobuf
    assert onnx_metadata(cut) is None


def test_unwritable_cache_falls_back_with_a_warning(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="cannot write the fp32 graph to the cache folder"):
        run = make_runner(tiny, "fp32", "onnxruntime", cache_dir=blocker / "cache")
    assert run(X)[0].shape == (3, 150)


def test_writers_never_share_or_remove_another_process_file(tiny, tmp_path):
    """Two processes filling one cache: the export's temporary file has a name of its own, and the
    quantiser's shape-inferred copy (``*-inferred.onnx``) is no longer written, nor any other
    process's removed, beside the graphs."""
    path = _fp32_graph(tmp_path, tiny)
    theirs = path.with_name(f".{path.name}.partial")  # another process exporting the same graph
    theirs.write_bytes(b"half written")
    inferred = tmp_path / f"{path.stem}-inferred.onnx"  # another process quantising it
    inferred.write_bytes(b"in use")
    make_runner(tiny, "int8", "onnxruntime", cache_dir=tmp_path, calibration=X[:2])
    assert theirs.read_bytes() == b"half written" and inferred.read_bytes() == b"in use"
    assert len(list(tmp_path.glob("*-int8-*.onnx"))) == 1


def _fake_build(prec, be, calib):
    """Fake paths of the same outputs; every path but the reference slower by far (so which one wins
    never rests on timing noise: the choice was fp32/onnxruntime in one run, fp32/torch in the next)."""
    import time

    def run(x):
        if be != "torch":
            time.sleep(0.01)
        return np.full((len(x), 2), 0.5), np.ones((len(x), 3))
    return run


def test_auto_cache_entry_edited_or_unwritable(tmp_path, monkeypatch):
    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)
    w = np.zeros((2, 2, 10), np.float32)
    kw = dict(weights="w", cache_dir=tmp_path, batch=2, seconds=0.0, rounds=1, announce=None)
    first = choose_path(_fake_build, [("fp32", "onnxruntime")], w, **kw)
    entry = next((tmp_path / "auto").glob("*.json"))
    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({**data, "precision": "fp64", "backend": "tensorrt"}))  # not a path of this call
    again = choose_path(_fake_build, [("fp32", "onnxruntime")], w, **kw)
    assert not again.cached and again.name == first.name
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot cache the choice"):
        choice = choose_path(_fake_build, [("fp32", "onnxruntime")], w, **{**kw, "cache_dir": blocker})
    assert choice.name in ("fp32/torch", "fp32/onnxruntime")


def test_auto_cache_entries_that_are_not_choices(tmp_path, monkeypatch):
    """A cut, emptied or hand-edited entry: ``ecgfounder env`` lists the sound ones and no traceback;
    a choice whose figures are not numbers is measured again (its line could not be printed)."""
    from ecgfounder.runtime import auto_status

    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)
    w = np.zeros((2, 2, 10), np.float32)
    kw = dict(weights="w", cache_dir=tmp_path, batch=2, seconds=0.0, rounds=1, announce=None)
    choose_path(_fake_build, [("fp32", "onnxruntime")], w, **kw)
    entry = next((tmp_path / "auto").glob("*.json"))
    data = json.loads(entry.read_text())
    for i, bad in enumerate(("[]", "null", '"x"', json.dumps({**data, "identity": []}))):
        (tmp_path / "auto" / f"bad{i}.json").write_text(bad)
    assert [line.split(" at batch")[0] for line in auto_status(tmp_path)] == [data["precision"] + "/" + data["backend"]]
    figs = [{**f, "max_dprob": None, "ecg_per_s": "fast"} for f in data["figures"]]
    entry.write_text(json.dumps({**data, "figures": figs}))
    assert auto_status(tmp_path)[0].startswith("not measured yet")
    again = choose_path(_fake_build, [("fp32", "onnxruntime")], w, **kw)
    assert not again.cached and again.line()


def test_auto_runner_given_an_empty_batch_first_waits_for_real_windows(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)
    run = make_runner(tiny, "auto", "auto", cache_dir=tmp_path)
    s, f = run(X[:0])
    assert s.shape == (0, 150) and f.shape == (0, tiny.config.num_features) and s.dtype == f.dtype == np.float32
    assert run.choice is None and not (tmp_path / "auto").exists()
    with pytest.raises(ValueError, match=r"windows must be float32 \(n, 12, "):
        run(X[:0, :11])



def _small_graph(to) -> None:
    """A small ONNX graph (y = x + w, 4096 weights) with the metadata a cached graph carries."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])], [w])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "ecgfounder.fingerprint", "abc"
    onnx.save(model, str(to))


def test_a_cached_graph_altered_in_place_is_written_again(tmp_path, monkeypatch):
    """A graph whose weights were damaged or replaced in place kept its metadata and was used as it
    was; its size and SHA-256 as written are now checked (hashed once per state of the file)."""
    import os

    import ecgfounder.models.weights as weights
    import ecgfounder.runtime.graphs as graphs

    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "pkg"))
    path, expect, written = tmp_path / "net1d-abc-fp32.onnx", {graphs.FINGERPRINT: "abc"}, []

    def write(to):  # as fp32_graph exports (the same cache code around it)
        written.append(to)
        _small_graph(to)

    assert graphs.cached_graph(path, expect, write, "fp32") == path and len(written) == 1
    whole = path.read_bytes()
    middle = len(whole) // 2  # inside the weights: the metadata, at the end, still read
    damaged = whole[:middle] + bytes(64) + whole[middle + 64:]
    for content, why in ((damaged, r"is not the content it was written with \(SHA-256 "),
                         (whole + b"\xa2\x01\x00", r"is not the size it was written with \(\d+ bytes, written \d+\)")):
        path.write_bytes(content)
        assert graphs.onnx_metadata_props(path)[graphs.FINGERPRINT] == "abc"  # (what the cache checked)
        with pytest.warns(UserWarning, match=f"cached fp32 graph .*{why}.*; writing it again"):
            graphs.cached_graph(path, expect, write, "fp32")
        assert path.read_bytes() == whole
    path.with_name(path.name + ".sha256").unlink()
    with pytest.warns(UserWarning, match="has no record of its content"):
        graphs.cached_graph(path, expect, write, "fp32")
    assert len(written) == 4
    # a sound graph is hashed once per state of the file, in a new process too
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))  # (settled: written a while ago)
    hashed, real = [], weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p, *a, **k: hashed.append(p) or real(p, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            graphs._seen.clear()  # (what a new process knows)
            assert graphs.cached_graph(path, expect, write, "fp32") == path
            assert graphs.cached_graph(path, expect, write, "fp32") == path
    assert len(hashed) == 1 and len(written) == 4
