"""Information Maximization Auto-Encoding (IMAE) and its baselines on a hybrid discrete/continuous code."""

__version__ = "0.1.0"

# scikit-learn style estimators (imae/estimator.py), imported on first use so that `imae --help`
# does not pay for torch and scikit-learn.
__all__ = ["IMAE", "BetaVAE", "InfoVAE", "JointVAE", "IMSAT"]


def __getattr__(name):
    if name in __all__:
        from . import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module 'imae' has no attribute {name!r}")
