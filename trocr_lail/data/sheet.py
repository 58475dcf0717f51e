"""A contact sheet of synthetic lines: what the renderer makes for a recipe, one line per row with its font and text.

    trocr-lail render --sheet out.png [--config recipe.yaml] [--split train] [--lines 24] [--seed 0]
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .synthetic import LineFactory, LineSpec

ROW_HEIGHT, CAPTION_HEIGHT, MARGIN = 64, 16, 8


def contact_sheet(spec: LineSpec, lines: int = 24, width: int = 1400, start: int = 0) -> Image.Image:
    """Lines ``start .. start+lines-1`` of ``spec``, each scaled to fit ``width`` x ``ROW_HEIGHT`` and captioned."""
    factory = LineFactory(spec)
    caption_font = ImageFont.load_default()
    sheet = Image.new("RGB", (width + 2 * MARGIN, lines * (ROW_HEIGHT + CAPTION_HEIGHT + MARGIN) + MARGIN), "white")
    draw = ImageDraw.Draw(sheet)
    y = MARGIN
    for index in range(start, start + lines):
        row = factory(index)
        image = row["image"]
        scale = min(ROW_HEIGHT / image.height, width / image.width)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BILINEAR)
        draw.text((MARGIN, y), f"#{index} {row['font']} ({len(row['text'])} chars): {row['text']}", fill=(160, 0, 0),
                  font=caption_font)
        sheet.paste(image.convert("RGB"), (MARGIN, y + CAPTION_HEIGHT))
        y += ROW_HEIGHT + CAPTION_HEIGHT + MARGIN
    return sheet
