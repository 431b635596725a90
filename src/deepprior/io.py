"""Reading and writing images: 8/16-bit, grayscale/RGB/RGBA, EXIF orientation, atomic writes."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

READ_FORMATS = {"PNG", "TIFF", "JPEG", "MPO", "WEBP"}
WRITE_SUFFIXES = {
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
}
LOSSY = {"JPEG", "MPO", "WEBP"}
MIN_SIDE = 16
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class Picture:
    """An image as the library works with it.

    ``pixels`` are float32 in [0, 1] with shape (H, W, C), C = 1 (gray) or 3 (RGB); ``alpha``
    is carried through untouched, in the same float form, shape (H, W). ``bit_depth`` (8 or 16)
    is the depth it came with and will be written with.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    source_format: str | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def mode(self) -> str:
        base = "L" if self.channels == 1 else "RGB"
        return base + ("A" if self.alpha is not None else "")

    def with_pixels(self, pixels: np.ndarray) -> Picture:
        return replace(self, pixels=np.asarray(pixels, dtype=np.float32))


def from_array(array: np.ndarray) -> Picture:
    """Make a Picture from H×W or H×W×C (C = 1, 2, 3, 4) uint8, uint16 or float in [0, 1]."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"expected an H×W or H×W×C image with C in 1..4, got shape {array.shape}")
    if array.dtype == np.uint8:
        depth, values = 8, array.astype(np.float32) / 255
    elif array.dtype == np.uint16:
        depth, values = 16, array.astype(np.float32) / 65535
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UserError("the image holds NaN or infinite values")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise UserError(
                f"float pixels must lie in [0, 1], these span {array.min():g} to "
                f"{array.max():g}; divide by 255 (8-bit) or 65535 (16-bit) first"
            )
        depth, values = 8, array.astype(np.float32)
    else:
        raise UserError(f"unsupported pixel type {array.dtype}: use uint8, uint16 or float")
    colour, alpha = (
        (values[:, :, :-1], values[:, :, -1]) if values.shape[2] in (2, 4) else (values, None)
    )
    return Picture(pixels=np.ascontiguousarray(colour), alpha=alpha, bit_depth=depth)


def to_array(picture: Picture, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Back to H×W×C (alpha appended) in ``dtype``: uint8, uint16, or a float type in [0, 1]."""
    dtype = np.dtype(dtype or (np.uint16 if picture.bit_depth == 16 else np.uint8))
    planes = [picture.pixels] + ([picture.alpha[:, :, None]] if picture.alpha is not None else [])
    values = np.clip(np.concatenate(planes, axis=2), 0, 1)
    if dtype == np.uint8:
        return np.round(values * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(values * 65535).astype(np.uint16)
    return values.astype(dtype)


def check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give an image file")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; give a PNG, TIFF, JPEG or WebP image")


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1–8) to an H×W(×C) array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array)) if orientation in ops else array


def _png_is_deep_colour(path: Path) -> bool:
    """True for a 16-bit PNG with colour or alpha, which Pillow would reduce to 8 bits."""
    with path.open("rb") as handle:
        header = handle.read(26)
    return len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def _read_deep_png(path: Path) -> np.ndarray:
    """A 16-bit colour or gray+alpha PNG, sample for sample (Pillow would cut it to 8 bits)."""
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        array = np.vstack([np.asarray(row, np.uint16) for row in rows])
    except (png.Error, ValueError, EOFError, OSError) as error:
        raise UserError(f"{path} is corrupt or truncated ({error}); re-export it") from None
    return array.reshape(height, width, info["planes"])


def _pillow_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise UserError("32-bit integer images are not supported; save it as 16-bit")
        return values.astype(np.uint16)
    if mode == "F":
        raise UserError("floating-point images are not supported; save it as 8- or 16-bit")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    return np.asarray(image)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    quiet = logging.getLogger("tifffile")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its warnings about a damaged file become our one line
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            shape = page.shape
            if len(shape) >= 2:
                planar = len(shape) == 3 and shape[0] in (1, 2, 3, 4) and shape[2] > 4
                height, width = (shape[1], shape[2]) if planar else (shape[0], shape[1])
                _check_size(path, int(width), int(height))
            tag = page.tags.get("Orientation")
            array = page.asarray()
    except UserError:
        raise
    except Exception as error:  # tifffile raises many types (struct.error among them)
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise UserError(f"{path} is corrupt or truncated ({reason}); re-export it") from None
    finally:
        quiet.setLevel(level)
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[2] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar layout
    return _orient(array, int(tag.value) if tag is not None else 1)


def _read_other(path: Path) -> tuple[np.ndarray, str]:
    try:
        with Image.open(path) as image:
            fmt = image.format or "?"
            if fmt not in READ_FORMATS:
                raise UserError(f"{path}: {fmt} images are not supported; convert it to PNG")
            _check_size(path, *image.size)
            if fmt == "PNG" and _png_is_deep_colour(path):
                orientation = int(image.getexif().get(0x0112, 1))
                return _orient(_read_deep_png(path), orientation), fmt
            return _pillow_array(image), fmt
    except UnidentifiedImageError:
        raise UserError(
            f"{path} is not an image deepprior can read (PNG, TIFF, JPEG, WebP)"
        ) from None
    except Image.DecompressionBombError:
        raise UserError(f"{path} is too large to read safely; resize it first") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UserError(f"{path} is corrupt or truncated ({error}); re-export it") from None


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise UserError(
            f"{path} is {width}×{height}, over the {MAX_PIXELS // 10**6} MP limit; "
            "resize or tile it first"
        )


def read_image(path: str | os.PathLike[str], *, min_side: int = MIN_SIDE) -> Picture:
    """Read a PNG, TIFF, JPEG or WebP file, honouring EXIF orientation and 16-bit depth.

    Images with a side under ``min_side`` are refused (16 px for images to restore).
    """
    path = Path(path)
    check_readable(path)
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic in (b"II*\x00", b"MM\x00*"):
        array, fmt = _read_tiff(path), "TIFF"
        _check_size(path, array.shape[1], array.shape[0])
    else:
        array, fmt = _read_other(path)
    if array.dtype not in (np.uint8, np.uint16):
        raise UserError(f"{path}: {array.dtype} pixels are not supported; save as 8- or 16-bit")
    picture = replace(from_array(array), source_format=fmt)
    if min(picture.height, picture.width) < min_side:
        raise UserError(
            f"{path} is {picture.width}×{picture.height}; both sides must be at least {min_side} px"
        )
    return picture


def output_format(path: Path) -> str:
    fmt = WRITE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: cannot tell the format from '{path.suffix}'; end the name with "
            ".png, .tif, .jpg or .webp"
        )
    return fmt


def check_new_file(path: Path, *, force: bool) -> None:
    """Fail early, before any work, if a file cannot or must not be written at ``path``."""
    folder = path.parent
    try:
        longest = os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    if len(os.fsencode(path.name)) + 16 > longest:  # room for the temporary file's affixes
        raise UserError(f"the file name {path.name[:40]}… is too long; choose a shorter one")
    try:
        is_dir, exists, folder_ok = path.is_dir(), path.exists(), folder.is_dir()
    except OSError as error:
        raise UserError(f"{path}: {error.strerror or error}; choose another name") from None
    if is_dir:
        raise UserError(f"{path} is a directory; give a file name such as {path / 'out.png'}")
    if exists and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if not folder_ok:
        raise UserError(f"the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"the folder {folder} is not writable; choose another place")


def check_writable(path: Path, *, force: bool) -> None:
    """Fail early, before any work, if the image ``path`` cannot or must not be written."""
    check_new_file(path, force=force)
    output_format(path)


def check_output_folder(out_dir: Path, names: Sequence[str], *, force: bool) -> None:
    """A folder of results can be made (or is there) and none of ``names`` in it would be
    overwritten without ``force``; nothing is created."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file; --out needs a folder")
    clashes = [name for name in names if (out_dir / name).exists()]
    if clashes and not force:
        raise UserError(f"{out_dir / clashes[0]} exists; pass --force to overwrite it")
    parent = next((p for p in (out_dir, *out_dir.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {out_dir}: {parent} is not a writable folder")


def check_can_hold(path: Path, picture: Picture) -> None:
    """Fail early if ``path``'s format cannot store ``picture`` (JPEG has no alpha)."""
    fmt = output_format(path)
    if fmt == "JPEG" and picture.alpha is not None:
        raise UserError(
            f"{path}: JPEG cannot store the alpha channel; write a .png, .tif or .webp instead"
        )


def check_distinct(outputs: dict[str, Path], inputs: dict[str, Path]) -> None:
    """Refuse two outputs that are one file, or an output that is an input."""
    seen = {Path(os.path.realpath(path)): name for name, path in inputs.items()}
    for name, path in outputs.items():
        real = Path(os.path.realpath(path))
        if real in seen:
            what = "is also" if seen[real] in outputs else "would overwrite"
            raise UserError(
                f"the {name} ({path}) {what} the {seen[real]}; give each output its own file"
            )
        seen[real] = name


def _make_readable(path: str) -> None:
    """Temporary files are created 0600; give the result the permissions the umask allows."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def default_output(input_path: Path, tag: str) -> Path:
    """``photo.jpg`` -> ``photo.<tag>.png``: lossless outputs unless the user names another."""
    suffix = ".png" if input_path.suffix.lower() not in (".tif", ".tiff") else input_path.suffix
    return input_path.with_name(f"{input_path.stem}.{tag}{suffix}")


def _encode(path: Path, picture: Picture, fmt: str) -> None:
    depth = 8 if fmt in LOSSY else picture.bit_depth
    array = to_array(picture, np.uint16 if depth == 16 else np.uint8)
    if fmt == "TIFF":
        import tifffile

        samples = array[:, :, 0] if array.shape[2] == 1 else array
        tifffile.imwrite(
            path,
            samples,
            photometric="rgb" if picture.channels == 3 else "minisblack",
            planarconfig="contig" if samples.ndim == 3 else None,
            extrasamples=["unassalpha"] if picture.alpha is not None else None,
        )
    elif fmt == "PNG" and depth == 16 and array.shape[2] > 1:
        import png  # Pillow writes no 16-bit colour or gray+alpha PNG

        height, width, planes = array.shape
        writer = png.Writer(
            width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16
        )
        with path.open("wb") as handle:
            writer.write_array(handle, array.reshape(-1))
    else:
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        options = {"quality": 95} if fmt in LOSSY else {}
        image.save(path, format=fmt, **options)


def atomic_write(path: Path, fill: Callable[[Path], object]) -> Path:
    """Have ``fill`` write a temporary file beside ``path``, then rename it into place: a
    process killed meanwhile leaves the old file or the new one, never a torn one."""
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix
        )
        os.close(handle)
        try:
            fill(Path(temporary))
            _make_readable(temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(
            f"could not write {path}: {reason}; check the folder's permissions and free space"
        ) from None
    return path


def write_image(path: str | os.PathLike[str], picture: Picture, *, force: bool = False) -> Path:
    """Write atomically (see :func:`atomic_write`), in the format the name's suffix gives."""
    path = Path(path)
    check_writable(path, force=force)
    check_can_hold(path, picture)
    fmt = output_format(path)
    return atomic_write(path, lambda temporary: _encode(temporary, picture, fmt))
