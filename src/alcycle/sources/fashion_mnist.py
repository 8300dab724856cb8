"""The ``fashion_mnist`` source: Fashion-MNIST's 70,000 images as Debian ships them.

Debian's ``dataset-fashion-mnist`` (MIT licence) holds four gzip'd IDX files under
``DEBIAN_FOLDER``; ``prepare.path`` may name another folder that holds the same four. The
60,000 training images are the pool and the 10,000 test images the test split
(``Item.split``). IDX: a big-endian header (magic ``00 00 08 <ndim>``, then one uint32
per dimension) followed by the uint8 values, row-major.
"""

from __future__ import annotations

import gzip
import zlib
from functools import partial
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from alcycle.sources import Item, SourceError

if TYPE_CHECKING:
    from alcycle.params import PrepareParams

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
INSTALL = f"apt-get install {DEBIAN_PACKAGE}"
# the id's part -> (images file, labels file, the items' split)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "pool"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "test"),
}
SIDE = 28
# The dataset's classes in label order, as params.yaml names them: YAML-, CSV- and
# XML-safe words for T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker,
# Bag and Ankle boot (the official names hold "/" and spaces).
CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle_boot")
UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one Fashion-MNIST uses


def fashion_mnist_items(params: PrepareParams) -> list[Item]:
    """Every training image (split "pool") and test image (split "test"), labelled.

    Ids: ``fmnist-train-00000`` … and ``fmnist-test-00000`` …, the row in the IDX file.
    Memory: both image arrays, 70,000 × 28 × 28 uint8 = 55 MB; each ``load`` only
    resizes its own view.
    """
    # Here, not at the top: `alcycle init` reads CLASSES without loading torch.
    import torch

    from alcycle.sources.images import fit

    folder = Path(params.path) if params.path else DEBIAN_FOLDER
    _check_present(folder)
    items = []
    for part, (images_name, labels_name, split) in FILES.items():
        images = read_idx(folder / images_name, ndim=3)
        labels = read_idx(folder / labels_name, ndim=1)
        _check_pair(folder / images_name, images, folder / labels_name, labels)
        # One (N, 1, 28, 28) tensor shares the array's memory; each item resizes its view.
        pixels = torch.from_numpy(images.reshape(-1, 1, SIDE, SIDE))
        items += [
            Item(id=f"fmnist-{part}-{row:05d}", source=f"{images_name}[{row}]",
                 label=CLASSES[label], split=split,
                 load=partial(fit, pixels[row], params.channels, params.image_size))
            for row, label in enumerate(labels.tolist())
        ]
    return items


def _check_present(folder: Path) -> None:
    names = [name for pair in FILES.values() for name in pair[:2]]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise SourceError(
            f"{folder}: Fashion-MNIST file {missing[0]} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; install Debian's package {DEBIAN_PACKAGE} ({INSTALL}), or set prepare.path "
            f"to a folder holding {', '.join(names)}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of one gzip'd IDX file, shape as its header says ((N, 28, 28) or (N,)).

    One vectorised read: memory is the array itself (47 MB for the training images).
    A bad header, a short body, trailing bytes or a broken gzip stream is a SourceError
    naming the file and what was expected.
    """
    try:
        with gzip.open(path, "rb") as stream:
            header = stream.read(4 + 4 * ndim)
            dims = _parse_header(path, header, ndim)
            array = np.empty(dims, dtype=np.uint8)
            got = _read_into(stream, array.reshape(-1))
            extra = len(stream.read(1))
    except (OSError, EOFError, zlib.error) as error:
        raise SourceError(f"{path}: not a readable gzip'd IDX file ({error})") from None
    if got != array.size or extra:
        raise SourceError(f"{path}: the header promises {' × '.join(map(str, dims))} = {array.size} bytes "
                          f"of data but the file holds {got}{' and more' if extra else ''}")
    return array


def _parse_header(path: Path, header: bytes, ndim: int) -> tuple[int, ...]:
    expected = bytes([0, 0, UBYTE, ndim])
    if len(header) < 4 + 4 * ndim or header[:4] != expected:
        raise SourceError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s): expected the "
                          f"magic number {expected.hex(' ')} and {ndim} counts, found {header[:4].hex(' ')}")
    dims = tuple(int(d) for d in np.frombuffer(header[4:], dtype=">u4"))
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise SourceError(f"{path}: images are {dims[1]} × {dims[2]}; Fashion-MNIST's are {SIDE} × {SIDE}")
    return dims


def _read_into(stream: gzip.GzipFile, buffer: np.ndarray) -> int:
    """Fill ``buffer`` from ``stream``; the number of bytes read (short when the file is)."""
    view, done = buffer.data, 0  # a writable view of the array, no copy
    while done < len(buffer):
        n = stream.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def _check_pair(images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise SourceError(f"{labels_path}: {len(labels)} labels, but {images_path} holds {len(images)} images; "
                          "expected one label per image")
    bad = np.flatnonzero(labels >= len(CLASSES))
    if len(bad):
        raise SourceError(f"{labels_path}: row {bad[0]} has label {labels[bad[0]]}; "
                          f"expected 0 to {len(CLASSES) - 1} ({', '.join(CLASSES)})")
