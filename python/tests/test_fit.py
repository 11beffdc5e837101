"""What a fit promises: a certificate that numpy can check, the recovered
heads, every program, every input layout, clear errors."""

import json
import math
import threading
import time

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import convexformer as cf
from conftest import planted


def objective(X, y, coef, intercept, beta):
    """The scalar / vector-l1 objective, computed here from the coefficients:
    1/2 sum (yhat - y)^2 + beta * sum over (token, output) of ||Z||_2."""
    N = X.shape[0]
    yhat = np.einsum("ikd,kcd->ic", X, coef) + intercept
    y2 = y.reshape(N, -1)
    return 0.5 * np.sum((yhat - y2) ** 2) + beta * np.linalg.norm(coef, axis=2).sum()


def test_the_certificate_holds_in_numpy(data):
    X, y = data
    est = cf.ConvexAttentionRegressor(beta_frac=0.05, tol=1e-9).fit(X, y)
    assert est.converged_ and 0 <= est.relative_gap_ <= 1e-9
    assert est.dual_objective_ <= est.objective_
    P = objective(X, y, est.coef_, est.intercept_, est.beta_)
    assert abs(P - est.objective_) <= 1e-9 * abs(P)
    # KKT of the group lasso over tokens: X_k^T r = -beta Z_k/||Z_k|| on the
    # support, ||X_k^T r|| <= beta elsewhere (r = yhat - y).
    r = est.predict(X) - y
    G = np.einsum("ikd,i->kd", X, r)
    Z = est.coef_[:, 0]
    for k in range(X.shape[1]):
        nz = np.linalg.norm(Z[k])
        if nz > 0:
            np.testing.assert_allclose(G[k], -est.beta_ * Z[k] / nz, atol=1e-3 * est.beta_)
        else:
            assert np.linalg.norm(G[k]) <= est.beta_ * (1 + 1e-3)
    assert est.active_tokens_.tolist() == [1, 6]
    # The recovered heads: one-hot attention on the active tokens, and the
    # nonconvex objective equal to the convex one.
    assert sorted(int(np.argmax(h["attention"])) for h in est.heads_) == [1, 6]
    assert est.recovery_relative_difference_ <= 1e-9
    assert abs(est.nonconvex_objective_ - est.objective_) <= 1e-9 * est.objective_


def test_layouts_and_dtypes_give_the_same_fit(data):
    X, y = data
    ref = cf.ConvexAttentionRegressor(tol=1e-10).fit(X, y)
    N, n, d = X.shape
    same = [
        cf.ConvexAttentionRegressor(tol=1e-10).fit(np.asfortranarray(X), y),
        cf.ConvexAttentionRegressor(tol=1e-10, n_tokens=n).fit(X.reshape(N, n * d), y),
        cf.ConvexAttentionRegressor(tol=1e-10).fit(X[:, :, ::-1][:, :, ::-1], y),
    ]
    for est in same:
        np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=1e-12)
    f32 = cf.ConvexAttentionRegressor(tol=1e-10).fit(X.astype(np.float32), y)
    np.testing.assert_allclose(f32.objective_, ref.objective_, rtol=1e-5)
    np.testing.assert_allclose(
        same[1].predict(X.reshape(N, n * d)), ref.predict(X), rtol=0, atol=1e-10
    )


def test_the_core_reads_fortran_ordered_arrays_in_logical_order(data):
    # The estimators pass C-ordered arrays; the core itself must not read an
    # F-contiguous buffer in memory order either (X and warm starts).
    X, y = data
    config = cf.ConvexAttentionRegressor(tol=1e-10)._config("squared", 1)
    ref, _ = cf._core.fit(np.ascontiguousarray(X), y, config)
    f, _ = cf._core.fit(np.asfortranarray(X), y, config)
    np.testing.assert_allclose(f.coef, ref.coef, rtol=0, atol=1e-12)
    warm, report = cf._core.fit(
        X, y, config, warm_coef=np.asfortranarray(ref.coef), warm_intercept=ref.intercept
    )
    assert json.loads(report)["iterations"] <= 1
    np.testing.assert_allclose(warm.coef, ref.coef, rtol=0, atol=1e-12)


def test_c_ordered_float64_is_read_in_place_and_nothing_else(data):
    X, y = data
    N, n, d = X.shape
    C = np.ascontiguousarray(X)
    assert cf._core.reads_in_place(C) and cf._core.reads_in_place(C.reshape(N, n, d))
    assert cf._core.reads_in_place(C[10:20])  # a C-contiguous slice of samples
    for other in (np.asfortranarray(X), C[:, ::2], C.astype(np.float32), C[:, :, ::-1]):
        assert not cf._core.reads_in_place(other)
    # A fit on a view of a larger buffer reads only its own samples.
    big = np.concatenate([C, 1e6 * np.ones_like(C)])
    np.testing.assert_array_equal(
        cf.ConvexAttentionRegressor().fit(big[:N], y).coef_,
        cf.ConvexAttentionRegressor().fit(C.copy(), y).coef_,
    )
    with pytest.raises(TypeError, match="float64 or float32"):
        cf._core.reads_in_place(C.astype(np.int64))


@pytest.mark.parametrize("model", ["vector-l1", "vector-l2", "gated"])
def test_every_program_fits_multi_output_targets(model):
    X, y = planted(N=200, n=6, d=3, active=(1, 4))
    Y = np.column_stack([y, -0.5 * y + X[:, 0, 0]])
    est = cf.ConvexAttentionRegressor(model=model, n_gates=3, beta_frac=0.02).fit(X, Y)
    assert est.converged_ and est.relative_gap_ <= 1e-6
    assert est.predict(X).shape == (200, 2)
    assert est.recovery_relative_difference_ <= 1e-9
    assert est.score(X, Y) > 0.8
    blocks = 6 * (3 if model == "gated" else 1)
    assert est.coef_.shape == (blocks, 2, 3)


def test_classifiers_binary_and_multiclass():
    X, y = planted(N=300)
    yb = np.where(y > 0, "yes", "no")
    clf = cf.ConvexAttentionClassifier(beta_frac=0.05).fit(X, yb)
    assert clf.converged_ and clf.classes_.tolist() == ["no", "yes"]
    assert clf.score(X, yb) > 0.9
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (clf.predict(X) == clf.classes_[p.argmax(axis=1)]).all()
    y3 = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    clf3 = cf.ConvexAttentionClassifier(beta_frac=0.05).fit(X, y3)
    assert clf3.converged_ and clf3.predict_proba(X).shape == (300, 3)
    assert clf3.score(X, y3) > 0.8
    assert set(clf3.active_tokens_.tolist()) >= {1, 6}


@pytest.mark.parametrize("solver", ["auto", "fista", "prox-newton", "cd"])
def test_every_solver_certifies_the_same_classifier(solver):
    X, y = planted(N=300)
    y3 = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    ref = cf.ConvexAttentionClassifier(beta_frac=0.05, tol=1e-9, solver="fista").fit(X, y3)
    clf = cf.ConvexAttentionClassifier(beta_frac=0.05, tol=1e-7, solver=solver).fit(X, y3)
    assert clf.converged_ and clf.relative_gap_ <= 1e-7
    # Both certificates bracket the one optimum.
    assert clf.dual_objective_ <= ref.objective_ + 1e-9 * abs(ref.objective_)
    assert abs(clf.objective_ - ref.objective_) <= 2e-7 * abs(ref.objective_)


def test_huber_regression_resists_outliers():
    X, y = planted(N=300)
    y_out = y.copy()
    y_out[::25] += 50.0
    sq = cf.ConvexAttentionRegressor(beta_frac=0.02).fit(X, y_out)
    hub = cf.ConvexAttentionRegressor(loss="huber:1.0", beta_frac=0.02).fit(X, y_out)
    assert hub.converged_
    clean = np.ones(300, bool)
    clean[::25] = False
    err = lambda e: np.mean((e.predict(X)[clean] - y[clean]) ** 2)  # noqa: E731
    assert err(hub) < 0.5 * err(sq)


def test_path_matches_single_fits_and_starts_empty(data):
    X, y = data
    p = cf.attention_path(X, y, n_betas=5, ratio=0.01, tol=1e-9)
    assert len(p.betas) == 5 and np.all(np.diff(p.betas) < 0)
    assert p.betas[0] == pytest.approx(p.beta_max)
    assert p.active_tokens[0].size == 0 and p.converged.all()
    assert np.all(np.diff(p.objectives) < 0)
    for k in (1, 4):
        one = cf.ConvexAttentionRegressor(beta=p.betas[k], tol=1e-9).fit(X, y)
        assert one.objective_ == pytest.approx(p.objectives[k], rel=1e-8)
        np.testing.assert_allclose(p.models[k].predict(X), one.predict(X)[:, None], atol=1e-5)
    est = cf.ConvexAttentionClassifier()
    pc = est.path(X, y > 0, n_betas=3)
    assert pc.coefs.shape == (3, 10, 1, 4) and pc.converged.all()


def test_cross_validation_picks_a_beta_on_the_path(data):
    X, y = data
    cv = cf.ConvexAttentionRegressorCV(n_betas=6, cv=3).fit(X, y)
    assert cv.best_beta_ in cv.betas_ and cv.cv_scores_.shape == (6, 3)
    # With little noise the least regularized betas predict best.
    assert cv.best_beta_ <= cv.betas_[2]
    assert cv.converged_ and cv.beta_ == cv.best_beta_
    assert cv.path(X, y, n_betas=3).converged.all()
    clf = cf.ConvexAttentionClassifierCV(n_betas=4, cv=3).fit(X, y > 0)
    assert clf.cv_scores_.shape == (4, 3) and clf.score(X, y > 0) > 0.9


def test_warm_start_starts_from_the_last_fit(data):
    X, y = data
    est = cf.ConvexAttentionRegressor(beta_frac=0.05, warm_start=True, tol=1e-8).fit(X, y)
    cold = est.n_iter_
    est.fit(X, y)
    assert est.converged_ and est.n_iter_ <= 1 < cold


def test_budget_stops_warn_and_still_bound_the_optimum(data):
    X, y = data
    full = cf.ConvexAttentionRegressor(beta_frac=0.01, tol=1e-10).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="not certified"):
        short = cf.ConvexAttentionRegressor(beta_frac=0.01, max_iter=2, tol=1e-12,
                                            solver="fista").fit(X, y)
    assert not short.converged_ and short.stop_reason_ == "max-iter"
    assert short.dual_objective_ <= full.objective_ + 1e-9
    assert short.objective_ >= full.dual_objective_ - 1e-9


def hard(N=6000, n=48, d=24, seed=3):
    return planted(N=N, n=n, d=d, active=tuple(range(0, n, 3)), noise=0.5, seed=seed, rho=0.8)


def test_two_threads_fit_at_once_and_the_gil_is_released():
    X, y = hard()
    t0 = time.perf_counter()
    serial = cf.ConvexAttentionRegressor(beta_frac=0.01, fit_intercept=False).fit(X, y)
    # Enough fits per thread that the run lasts about half a second or
    # more, however fast this machine solves one.
    reps = max(1, math.ceil(0.5 / (time.perf_counter() - t0)))
    out = [None, None]

    def work(i):
        for _ in range(reps):
            out[i] = cf.ConvexAttentionRegressor(beta_frac=0.01, fit_intercept=False).fit(X, y)

    # While the fits run, this thread keeps running Python: the largest gap
    # between its ticks is far below a fit's time only if the GIL is free.
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    ticks = [time.perf_counter()]
    while any(t.is_alive() for t in threads):
        ticks.append(time.perf_counter())
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for est in out:
        assert est.converged_
        np.testing.assert_allclose(est.coef_, serial.coef_, atol=1e-12)
    assert elapsed > 0.2, "the instance is too small to show anything"
    assert np.max(np.diff(ticks)) < 0.25 * elapsed


def test_ctrl_c_interrupts_a_fit():
    import os
    import signal

    X, y = hard(N=8000, n=64, d=32, seed=5)
    est = cf.ConvexAttentionRegressor(beta_frac=0.001, tol=1e-15, solver="fista",
                                      max_seconds=60)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    timer.join()
    assert time.perf_counter() - start < 10
    assert not hasattr(est, "model_")


def test_save_load_and_pickle(tmp_path, data):
    import pickle

    X, y = data
    est = cf.ConvexAttentionRegressor(model="gated", n_gates=2).fit(X, y)
    path = tmp_path / "model.safetensors"
    est.model_.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        est.model_.save(path)
    est.model_.save(path, overwrite=True)
    back = cf.Model.load(path)
    np.testing.assert_array_equal(back.predict(X), est.model_.predict(X))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert again.heads_[0]["gate"] is not None
    with pytest.raises(ValueError, match="safetensors"):
        cf.Model.from_bytes(b"not a model")
    with pytest.raises(OSError):
        cf.Model.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda X, y: (np.where(X > 2, np.nan, X), y), ValueError, "NaN"),
        (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
        (lambda X, y: (X[..., None], y), ValueError, "4-D|dimension"),
        (lambda X, y: (np.full(X.shape, "a"), y), ValueError, "convert|float"),
    ],
)
def test_bad_data_is_refused_clearly(data, make, exc, match):
    Xb, yb = make(*data)
    with pytest.raises(exc, match=match):
        cf.ConvexAttentionRegressor().fit(Xb, yb)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"beta": -1.0}, "beta must be a positive finite number"),
        ({"beta_frac": 0.0}, "beta_frac must be a positive number"),
        ({"beta": None, "beta_frac": None}, "give beta or beta_frac"),
        ({"tol": 0.0}, "tol must be a positive number"),
        ({"model": "transformer"}, "model must be one of"),
        ({"loss": "logistic"}, "loss must be 'squared'"),
        ({"loss": "huber:-1"}, "huber threshold"),
        ({"solver": "newton"}, "unknown solver 'newton'"),
        ({"max_seconds": 0}, "max_seconds must be positive"),
        ({"n_tokens": 7}, "not a multiple of n_tokens=7|n_tokens=7"),
        ({"gate_kind": "uniform", "model": "gated"}, "unknown gate kind"),
    ],
)
def test_bad_settings_are_refused_clearly(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        cf.ConvexAttentionRegressor(**params).fit(X, y)


def test_prediction_inputs_are_checked(data):
    X, y = data
    est = cf.ConvexAttentionRegressor().fit(X, y)
    with pytest.raises(ValueError, match="fitted on 10 of 4"):
        est.predict(X[:, :, :3])
    with pytest.raises(ValueError):
        est.predict(X[:, :5])
    with pytest.raises(ValueError, match="2 classes"):
        cf.ConvexAttentionClassifier().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="scalar program has one output"):
        cf.ConvexAttentionClassifier(model="scalar").fit(X, np.arange(len(y)) % 3)
    with pytest.raises(TypeError, match="float64"):
        cf._core.fit(X.astype(np.int32), y, cf.ConvexAttentionRegressor()._config("squared", 1))


def planted_sequence(N=200, n=5, d=3, seed=0):
    """y[i, r] = v . x_{i, src(r)}: one head whose mixing row r reads token src(r)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n, d))
    src = rng.integers(0, n, size=n)
    v = rng.standard_normal(d)
    y = X[:, src] @ v + 0.01 * rng.standard_normal((N, n))
    return X, y, src


def test_the_sequence_program_fits_outputs_at_every_position(tmp_path):
    import pickle

    X, y, src = planted_sequence()
    est = cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False, beta_frac=0.02)
    est.fit(X, y)
    assert est.converged_ and est.relative_gap_ <= 1e-6
    assert est.recovery_relative_difference_ <= 1e-9
    assert est.predict(X).shape == y.shape and est.score(X, y) > 0.95
    assert est.coef_.shape == (3, 1, 5, 5)
    assert set(est.active_tokens_.tolist()) == set(src.tolist())
    h = est.heads_[0]
    np.testing.assert_allclose(h["mixing"].sum(axis=1), 1.0)
    Y3 = np.stack([y, -y], axis=2)
    est3 = cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False).fit(X, Y3)
    assert est3.predict(X).shape == (200, 5, 2)
    est.model_.save(tmp_path / "seq.safetensors")
    back = cf.Model.load(tmp_path / "seq.safetensors")
    np.testing.assert_array_equal(back.predict(X), est.model_.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))
    with pytest.raises(ValueError, match="fits no intercept"):
        cf.ConvexAttentionRegressor(model="sequence").fit(X, y)
    with pytest.raises(ValueError, match="target per position"):
        cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False).fit(X, y[:, 0])
    with pytest.raises(ValueError, match="label per position"):
        cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False).fit(X, y[:, 0] > 0)


def test_the_sequence_path_matches_single_fits_and_starts_empty():
    X, y, src = planted_sequence(N=150, seed=3)
    est = cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False, tol=1e-9)
    p = est.path(X, y, n_betas=4, ratio=0.02)
    assert len(p.betas) == 4 and np.all(np.diff(p.betas) < 0) and p.converged.all()
    assert p.betas[0] == pytest.approx(p.beta_max)
    assert p.coefs.shape == (4, 3, 1, 5, 5) and p.intercepts.shape == (4, 1)
    assert p.active_tokens[0].size == 0 and np.all(p.coefs[0] == 0)
    assert set(p.active_tokens[-1].tolist()) == set(src.tolist())
    assert np.all(np.diff(p.objectives) < 0)
    for k in (1, 3):
        one = cf.ConvexAttentionRegressor(model="sequence", fit_intercept=False, tol=1e-9,
                                          beta=p.betas[k]).fit(X, y)
        assert one.objective_ == pytest.approx(p.objectives[k], rel=1e-8)
        np.testing.assert_allclose(p.models[k].predict(X)[..., 0], one.predict(X), atol=1e-5)
    # Given betas, in the order given; the free function; the classifier.
    q = cf.attention_path(X, y, model="sequence", fit_intercept=False, betas=p.betas[[2, 1]])
    assert q.objectives[1] == pytest.approx(p.objectives[1], rel=1e-6)
    pc = cf.attention_path(X, y > 0, classifier=True, model="sequence", fit_intercept=False,
                           n_betas=3)
    assert pc.coefs.shape == (3, 3, 1, 5, 5) and pc.converged.all()
    with pytest.raises(ValueError, match="ratio"):
        est.path(X, y, n_betas=3, ratio=0.0)
    with pytest.raises(ValueError, match="no intercept"):
        cf.ConvexAttentionRegressor(model="sequence").path(X, y, n_betas=2)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_sequence_classifier_predicts_a_label_at_every_position(tmp_path, n_classes):
    import pickle

    X, y, src = planted_sequence(N=300, seed=5)
    names = np.array(["low", "mid", "high"])[: n_classes]
    edges = np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1])
    labels = names[np.digitize(y, edges)]  # (N, n) strings
    est = cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False, beta_frac=0.01)
    est.fit(X, labels)
    assert est.converged_ and est.relative_gap_ <= 1e-6
    assert est.recovery_relative_difference_ <= 1e-9
    assert sorted(est.classes_.tolist()) == sorted(names.tolist())
    pred = est.predict(X)
    assert pred.shape == labels.shape and set(pred.ravel()) <= set(names)
    assert est.score(X, labels) == pytest.approx(np.mean(pred == labels))
    assert est.score(X, labels) > (0.9 if n_classes == 2 else 0.75)
    proba = est.predict_proba(X)
    assert proba.shape == (300, 5, n_classes)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(est.classes_[proba.argmax(axis=-1)], pred)
    assert set(est.active_tokens_.tolist()) <= set(range(5))
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), pred)
    # Warm start from the last fit: the same optimum in at most one iteration.
    warm = cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False, beta_frac=0.01,
                                        warm_start=True, tol=1e-8).fit(X, labels)
    cold = warm.n_iter_
    warm.fit(X, labels)
    assert warm.converged_ and warm.n_iter_ <= 1 < cold
    with pytest.raises(ValueError, match="2 classes"):
        cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False).fit(
            X, np.zeros(labels.shape))
    with pytest.raises(ValueError, match="Unknown label type|continuous"):
        cf.ConvexAttentionClassifier(model="sequence", fit_intercept=False).fit(X, y)


def test_cross_validation_of_the_sequence_program():
    X, y, _ = planted_sequence(N=150, seed=6)
    cv = cf.ConvexAttentionRegressorCV(model="sequence", fit_intercept=False, n_betas=4, cv=3)
    cv.fit(X, y)
    assert cv.best_beta_ in cv.betas_ and cv.cv_scores_.shape == (4, 3)
    assert cv.converged_ and cv.predict(X).shape == y.shape
    # Little noise: the least regularized betas predict best.
    assert cv.best_beta_ <= cv.betas_[1]
    clf = cf.ConvexAttentionClassifierCV(model="sequence", fit_intercept=False, n_betas=3, cv=3)
    clf.fit(X, y > 0)
    assert clf.cv_scores_.shape == (3, 3) and clf.predict(X).shape == y.shape


def test_the_package_docstring_example_runs():
    import doctest

    result = doctest.testmod(cf, verbose=False)
    assert result.attempted >= 4 and result.failed == 0
