"""Writes a large LR test image: a mosaic of the data root's Set5 LR x4 images,
every other pass mirrored, so the content is real image statistics rather than
a flat colour that compresses to nothing and hides bugs in tiling.

    python3 scripts/make_large_image.py ROOT SIZE OUT.png
    python3 scripts/make_large_image.py --crop IN.png X Y W H OUT.png
"""
import glob
import sys

import numpy as np
from PIL import Image


def mosaic(root, n, out):
    files = sorted(glob.glob(f"{root}/benchmark/Set5/LR_bicubic/X4/*.png"))
    if not files:
        sys.exit(f"no Set5 LR images under {root}/benchmark/Set5/LR_bicubic/X4")
    canvas = np.zeros((n, n, 3), np.uint8)
    y = i = 0
    while y < n:
        x = row_h = 0
        while x < n:
            im = np.asarray(Image.open(files[i % len(files)]).convert("RGB"))
            if (i // len(files)) % 2:
                im = im[:, ::-1]
            h, w = min(im.shape[0], n - y), min(im.shape[1], n - x)
            canvas[y : y + h, x : x + w] = im[:h, :w]
            x += im.shape[1]
            row_h = max(row_h, im.shape[0])
            i += 1
        y += row_h
    Image.fromarray(canvas).save(out)


if __name__ == "__main__":
    if sys.argv[1] == "--crop":
        src, x, y, w, h, out = sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
        Image.open(src).crop((x, y, x + w, y + h)).save(out)
    else:
        mosaic(sys.argv[1], int(sys.argv[2]), sys.argv[3])
