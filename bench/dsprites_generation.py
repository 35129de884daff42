"""Time and peak memory of generating all 737,280 dSprites images into the cache, and of loading it,
each in a fresh subprocess; the same for the bit-packed alternative (np.packbits), to compare the two
formats on disk size, load time and memory. Numbers are with the file in the page cache (just written).

    flock /tmp/imae-cpu.lock python bench/dsprites_generation.py [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imae.data import dsprites

PACKED = "dsprites-packed.npy"
CHUNK = 1024 * 64  # images per packing / reading chunk


def generate(directory: Path) -> dict:
    dsprites.generate(directory / dsprites.CACHE_FILE, log=lambda _: None, progress=False)
    return {}


def load(directory: Path) -> dict:
    """load_dsprites as a trainer calls it, then one pass reading every image (the mean pixel)."""
    started = time.perf_counter()
    data = dsprites.load_dsprites(directory, log=lambda _: None)
    opened = time.perf_counter() - started
    on = sum(int(data.images[i:i + CHUNK].count_nonzero()) for i in range(0, len(data), CHUNK))
    return {"open_s": opened, "read_all_s": time.perf_counter() - started - opened,
            "mean_pixel": on / data.images.numel()}


def pack(directory: Path) -> dict:
    images = dsprites.read_cache(directory / dsprites.CACHE_FILE)
    packed = np.concatenate([np.packbits(images[i:i + CHUNK] > 0, axis=-1) for i in range(0, len(images), CHUNK)])
    np.save(directory / PACKED, packed)
    return {}


def load_packed(directory: Path) -> dict:
    """The alternative: read the bit-packed file and unpack it into a uint8 0/255 tensor in memory."""
    started = time.perf_counter()
    packed = np.load(directory / PACKED)
    images = torch.from_numpy(np.unpackbits(packed, axis=-1))
    images.mul_(255)
    return {"open_s": time.perf_counter() - started, "mean_pixel": float(images[::97].float().mean() / 255)}


STEPS = {"generate": generate, "load": load, "pack": pack, "load_packed": load_packed}


def child(step: str, directory: Path) -> None:
    started = time.perf_counter()
    result = STEPS[step](directory)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(result))


def run(step: str, directory: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--dir", str(directory)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="where to write the cache (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.dir)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="dsprites-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        results = {step: run(step, directory) for step in STEPS}
        sizes = {name: (directory / name).stat().st_size / 2 ** 20 for name in (dsprites.CACHE_FILE, PACKED)}
    finally:
        if not args.keep:
            for name in (dsprites.CACHE_FILE, PACKED):
                (directory / name).unlink(missing_ok=True)
            if args.dir is None:
                shutil.rmtree(directory)
    print("| step | seconds | peak RSS (MB) | file (MB) | notes |\n|---|---|---|---|---|")
    g, lo, lp = results["generate"], results["load"], results["load_packed"]
    print(f"| generate {dsprites.NUM_IMAGES} images (.npy, uint8 0/255) | {g['seconds']:.1f} | "
          f"{g['peak_rss_mb']:.0f} | {sizes[dsprites.CACHE_FILE]:.0f} | |")
    print(f"| load_dsprites (memory-mapped) | {lo['open_s']:.2f} | {lo['peak_rss_mb']:.0f} | | "
          f"then {lo['read_all_s']:.1f} s to read every image once (RSS counts the mapped, shared page-cache pages); mean pixel {lo['mean_pixel']:.4f} |")
    print(f"| alternative: load bit-packed + unpack | {lp['open_s']:.2f} | {lp['peak_rss_mb']:.0f} | "
          f"{sizes[PACKED]:.0f} | all in private memory |")


if __name__ == "__main__":
    main()
