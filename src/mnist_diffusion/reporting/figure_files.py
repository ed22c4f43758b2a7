"""Writing figure files (PNG and PDF) so that rebuilding an unchanged figure leaves the file there untouched.

The figures drawn from samples differ by a grey level or two at a few pixels from one machine to another: the
same seeded sampler on another CPU (other SIMD kernels), another torch build or a GPU rounds differently, and
after hundreds of denoising steps a few uint8 pixels land one or two levels apart. Everything else is already
byte-stable (fixed seeds, fixed metadata, no timestamps). :func:`write_figure_file` is the one function every
figure writer goes through: it keeps the existing file when the new one shows the same picture within
:data:`GREY_LEVELS` and :data:`PIXEL_SHARE`, so ``make all`` run on a fresh clone leaves ``git status`` clean,
and it writes the new file when anything else changed (text, lines, layout, size, other samples).

PNGs are compared by their decoded pixels. PDFs are compared object by object: every object but the embedded
images must be identical once streams are decompressed (left out: stream lengths, which follow the compressed
sizes, and the metadata dictionary, which names the software's version); the embedded images are decoded and
compared like PNGs.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_diffusion.paths import write_atomic

#: The most any channel of any pixel may differ (in levels of 0-255) for two renders to count as the same figure.
GREY_LEVELS = 4
#: The largest share of an image's pixels that may differ at all (by at most GREY_LEVELS) for the same figure.
PIXEL_SHARE = 0.01


def write_figure_file(path: str | Path, data: bytes) -> bool:
    """Write ``data`` (a whole PNG or PDF file) to ``path`` atomically, unless the file there already shows the
    same figure (:func:`same_figure`); returns whether it wrote."""
    path = Path(path)
    if path.is_file() and same_figure(path.read_bytes(), data, path.suffix):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, [data])
    return True


def same_figure(old: bytes, new: bytes, suffix: str) -> bool:
    """Whether two files of the kind ``suffix`` (".png", ".pdf"; any other: bytes) show the same figure: identical
    but for image pixels that match within :data:`GREY_LEVELS` and :data:`PIXEL_SHARE`."""
    if old == new:
        return True
    suffix = suffix.lower()
    try:
        if suffix == ".png":
            return pixels_match(_decode_png(old), _decode_png(new))
        if suffix == ".pdf":
            return _same_pdf(old, new)
    except (ValueError, KeyError, IndexError, OSError, struct.error, zlib.error):  # unreadable: not the same
        return False
    return False


def pixels_match(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, no channel more than :data:`GREY_LEVELS` apart and at most :data:`PIXEL_SHARE` of the pixels
    different at all. ``a`` and ``b`` are uint8 [H, W] or [H, W, C]."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.size == 0:
        return True
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return int(diff.max()) <= GREY_LEVELS and np.count_nonzero(diff) <= PIXEL_SHARE * diff.size


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA")
        return np.asarray(image)


# --- PDF: the objects matplotlib's backend writes ------------------------------------------------------------

_LENGTH = re.compile(rb"/Length\s+(\d+)(?:\s+(\d+)\s+R)?")
_STREAM = re.compile(rb">>\s*stream\r?\n")


def _same_pdf(old: bytes, new: bytes) -> bool:
    (head_a, objects_a, images_a), (head_b, objects_b, images_b) = _pdf_parts(old), _pdf_parts(new)
    if head_a != head_b or objects_a != objects_b or images_a.keys() != images_b.keys():
        return False
    return all(pixels_match(images_a[key], images_b[key]) for key in images_a)


def _pdf_parts(data: bytes) -> tuple[bytes, dict[int, tuple[bytes, bytes]], dict[tuple, np.ndarray]]:
    """(file header and trailer, {object id: (canonical header, decompressed content)} for every object but the
    images and the stream lengths, {(object id, width, height): decoded pixels} for the images)."""
    xref = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    table = re.compile(rb"xref\s+(\d+)\s+(\d+)\s*\n").match(data, xref)
    if table is None:
        raise ValueError("no xref table")
    first, count = int(table.group(1)), int(table.group(2))
    offsets = {}
    for i in range(count):
        entry = data[table.end() + 20 * i : table.end() + 20 * (i + 1)].split()
        if entry[2] == b"n":
            offsets[first + i] = int(entry[0])
    ends = sorted(offsets.values()) + [xref]
    bodies = {n: data[at : ends[ends.index(at) + 1]] for n, at in offsets.items()}
    trailer = data[table.end() + 20 * count :]
    head = data[: min(offsets.values(), default=xref)] + re.sub(rb"startxref\s+\d+", b"startxref", trailer)

    objects: dict[int, tuple[bytes, bytes]] = {}
    images: dict[tuple, np.ndarray] = {}
    lengths: set[int] = set()
    for n, body in bodies.items():
        match = _STREAM.search(body)
        if match is None:  # a plain object
            objects[n] = (body, b"")
            continue
        header = body[: match.start() + 2]
        content = body[match.end() : body.rindex(b"endstream")].removesuffix(b"\n").removesuffix(b"\r")
        for length in _LENGTH.finditer(header):
            if length.group(2) is not None:
                lengths.add(int(length.group(1)))
        canonical = _LENGTH.sub(b"/Length", header)
        if b"/Subtype /Image" in header:
            pixels, width, height = _pdf_image(header, content)
            images[(n, width, height, b"/SMask" in header)] = pixels
        else:
            objects[n] = (canonical, zlib.decompress(content) if b"/FlateDecode" in header else content)
    info = re.search(rb"/Info\s+(\d+)\s+0\s+R", trailer)  # metadata (software versions), not the picture
    for n in lengths | ({int(info.group(1))} if info else set()):
        objects.pop(n, None)
    return head, objects, images


def _pdf_image(header: bytes, content: bytes) -> tuple[np.ndarray, int, int]:
    """Decoded pixels of an image XObject as matplotlib writes them: 8-bit grey or RGB, or indexed RGB, either raw
    or Flate-compressed PNG rows (``/DecodeParms << /Predictor 10 ... >>``)."""
    palette = None
    indexed = header.find(b"/Indexed")
    if indexed >= 0:
        start = header.index(b"(", indexed)
        palette, end = _pdf_string(header, start)
        header = header[:start] + header[end:]  # the palette's bytes may look like anything

    def number(key: bytes) -> int:
        found = re.search(rb"/" + key + rb"\s+(\d+)", header)
        if found is None:
            raise ValueError(f"image without /{key.decode()}")
        return int(found.group(1))

    width, height, bits = number(b"Width"), number(b"Height"), number(b"BitsPerComponent")
    grey = palette is None and b"/DeviceGray" in header
    if b"/Predictor" in header:
        colour_type = 3 if palette is not None else 0 if grey else 2
        with Image.open(io.BytesIO(_png_file(width, height, bits, colour_type, content, palette))) as image:
            pixels = np.asarray(image.convert("L" if grey else "RGB"))
    else:
        raw = zlib.decompress(content) if b"/FlateDecode" in header else content
        if bits != 8:
            raise ValueError("raw image data other than 8 bits per component")
        if palette is not None:
            table = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)
            pixels = table[np.frombuffer(raw, dtype=np.uint8)[: width * height].reshape(height, width)]
        else:
            channels = 1 if grey else 3
            pixels = np.frombuffer(raw, dtype=np.uint8)[: width * height * channels].reshape(height, width, channels)
            pixels = pixels[:, :, 0] if grey else pixels
    return pixels, width, height


def _pdf_string(data: bytes, start: int) -> tuple[bytes, int]:
    """The literal string whose "(" is at ``start``, unescaped, and the index just past its ")"."""
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}
    out, depth, i = bytearray(), 0, start + 1
    while True:
        c = data[i]
        if c == 0x5C:  # backslash: matplotlib escapes \ ( ) \n \r this way, never in octal
            out += escapes.get(data[i + 1], bytes([data[i + 1]]))
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            if depth == 0:
                return bytes(out), i + 1
            depth -= 1
        out.append(c)
        i += 1


def _png_file(width: int, height: int, bits: int, colour_type: int, idat: bytes, palette: bytes | None) -> bytes:
    """A PNG file around ``idat`` (zlib-compressed PNG rows, as a PDF stream with PNG predictors holds them)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body))

    header = struct.pack("!IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + (chunk(b"PLTE", palette) if palette else b"")
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
