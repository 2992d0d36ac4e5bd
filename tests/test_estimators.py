"""RNNClassifier / RNNRegressor: scikit-learn's own checks, the sklearn tool
chain (clone, Pipeline, GridSearchCV, cross_val_score, pickling), exact
reproducibility, unequal lengths against running each sequence alone, the
pooling maths against an independent NumPy computation, bad input with
scikit-learn's error types and wording, and a learning check."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gru_cy  # noqa: E402
from gru_cy import RNNClassifier, RNNRegressor  # noqa: E402
from helpers import same_bits  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def small(cls, **kw):
    """A small, quick estimator (the checks fit many of them)."""
    params = dict(hidden_size=16, max_iter=30, batch_size=16, learning_rate_init=0.02,
                  random_state=0)
    params.update(kw)
    return cls(**params)


# ---------------------------------------------------------------------------
# scikit-learn's own checks

# Checks that cannot pass, with the reason (scikit-learn's expected_failed_checks).
CLASSIFIER_XFAIL = {}
REGRESSOR_XFAIL = {}


def _expected_failed(est):
    return CLASSIFIER_XFAIL if isinstance(est, RNNClassifier) else REGRESSOR_XFAIL


@parametrize_with_checks([small(RNNClassifier), small(RNNRegressor)],
                         expected_failed_checks=_expected_failed)
def test_sklearn_checks(estimator, check):
    check(estimator)
