"""A contact sheet of synthetic lines: what the renderer makes for a recipe, one line per row with its font and text.

    trocr-lail render --sheet out.png [--config recipe.yaml] [--split train] [--lines 24] [--seed 0]
"""

from __future__ import annotations

import argparse

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


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--sheet", required=True, help="Output image (.png).")
    parser.add_argument("--config", default=None,
                        help="Recipe whose synthetic settings (text files, font folder, printed share, ...) to use.")
    parser.add_argument("--split", default="train", choices=("train", "validation", "test"),
                        help="Which split's fonts and text (default train).")
    parser.add_argument("--lines", type=int, default=24, help="Rows on the sheet (default 24).")
    parser.add_argument("--seed", type=int, default=None, help="Rendering seed (default: the recipe's, or 0).")
    parser.add_argument("--start", type=int, default=0, help="First line index (default 0).")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.config:
        from ..run import parse_args
        from .stream import line_spec

        data_args = parse_args(["--config", args.config])[1]
        spec = line_spec(data_args, args.split)
    else:
        spec = LineSpec(split=args.split)
    if args.seed is not None:
        spec = LineSpec(**{**spec.__dict__, "seed": args.seed})
    contact_sheet(spec, args.lines, start=args.start).save(args.sheet)
    print(f"wrote {args.lines} {args.split} lines (seed {spec.seed}) to {args.sheet}")
    return 0
