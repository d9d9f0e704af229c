import numpy as np
import pytest

from ntkcheck.data import circle_inputs, digits, digits_raw, gaussian_inputs, sphere_inputs


def test_synthetic_shapes_norms_and_determinism():
    X = gaussian_inputs(7, 3, seed=4)
    assert X.shape == (7, 3) and X.dtype == np.float64
    np.testing.assert_array_equal(X, gaussian_inputs(7, 3, seed=4))
    assert not np.array_equal(X, gaussian_inputs(7, 3, seed=5))
    S = sphere_inputs(9, 5, seed=1, radius=2.0)
    np.testing.assert_allclose(np.linalg.norm(S, axis=1), 2.0)
    C = circle_inputs(np.linspace(-np.pi, np.pi, 5))
    np.testing.assert_allclose(C[[0, 2, 4]], [[-1, 0], [1, 0], [-1, 0]], atol=1e-15)


def test_digits():
    X, y, Xt, yt = digits(30, 10, seed=2)
    assert X.shape == (30, 64) and Xt.shape == (10, 64) and y.shape == (30,)
    np.testing.assert_allclose(np.einsum("ij,ij->i", X, X) / 64, 1.0)
    assert set(np.unique(np.concatenate([y, yt]))) == {-1.0, 1.0}
    assert not (X[:, None] == Xt[None]).all(-1).any()                     # disjoint draws
    np.testing.assert_array_equal(X, digits(30, 10, seed=2)[0])


@pytest.mark.parametrize("call, match", [
    (lambda: gaussian_inputs(0, 3), "n must"),
    (lambda: sphere_inputs(3, 2, radius=-1.0), "radius"),
    (lambda: circle_inputs([[0.0]]), "1-D"),
    (lambda: digits(1790, 10), "n_train"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_shipped_digits_equal_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    images, labels = digits_raw()
    reference = datasets.load_digits()
    assert images.shape == (1797, 64) and labels.shape == (1797,)
    np.testing.assert_array_equal(images, reference.data)
    np.testing.assert_array_equal(labels, reference.target)
