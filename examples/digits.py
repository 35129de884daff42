"""IMAE on scikit-learn's bundled handwritten digits (1,797 images of 8x8, no download), in seconds.

    python examples/digits.py

Prints the unsupervised accuracy (clusters matched to the digit labels by the Hungarian algorithm),
I(x;y) in nats (at most log 10 = 2.303) and the training time. The labels are used only to score;
the CPU is asked for so that the numbers repeat exactly (for a given number of threads)."""

import time

from sklearn.datasets import load_digits

from imae import IMAE
from imae.metrics import clustering_accuracy

images, digits = load_digits(return_X_y=True)
images = images.reshape(-1, 8, 8) / 16.0  # pixel values 0..16 -> intensities in [0, 1]

started = time.perf_counter()
# Tried (seed 0): 20-60 epochs, batch 64 or 128, reconstruction weight 0.1 or 1, VAT radius 0.5 or 1, no VAT.
model = IMAE(epochs=30, batch_size=128, reconstruction_weight=1.0, random_state=0, device="cpu").fit(images)
seconds = time.perf_counter() - started

clusters = model.predict(images)
print(f"accuracy {clustering_accuracy(clusters, digits):.3f}  I(x;y) {model.score(images):.3f} nats  "
      f"trained in {seconds:.1f} s")
