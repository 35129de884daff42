"""Peak memory (Linux: VmHWM, and the anonymous RSS left after) of each stage of a dSprites run's final metrics
(metrics.evaluate with complete=True) on all 737,280 images, with the paper's dSprites network (untrained: the
memory of these stages does not depend on the weights, except the quadrature's, which bench/mig_speed.py
measures on codes that never overlap).

    flock /tmp/imae-cpu.lock env OMP_NUM_THREADS=1 PYTHONPATH=. python bench/dsprites_memory.py [--skip-dci]

Target: every stage's peak under 6 GB, so that two dSprites runs (two workers) fit in this machine's 24 GB.
The images are a 3 GB memory-mapped file, counted in every peak (RssFile) but shared by the two runs.
"""

from __future__ import annotations

import argparse
import time

import torch

from imae import disentanglement as dis
from imae import metrics
from imae.config import TrainConfig
from imae.data.dsprites import load_dsprites
from imae.networks import Posterior
from imae.training import build_model

TARGET_GB = 6.0


def memory() -> dict[str, float]:
    """VmHWM (the peak since the last reset), RssAnon and RssFile of this process, in GB."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: int(fields[key].split()[0]) / 2 ** 20 for key in ("VmHWM", "RssAnon", "RssFile")}


def stage(name: str, compute):
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
    start = time.perf_counter()
    result = compute()
    seconds, used = time.perf_counter() - start, memory()
    verdict = "ok" if used["VmHWM"] < TARGET_GB else f"OVER {TARGET_GB:g} GB"
    print(f"{name:<26} {seconds:7.0f} s  peak {used['VmHWM']:5.2f} GB  anon after {used['RssAnon']:5.2f} GB  "
          f"{verdict}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-dci", action="store_true", help="leave out DCI (minutes of gradient boosting)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = TrainConfig(dataset="dsprites", recipe="paper", precision="fp32").validate()
    split = load_dsprites()
    model = build_model(cfg, (1, *split.images.shape[1:]))
    print(f"{len(split.images)} images, network {cfg.architecture}; at start: "
          + ", ".join(f"{k} {v:.2f} GB" for k, v in memory().items()))
    post = stage("encode", lambda: metrics.encode(model, split.images, cfg.eval_batch_size))
    stage("reconstruction_error", lambda: metrics.reconstruction_error(model, split.images, post,
                                                                       cfg.eval_batch_size))
    post = Posterior(post.mu.float(), post.logvar.float(), post.logits.float())
    stage("code_statistics (TC)", lambda: metrics.code_statistics(post, 0))
    factors, generator = split.factors.long(), torch.Generator().manual_seed(0)
    stage("information_gaps (MIG)", lambda: dis.information_gaps(post.mu, post.logvar, post.logits, factors,
                                                                 generator))
    if not args.skip_dci:
        stage("dci", lambda: dis.dci(post.mu, factors, generator))
    stage("factor_vae_score", lambda: dis.factor_vae_score(post.mu, factors, generator))
    stage("histogram MIG, SAP", lambda: (dis.histogram_mig(post.mu, factors, generator),
                                         dis.sap_score(post.mu, factors, generator),
                                         dis.sap_continuous(post.mu, factors, generator)))


if __name__ == "__main__":
    main()
