"""Image data of the ImageNet task: an ImageFolder tree (``--data``) or the embedded Fashion-MNIST, and the splits.

Torch-free (numpy and PIL). ``torchvision`` is not a dependency of this project, so the ImageFolder reader and the
standard augmentations are written here with PIL: ``FolderSource`` reads ``train/<class>/*`` and ``val/<class>/*``
(classes = sorted sub-folder names, as ``torchvision.datasets.ImageFolder``), training images get
RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) + horizontal flip + ColorJitter(0.4, 0.4, 0.4, 0.1) (the spec's final
training), evaluation images a resize of the shorter side to ``size / 0.875`` and a centre crop. Images are decoded
on demand; a batch comes back as uint8 ``(n, size, size, 3)``.

Splits (``ImageData``): ``train`` (search training and final training), ``valid`` (held out of the training
images: the supernet's fixed scoring split and the final stage's selection split; a setting, 5,000 as the authors'
code), ``test`` (ImageNet's ``val/``, Fashion-MNIST's test set: reported, never used to select).
"""
from __future__ import annotations

import math
from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import UnidentifiedImageError

from seminas_ray.tasks.imagenet import fashion_mnist

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP = 0.875
JITTER = (0.4, 0.4, 0.4, 0.1)   # brightness, contrast, saturation, hue
SMALL_PAD = 4                   # small images: random crop from a zero-padded copy (the CIFAR recipe)
VERIFY_ALL_UP_TO = 50_000       # --data trees up to this size have every image checked before the run starts
VERIFY_SAMPLE = 2_000           # larger ones: a fixed random sample of this many


class ImageSource(ABC):
    """Labelled images of one split; ``load`` returns uint8 ``(n, size, size, 3)`` for the given indices."""

    labels: np.ndarray
    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def load(self, indices: np.ndarray, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images ``indices``, augmented when ``train`` (with ``rng``), else the deterministic eval transform."""

    @abstractmethod
    def subset(self, indices: np.ndarray) -> "ImageSource":
        """The images ``indices`` of this source, as a source."""


class ArraySource(ImageSource):
    """Small in-memory images (e.g. Fashion-MNIST): zero-padded to ``size``; training adds crop-with-padding + flip."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> None:
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or len(images) != len(labels) or images.shape[1] > size or images.shape[2] > size:
            raise ValueError(f"expected (n, h, w[, c]) images no larger than {size}, got {images.shape}")
        top, left = (size - images.shape[1]) // 2, (size - images.shape[2]) // 2
        padded = np.zeros((len(images), size, size, images.shape[3]), dtype=np.uint8)
        padded[:, top:top + images.shape[1], left:left + images.shape[2]] = images
        self.images, self.labels, self.size = padded, np.asarray(labels, dtype=np.int64), int(size)
        if mean is None:
            pixels = self.images.reshape(-1, self.images.shape[-1]).astype(np.float64) / 255.0
            mean, std = tuple(pixels.mean(0)), tuple(pixels.std(0))
        # grey images are repeated to RGB when loaded: one statistic per output channel either way
        self.mean = tuple(float(m) for m in np.broadcast_to(np.asarray(mean, dtype=np.float64), (3,)))
        self.std = tuple(float(v) or 1.0 for v in np.broadcast_to(np.asarray(std, dtype=np.float64), (3,)))

    def load(self, indices: np.ndarray, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
        x = self.images[np.asarray(indices, dtype=np.int64)]
        if train:
            rng = rng or np.random.default_rng()
            n, s = len(x), self.size
            big = np.pad(x, ((0, 0), (SMALL_PAD, SMALL_PAD), (SMALL_PAD, SMALL_PAD), (0, 0)))
            dy, dx = rng.integers(0, 2 * SMALL_PAD + 1, size=(2, n))
            x = np.stack([big[i, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(n)])
            flip = rng.random(n) < 0.5
            x[flip] = x[flip, :, ::-1]
        return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x

    def subset(self, indices: np.ndarray) -> "ArraySource":
        out = ArraySource.__new__(ArraySource)
        out.images, out.labels = self.images[indices], self.labels[indices]
        out.size, out.mean, out.std = self.size, self.mean, self.std
        return out


# ------------------------------------------------------------------------------------------------------------
# ImageFolder
# ------------------------------------------------------------------------------------------------------------
def _color_jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """ColorJitter(0.4, 0.4, 0.4, 0.1) in a random order, as torchvision's."""
    b, c, s, h = JITTER
    ops = [lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(1 - b, 1 + b)),
           lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(1 - c, 1 + c)),
           lambda im: ImageEnhance.Color(im).enhance(rng.uniform(1 - s, 1 + s)),
           lambda im: _shift_hue(im, rng.uniform(-h, h))]
    for i in rng.permutation(len(ops)):
        img = ops[i](img)
    return img


def _shift_hue(img: Image.Image, shift: float) -> Image.Image:
    hsv = np.asarray(img.convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 255))) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def _random_resized_crop(img: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """torchvision's RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) with its centre-crop fallback."""
    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return img.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return img.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / EVAL_CROP / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return img.crop((x0, y0, x0 + size, y0 + size))


def open_image(path: Path) -> Image.Image:
    """The RGB image at ``path``; a one-line ``ValueError`` naming it when it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"--data: unreadable image {path} ({type(exc).__name__})") from None


class FolderSource(ImageSource):
    """Images listed as (path, label), decoded with PIL when loaded."""

    def __init__(self, paths: list[Path], labels: np.ndarray, size: int) -> None:
        self.paths, self.labels, self.size = list(paths), np.asarray(labels, dtype=np.int64), int(size)

    def load(self, indices: np.ndarray, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng or np.random.default_rng()
        out = np.empty((len(indices), self.size, self.size, 3), dtype=np.uint8)
        for j, i in enumerate(np.asarray(indices, dtype=np.int64)):
            img = open_image(self.paths[i])
            if train:
                img = _color_jitter(_random_resized_crop(img, self.size, rng), rng)
                if rng.random() < 0.5:
                    img = img.transpose(Image.FLIP_LEFT_RIGHT)
            else:
                img = _center_crop(img, self.size)
            out[j] = np.asarray(img, dtype=np.uint8)
        return out

    def subset(self, indices: np.ndarray) -> "FolderSource":
        return FolderSource([self.paths[i] for i in indices], self.labels[indices], self.size)


def scan_image_folder(root: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """``root/<class>/<image>`` -> (paths, labels, classes); one-line errors for a non-tree or an empty class."""
    if not root.is_dir():
        raise ValueError(f"--data: {root} is not a folder of class sub-folders")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise ValueError(f"--data: {root} has no class sub-folders (expected {root}/<class>/<image>.JPEG)")
    if classes is not None and found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise ValueError(f"--data: the classes of {root} differ from train/'s (missing {missing[:3]}, extra "
                         f"{extra[:3]})")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(found):
        files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"--data: class folder {root / name} holds no images")
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int64), found


# ------------------------------------------------------------------------------------------------------------
# The run's data
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ImageData:
    """The three splits and where they came from."""

    train: ImageSource
    valid: ImageSource
    test: ImageSource
    classes: list[str]
    source: str
    input_size: int
    stem_stride: int

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "classes": len(self.classes), "train": len(self.train),
                "valid": len(self.valid), "test": len(self.test), "input_size": self.input_size,
                "stem_stride": self.stem_stride}


def _limit(rng: np.random.Generator, n: int, limit: int | None) -> np.ndarray:
    """A fixed random subset of ``limit`` of ``n`` indices (all of them, in order, without a limit)."""
    return np.arange(n) if limit is None or limit >= n else np.sort(rng.permutation(n)[:limit])


def split_holdout(n: int, n_valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) index arrays: ``n_valid`` training images held out at random (fixed by ``seed``)."""
    if not 0 < n_valid < n:
        raise ValueError(f"--valid-size {n_valid}: the held-out validation split must be at least 1 and leave "
                         f"training images (there are {n})")
    order = np.random.default_rng([seed, 5]).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def load_fashion_mnist(n_valid: int, n_train: int | None, n_test: int | None, seed: int = 0) -> ImageData:
    """Fashion-MNIST (Debian's package): 28x28 padded to 32x32, grey repeated to RGB, a stride-1 stem."""
    root = fashion_mnist.locate_or_fetch()
    images, labels = fashion_mnist.load_split(root, "train")
    test_images, test_labels = fashion_mnist.load_split(root, "test")
    full = ArraySource(images, labels, size=32)
    train_idx, valid_idx = split_holdout(len(full), n_valid, seed)
    rng = np.random.default_rng([seed, 6])
    train = full.subset(train_idx[_limit(rng, len(train_idx), n_train)])
    test = ArraySource(test_images, test_labels, size=32, mean=full.mean, std=full.std)
    test = test.subset(_limit(rng, len(test), n_test))
    return ImageData(train, full.subset(valid_idx), test, list(fashion_mnist.CLASSES), f"Fashion-MNIST ({root})",
                     input_size=32, stem_stride=1)


def load_image_folder(root: Path, n_valid: int, n_train: int | None, n_test: int | None, size: int,
                      seed: int = 0) -> ImageData:
    """``root/train/<class>/*`` and ``root/val/<class>/*``; every image (a sample of a large tree) is checked here,
    so a broken file fails before anything is written."""
    root = Path(root)
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise ValueError(f"--data: {root} is not an ImageFolder tree (expected {root}/train/<class>/ and "
                         f"{root}/val/<class>/)")
    paths, labels, classes = scan_image_folder(root / "train")
    test_paths, test_labels, _ = scan_image_folder(root / "val", classes)
    if len(classes) < 2:
        raise ValueError(f"--data: {root}/train has {len(classes)} class; need at least 2")
    full = FolderSource(paths, labels, size)
    train_idx, valid_idx = split_holdout(len(full), n_valid, seed)
    rng = np.random.default_rng([seed, 6])
    train = full.subset(train_idx[_limit(rng, len(train_idx), n_train)])
    test = FolderSource(test_paths, test_labels, size)
    test = test.subset(_limit(rng, len(test), n_test))
    valid = full.subset(valid_idx)
    paths_used = [p for source in (train, valid, test) for p in source.paths]
    if len(paths_used) > VERIFY_ALL_UP_TO:  # ImageNet: a full check would take longer than a search round
        paths_used = [paths_used[i] for i in rng.permutation(len(paths_used))[:VERIFY_SAMPLE]]
    for path in paths_used:
        verify_image(path)
    return ImageData(train, valid, test, classes, f"ImageFolder {root}", input_size=size, stem_stride=2)


def verify_image(path: Path) -> None:
    """A cheap check that ``path`` is a decodable image (PIL's ``verify``), one line naming it otherwise."""
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"--data: unreadable image {path} ({type(exc).__name__})") from None


__all__ = ["ArraySource", "FolderSource", "ImageData", "ImageSource", "load_fashion_mnist", "load_image_folder",
           "open_image", "scan_image_folder", "split_holdout", "verify_image"]
