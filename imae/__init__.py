"""Information Maximization Auto-Encoding (IMAE) and its baselines on a hybrid discrete/continuous code."""

__version__ = "0.1.0"
