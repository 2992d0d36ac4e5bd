"""gru_cy.dask on a local cluster of two worker processes.

Predictions over dask arrays and bags are compared bit for bit with the
model run locally on the same blocks (and to rounding with one call over
everything); gradients and fits on the cluster against the local
estimator; faults by killing a worker process in the middle of a
computation. Every wait has a timeout, so a hang fails instead of blocking.
"""

import os
import pickle
import signal
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")

import gru_cy  # noqa: E402
import gru_cy.dask as gd  # noqa: E402

from helpers import same_bits  # noqa: E402

WAIT = 120  # seconds: the longest any one wait may take on a loaded machine

CELLS = [name for name in ("GRU", "LSTM", "RNN", "Jordan") if hasattr(gru_cy, name)]
ESTIMATORS = hasattr(gru_cy, "RNNClassifier") and hasattr(gru_cy, "RNNRegressor")
needs_estimators = pytest.mark.skipif(not ESTIMATORS, reason="gru_cy has no estimators")


def make_cell(name, I, dtype=np.float32, batch_first=False):
    """A small module of each cell with its less common options on."""
    kw = dict(batch_first=batch_first, dtype=dtype, seed=3)
    if name == "GRU":
        return gru_cy.GRU(I, 6, num_layers=2, bidirectional=True, **kw)
    if name == "LSTM":
        return gru_cy.LSTM(I, 6, bidirectional=True, proj_size=4, **kw)
    if name == "RNN":
        return gru_cy.RNN(I, 6, num_layers=2, nonlinearity="relu", **kw)
    return gru_cy.Jordan(I, 6, 3, **kw)


def first(result):
    return result[0] if isinstance(result, tuple) else result


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on loopback, started once.

    The workers import the gru_cy this session imports (its folder goes
    first on their PYTHONPATH). A killed worker's nanny starts a new one;
    on a loaded machine that can take longer than the 15 s after which the
    cluster would give the worker up, hence the longer lost-worker timeout.
    """
    src = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": f"{WAIT}s"}):
        with distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=":0", silence_logs=50, env={"PYTHONPATH": path}) as cluster:
            with distributed.Client(cluster, timeout=WAIT) as client:
                client.wait_for_workers(2, timeout=WAIT)
                yield client


def compute(client, collection):
    return client.compute(collection).result(timeout=WAIT)


# ---------------------------------------------------------------------------
# predict: modules


@pytest.mark.parametrize("name", CELLS)
def test_predict_array_module_equals_local_blocks(client, name):
    rng = np.random.default_rng(0)
    m = make_cell(name, 5)
    T, B = 9, 31
    x = rng.standard_normal((T, B, 5)).astype(np.float32)
    lengths = rng.integers(0, T + 1, B)
    lengths[3] = T
    chunks = (10, 1, 8, 12)  # uneven, one of a single sequence
    X = da.from_array(x, chunks=(T, chunks, 5))
    pred = gd.predict(m, X, lengths=lengths)
    assert pred.dtype == np.float32 and pred.chunks[1] == chunks
    got = compute(client, pred)
    bounds = np.cumsum((0,) + chunks)
    local = np.concatenate([first(m(x[:, a:b], lengths=lengths[a:b]))
                            for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    assert same_bits(got, local)
    np.testing.assert_allclose(got, first(m(x, lengths=lengths)), rtol=1e-5, atol=1e-6)
    # without lengths (every sequence T steps)
    got = compute(client, gd.predict(m, X))
    local = np.concatenate([first(m(x[:, a:b])) for a, b in zip(bounds[:-1], bounds[1:])],
                           axis=1)
    assert same_bits(got, local)


def test_predict_array_batch_first_float64(client):
    rng = np.random.default_rng(1)
    m = make_cell("GRU", 4, dtype=np.float64, batch_first=True)
    x = rng.standard_normal((20, 7, 4))  # (B, T, I)
    lengths = da.from_array(rng.integers(1, 8, 20), chunks=7)  # rechunked to X's chunks
    X = da.from_array(x, chunks=(6, 7, 4))
    got = compute(client, gd.predict(m, X, lengths=lengths))
    L = lengths.compute()
    local = np.concatenate([m(x[a:a + 6], lengths=L[a:a + 6])[0] for a in range(0, 20, 6)])
    assert got.dtype == np.float64 and same_bits(got, local)


def padded_partition(seqs, I):
    """Time-major zero-padded batch of a partition, as a user would build it."""
    lengths = np.array([len(s) for s in seqs])
    x = np.zeros((max(lengths.max(), 0), len(seqs), I), dtype=np.float32)
    for b, s in enumerate(seqs):
        x[:len(s), b] = s
    return x, lengths


@pytest.mark.parametrize("name", CELLS)
def test_predict_bag_module_equals_local_partitions(client, name):
    rng = np.random.default_rng(2)
    m = make_cell(name, 3)
    seqs = [rng.standard_normal((int(n), 3)).astype(np.float32)
            for n in rng.integers(0, 12, 23)]
    seqs[0] = rng.standard_normal((15, 3)).astype(np.float32)
    bag = db.from_sequence(seqs, partition_size=6)
    got = compute(client, gd.predict(m, bag))
    assert len(got) == len(seqs)
    expected = []
    for start in range(0, len(seqs), 6):
        part = seqs[start:start + 6]
        x, lengths = padded_partition(part, 3)
        out = first(m(x, lengths=lengths))
        expected += [out[:n, b] for b, n in enumerate(lengths)]
    for g, e, s in zip(got, expected, seqs):
        assert g.shape == (len(s), e.shape[-1]) and same_bits(g, e)
        # each sequence alone (to rounding: other batch sizes, other BLAS kernels)
        np.testing.assert_allclose(g, first(m(s)), rtol=1e-5, atol=1e-6)


def test_model_is_one_node_of_the_graph():
    """Pickled once, not once per chunk: the graph of 8 blocks weighs about
    one model, not eight."""
    m = gru_cy.GRU(16, 128, num_layers=2, seed=0)
    model_bytes = len(pickle.dumps(m))
    X = da.ones((5, 64, 16), chunks=(5, 8, 16), dtype=np.float32)
    graph = dict(gd.predict(m, X).__dask_graph__())
    assert model_bytes < len(pickle.dumps(graph)) < 1.5 * model_bytes
    bag = db.from_sequence([np.ones((3, 16))] * 8, npartitions=8)
    graph = dict(gd.predict(m, bag).__dask_graph__())
    assert len(pickle.dumps(graph)) < 1.5 * model_bytes


def test_import_gru_cy_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, gru_cy; assert not any(m.split('.')[0] in ('dask', 'distributed') " \
           "for m in sys.modules), sorted(m for m in sys.modules if 'dask' in m)"
    src = os.path.dirname(os.path.dirname(os.path.abspath(gru_cy.__file__)))
    env = dict(os.environ, PYTHONPATH=src)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=WAIT)


def test_predict_errors():
    m = gru_cy.GRU(3, 4)
    x = da.zeros((5, 10, 3), chunks=(5, 5, 3))
    with pytest.raises(ValueError, match=r"chunked along the samples only \(axis 1 of \(T, B, I\)\)"
                       r".*rechunk\(\{0: -1, 2: -1\}\)"):
        gd.predict(m, da.zeros((6, 10, 3), chunks=(3, 5, 3)))
    with pytest.raises(ValueError, match=r"3-D dask array \(T, B, I\).*got 2-D"):
        gd.predict(m, da.zeros((5, 3)))
    with pytest.raises(TypeError, match="X must be a dask array or a dask bag, got ndarray"):
        gd.predict(m, np.zeros((5, 10, 3)))
    with pytest.raises(TypeError, match="model must be a fitted gru_cy estimator"):
        gd.predict(object(), x)
    with pytest.raises(ValueError, match="lengths must have one entry per sequence: expected "
                                         "10, got 9"):
        gd.predict(m, x, lengths=np.ones(9, dtype=int))
    with pytest.raises(ValueError, match="lengths is for dask arrays"):
        gd.predict(m, db.from_sequence([np.zeros((2, 3))]), lengths=[2])
    with pytest.raises(ValueError, match="method is for estimators"):
        gd.predict(m, x, method="predict_proba")
    # the module's own check, before anything is computed
    with pytest.raises(ValueError, match="input_size"):
        gd.predict(m, da.zeros((5, 10, 4), chunks=(5, 5, 4)))


def test_bag_of_bad_sequences_raises_on_compute(client):
    m = gru_cy.GRU(3, 4)
    bag = db.from_sequence([np.zeros((2, 3)), np.zeros((4, 2))], npartitions=1)
    with pytest.raises(ValueError, match=r"sequence 1 of its partition has shape \(4, 2\)"):
        compute(client, gd.predict(m, bag))


# ---------------------------------------------------------------------------
# estimators: predict, gradients, fit


def fitted_classifier(x, y, **kw):
    params = dict(hidden_size=5, batch_size=16, max_iter=2, random_state=0)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gru_cy.RNNClassifier(**params).fit(x, y)


@needs_estimators
def test_predict_estimator_array_and_bag(client):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 6, 2)).astype(np.float32)
    y = np.where(x[:, :, 0].sum(1) > 0, "up", "down")
    clf = fitted_classifier(x, y)
    X = da.from_array(x, chunks=(15, 6, 2))
    got = compute(client, gd.predict(clf, X))
    assert got.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(
        got, np.concatenate([clf.predict(x[a:a + 15]) for a in range(0, 40, 15)]))
    proba = compute(client, gd.predict(clf, X, method="predict_proba"))
    assert proba.shape == (40, 2)
    local = np.concatenate([clf.predict_proba(x[a:a + 15]) for a in range(0, 40, 15)])
    assert same_bits(proba, local)
    seqs = [x[i, :int(n)] for i, n in enumerate(rng.integers(1, 7, 40))]
    got = compute(client, gd.predict(clf, db.from_sequence(seqs, partition_size=9)))
    local = np.concatenate([clf.predict(seqs[a:a + 9]) for a in range(0, 40, 9)])
    np.testing.assert_array_equal(np.asarray(got), local)


def float64_problem(n=70, seed=5, T=6, F=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, F))
    y = (x[:, :, 0].mean(1) > 0).astype(int) + (x[:, -1, 1] > 1)
    return x, y


@needs_estimators
def test_gradient_across_workers_equals_local(client):
    x, y = float64_problem()
    kw = dict(hidden_size=5, random_state=1, dtype=np.float64, cell="gru")
    local = gru_cy.RNNClassifier(**kw)
    local._initialize(3, np.unique(y), None)
    loss, grads = local._loss_and_grads(local._encode(x, y))
    dist = gru_cy.RNNClassifier(**kw)
    dloss, dgrads = gd._gradients(dist, da.from_array(x, chunks=(20, 6, 3)), y, client,
                                  timeout=WAIT)
    assert sorted(dgrads) == sorted(grads)
    assert abs(dloss - loss) <= 1e-10 * abs(loss)
    for key in grads:
        np.testing.assert_allclose(dgrads[key], grads[key], rtol=0, atol=1e-10, err_msg=key)
        assert np.abs(grads[key]).max() > 1e-6, key  # the comparison has something to compare


def assert_same_fit(dist, local, rtol=1e-9):
    assert dist.n_iter_ == local.n_iter_ and dist.t_ == local.t_
    np.testing.assert_allclose(dist.loss_curve_, local.loss_curve_, rtol=rtol)
    wl, wd = local._get_weights(), dist._get_weights()
    assert sorted(wl) == sorted(wd)
    for key in wl:
        np.testing.assert_allclose(wd[key], wl[key], rtol=rtol, atol=rtol, err_msg=key)


@needs_estimators
def test_fit_classifier_array_equals_local_fit(client, capsys):
    x, y = float64_problem(n=83)
    kw = dict(hidden_size=5, batch_size=16, max_iter=6, random_state=2, dtype=np.float64,
              alpha=1e-3, tol=1e9, n_iter_no_change=2)  # stops after 4 epochs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither run may warn: both stop on tol
        local = gru_cy.RNNClassifier(**kw).fit(x, y)
        dist = gd.fit(gru_cy.RNNClassifier(**kw, verbose=True),
                      da.from_array(x, chunks=(30, 6, 3)), da.from_array(y, chunks=50),
                      client=client, timeout=WAIT)
    assert local.n_iter_ == 4
    assert_same_fit(dist, local)
    np.testing.assert_array_equal(dist.classes_, local.classes_)
    out = capsys.readouterr()
    assert "loss" in out.out + out.err and "did not improve" in out.out


@needs_estimators
def test_fit_regressor_bag_unequal_lengths_equals_local_fit(client):
    rng = np.random.default_rng(6)
    seqs = [rng.standard_normal((int(n), 2)) for n in rng.integers(1, 10, 61)]
    y = np.stack([[s[:, 0].sum(), s[-1, 1]] for s in seqs])
    kw = dict(hidden_size=4, batch_size=10, max_iter=3,
              random_state=3, dtype=np.float64, pooling="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = gru_cy.RNNRegressor(**kw).fit(seqs, y)
        dist = gd.fit(gru_cy.RNNRegressor(**kw), db.from_sequence(seqs, npartitions=4),
                      db.from_sequence(list(y), npartitions=4), client=client, timeout=WAIT)
    assert_same_fit(dist, local)
    assert dist.n_outputs_ == 2
    pred = np.stack(compute(client, gd.predict(dist, db.from_sequence(seqs, 3))))
    np.testing.assert_allclose(pred, local.predict(seqs), rtol=1e-9, atol=1e-12)


@needs_estimators
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fit_early_stopping_equals_local_fit(client, kind):
    x, y = float64_problem(n=90, seed=9)
    kw = dict(hidden_size=4, batch_size=16, max_iter=8, random_state=6, dtype=np.float64,
              early_stopping=True, validation_fraction=0.25, n_iter_no_change=1, tol=0.5)
    cls = gru_cy.RNNClassifier if kind == "classifier" else gru_cy.RNNRegressor
    y = y if kind == "classifier" else x[:, :, 0].sum(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = cls(**kw).fit(x, y)
        dist = gd.fit(cls(**kw), da.from_array(x, chunks=(25, 6, 3)), y, client=client,
                      timeout=WAIT)
    assert local.n_iter_ < 8  # stopped on the validation score
    np.testing.assert_allclose(dist.validation_scores_, local.validation_scores_, rtol=1e-9)
    assert dist.best_validation_score_ == pytest.approx(local.best_validation_score_, 1e-9)
    assert_same_fit(dist, local)  # with the best epoch's weights restored


@needs_estimators
def test_fit_token_ids_vocabulary_from_every_piece(client):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 10, (48, 5))
    ids[-1, 0] = 20  # the largest id only in the last piece
    y = ids[:, 0] % 2
    kw = dict(embedding_dim=3, hidden_size=4, batch_size=12, max_iter=2, random_state=4,
              dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = gru_cy.RNNClassifier(**kw).fit(ids, y)
        dist = gd.fit(gru_cy.RNNClassifier(**kw), da.from_array(ids, chunks=(16, 5)), y,
                      client=client, timeout=WAIT)
    assert dist.network_[0].params["weight"].shape[0] == 21
    assert_same_fit(dist, local)


@needs_estimators
def test_fit_errors(client):
    x, y = float64_problem(n=20)
    X = da.from_array(x, chunks=(10, 6, 3))
    clf = gru_cy.RNNClassifier(hidden_size=3, max_iter=1)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[20, 19\]"):
        gd.fit(clf, X, y[:19], client=client, timeout=WAIT)
    with pytest.raises(TypeError, match="X must be a dask array or a dask bag of sequences"):
        gd.fit(clf, x, y, client=client)
    with pytest.raises(ValueError, match="chunked along the samples only"):
        gd.fit(clf, X.rechunk((10, 3, 3)), y, client=client)
    with pytest.raises(TypeError, match="RNNClassifier or RNNRegressor"):
        gd.fit(object(), X, y, client=client)
    with pytest.raises(ValueError, match="timeout must be None or a positive number"):
        gd.fit(clf, X, y, client=client, timeout=0)
    with pytest.raises(TimeoutError, match=r"gru_cy.dask.fit: .* did not finish within "
                                           r"timeout=1e-06 s"):
        gd.fit(clf, X, y, client=client, timeout=1e-6)
    # the estimator's own errors from the workers, as they are
    with pytest.raises(ValueError, match="Input y contains NaN|contains NaN"):
        gd.fit(gru_cy.RNNRegressor(hidden_size=3, max_iter=1), X,
               np.where(np.arange(20) == 13, np.nan, 1.0), client=client, timeout=WAIT)


@needs_estimators
def test_gridsearch_under_joblib_dask_backend(client):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    x, y = float64_problem(n=40)
    grid = {"hidden_size": [2, 4], "batch_size": [8, 20]}
    est = gru_cy.RNNClassifier(max_iter=2, random_state=0, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = GridSearchCV(est, grid, cv=2).fit(x, y)
        with joblib.parallel_backend("dask", wait_for_workers_timeout=WAIT):
            dist = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(x, y)
    np.testing.assert_array_equal(dist.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert dist.best_params_ == local.best_params_


# ---------------------------------------------------------------------------
# faults (last: they restart a worker)


def kill_a_worker(client, busy=True):
    """SIGKILL one worker process (one running a task when busy); its nanny
    starts a new one."""
    pids = client.run(os.getpid, nanny=False)
    victim = None
    if busy:
        processing = client.processing()
        victim = next((addr for addr, keys in processing.items() if keys and addr in pids), None)
    victim = victim or sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    return victim


def wait_for_two_workers(client):
    deadline = time.monotonic() + WAIT
    while len(client.scheduler_info(n_workers=-1)["workers"]) < 2:
        assert time.monotonic() < deadline, "the killed worker was not restarted"
        time.sleep(0.2)


def test_worker_killed_during_predict(client):
    rng = np.random.default_rng(8)
    m = gru_cy.GRU(16, 64, num_layers=2, seed=1)
    x = rng.standard_normal((400, 64, 16)).astype(np.float32)
    X = da.from_array(x, chunks=(400, 4, 16))  # 16 blocks of about 0.1 s each
    futures = client.compute(list(gd.predict(m, X).to_delayed().ravel()))
    distributed.wait(futures, timeout=WAIT, return_when="FIRST_COMPLETED")
    assert not all(f.done() for f in futures), "too fast to kill anything in the middle"
    kill_a_worker(client)
    distributed.wait(futures, timeout=WAIT)
    got = np.concatenate([f.result(timeout=WAIT) for f in futures], axis=1)
    local = np.concatenate([m(x[:, a:a + 4])[0] for a in range(0, 64, 4)], axis=1)
    assert same_bits(got, local)
    wait_for_two_workers(client)


@needs_estimators
def test_worker_killed_during_fit(client):
    x, y = float64_problem(n=120)
    kw = dict(hidden_size=6, batch_size=16, max_iter=2, random_state=5, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = gru_cy.RNNClassifier(**kw).fit(x, y)
    dist = gru_cy.RNNClassifier(**kw)
    killed = []

    def killer():
        # once training runs (the client has applied a few steps)
        deadline = time.monotonic() + WAIT
        while getattr(dist, "t_", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed.append((dist.t_, kill_a_worker(client)))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gd.fit(dist, da.from_array(x, chunks=(40, 6, 3)), y, client=client, timeout=WAIT)
    thread.join(WAIT)
    assert killed and killed[0][0] < dist.t_, "the worker died after the fit had ended"
    # the engine recomputed the lost pieces from their graph: the same model
    assert_same_fit(dist, local)


@needs_estimators
def test_workers_killed_during_fit_with_lost_scattered_data_raise(client):
    """Scattered data have no graph to recompute them from: when every
    worker dies, fit stops with an error that says where, and never hangs.
    (With one worker killed the fit may still finish: the pieces it needs
    may have been encoded on the other one.)"""
    wait_for_two_workers(client)
    x, y = float64_problem(n=96)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    pieces = [client.scatter(x[:48], workers=[workers[0]]),
              client.scatter(x[48:], workers=[workers[1]])]
    X = da.concatenate([da.from_delayed(p, shape=(48, 6, 3), dtype=x.dtype) for p in pieces])
    dist = gru_cy.RNNClassifier(hidden_size=4, batch_size=16, max_iter=3, random_state=0,
                                dtype=np.float64)

    def killer():
        deadline = time.monotonic() + WAIT
        while getattr(dist, "t_", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in client.run(os.getpid).values():
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with pytest.raises(RuntimeError, match=r"(?s)gru_cy.dask.fit: epoch \d+, step \d+ failed on "
                                           r"the cluster .*keeps the weights of its last "
                                           r"completed step \(t_=\d+\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gd.fit(dist, X, y, client=client, timeout=WAIT)
    thread.join(WAIT)
    assert 3 <= dist.t_ < 3 * 6
