"""Media as pictures: a grid of predictions and a confusion-matrix heat map, drawn with Pillow.

Pillow rather than matplotlib: Pillow is already installed with torchvision and ships its type
information; matplotlib is not installed and would add about 40 MB and 0.5 s of import to draw
two simple pictures. Each picture carries what it shows as PNG text (``LAYOUT_KEY``: the labels,
the counts, where each tile or cell is), so a test or a script can check the pixels against it.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from typedexp.tracking.base import ConfusionMatrix, Media, PredictionSamples

if TYPE_CHECKING:
    from PIL import Image, ImageFont, PngImagePlugin

LAYOUT_KEY = "typedexp"  # the PNG text chunk holding the picture's layout and data as JSON
TILE = 96  # px: the smallest side of a sample's picture (8x8 digits are scaled up 12x)
PAD = 4  # px between tiles and around the grid
CAPTION = 16  # px: the caption band under each tile, "pred 3 / true 5"
RIGHT = (32, 140, 64)  # caption colour of a correct prediction (green)
WRONG = (200, 40, 40)  # and of a wrong one (red)
MAX_CELL, MIN_TEXT_CELL = 36, 22  # px: matrix cells; counts are written only in cells this big
MATRIX_SIDE = 900  # px: the matrix's largest side before cells shrink below MAX_CELL
MARGIN = 48  # px: room for the axis titles and class numbers


@dataclass(frozen=True)
class Picture:
    """A rendered picture, the caption trackers show with it, and its layout (PNG text)."""

    image: Image.Image
    caption: str
    layout: dict[str, object]

    def png_info(self) -> PngImagePlugin.PngInfo:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text(LAYOUT_KEY, json.dumps(self.layout))
        return info


def render(media: Media) -> Picture:
    if isinstance(media, PredictionSamples):
        return prediction_grid(media)
    return confusion_heat_map(media)


def prediction_grid(samples: PredictionSamples) -> Picture:
    """Tiles in rows of ceil(sqrt(K)), each image scaled up by a whole factor, captioned below."""
    import torch
    from PIL import Image, ImageDraw

    count, channels, height, width = samples.images.shape
    scale = max(1, math.ceil(TILE / max(height, width)))  # nearest-neighbour: pixels stay sharp
    tile_w, tile_h = width * scale, height * scale
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    step_x, step_y = tile_w + PAD, tile_h + CAPTION + PAD
    grid = Image.new("RGB", (PAD + columns * step_x, PAD + rows * step_y), "white")
    draw = ImageDraw.Draw(grid)
    font = caption_font()
    # (K, C, H, W) in [0, 1] -> (K, H, W, 3) uint8; one channel is shown as grey, more as RGB.
    pixels = (samples.images[:, :3] * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    if channels == 1:
        pixels = pixels.expand(-1, -1, -1, 3)
    elif channels == 2:
        pixels = pixels[..., :1].expand(-1, -1, -1, 3)
    tiles: list[list[int]] = []
    for k in range(count):
        x, y = PAD + (k % columns) * step_x, PAD + (k // columns) * step_y
        tile = Image.fromarray(pixels[k].contiguous().numpy(), "RGB").resize((tile_w, tile_h), Image.Resampling.NEAREST)
        grid.paste(tile, (x, y))
        right = samples.predicted[k] == samples.labels[k]
        draw.text(
            (x + 2, y + tile_h + 2), f"pred {samples.predicted[k]} / true {samples.labels[k]}",
            fill=RIGHT if right else WRONG, font=font,
        )
        tiles.append([x, y])
    correct = sum(p == t for p, t in zip(samples.predicted, samples.labels))
    layout: dict[str, object] = {
        "kind": "prediction_grid", "tiles": tiles, "tile_size": [tile_w, tile_h], "scale": scale,
        "labels": list(samples.labels), "predicted": list(samples.predicted),
    }
    caption = f"{correct} of {count} validation images right (caption: predicted / true class)"
    return Picture(grid, caption, layout)


def confusion_heat_map(matrix: ConfusionMatrix) -> Picture:
    """Rows are true classes, columns predicted ones; darker blue is more examples."""
    from PIL import Image, ImageDraw

    counts = matrix.counts
    classes = len(counts)
    cell = max(4, min(MAX_CELL, MATRIX_SIDE // max(classes, 1)))
    side = classes * cell
    image = Image.new("RGB", (MARGIN + side + PAD, MARGIN + side + PAD), "white")
    draw = ImageDraw.Draw(image)
    font = caption_font()
    most = max((value for row in counts for value in row), default=0) or 1
    for true, row in enumerate(counts):
        for predicted, value in enumerate(row):
            x, y = MARGIN + predicted * cell, MARGIN + true * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=shade(value / most))
            if cell >= MIN_TEXT_CELL and value:
                ink = "white" if value / most > 0.5 else "black"
                draw.text((x + cell / 2, y + cell / 2), str(value), fill=ink, font=font, anchor="mm")
    if cell >= MIN_TEXT_CELL:  # class numbers along both axes
        for k in range(classes):
            draw.text((MARGIN + k * cell + cell / 2, MARGIN - 4), str(k), fill="black", font=font, anchor="md")
            draw.text((MARGIN - 4, MARGIN + k * cell + cell / 2), str(k), fill="black", font=font, anchor="rm")
    draw.text((MARGIN, 4), "predicted class ->", fill="black", font=font)
    draw.text((4, MARGIN - 16), "true", fill="black", font=font)
    total = sum(sum(row) for row in counts)
    right = sum(counts[k][k] for k in range(classes))
    layout: dict[str, object] = {
        "kind": "confusion_matrix", "origin": [MARGIN, MARGIN], "cell": cell, "counts": [list(row) for row in counts],
    }
    caption = f"validation split: {right} of {total} right; rows true class, columns predicted"
    return Picture(image, caption, layout)


@functools.cache
def caption_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at 11 px, loaded once per process (loading costs ~30 ms)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=11)


def shade(fraction: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1), each channel falling strictly, so a larger count is darker."""
    red, green, blue = (round(low + (high - low) * fraction) for low, high in ((255, 8), (255, 48), (255, 107)))
    return red, green, blue
