"""Terminal drawings as rich ``Text``: an image in half blocks, the emotional arc, the state bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image
from rich.style import Style
from rich.text import Text

EMOTIONS = ("distress", "anger", "trust", "understanding")
LEVELS = " ▁▂▃▄▅▆▇█"
EMOTION_COLOURS = {"distress": "magenta", "anger": "red", "trust": "green", "understanding": "cyan"}
SCALE = 4  # each emotion is 0..4


def half_blocks(pixels: np.ndarray, width: int = 48, max_rows: int = 20) -> Text:
    """An image (H x W grey or H x W x 3 uint8) in at most ``width`` columns and ``max_rows`` rows of '▀'
    cells: the foreground is the upper pixel, the background the lower one (a cell is two pixels tall)."""
    image = Image.fromarray(pixels).convert("RGB")
    width = max(4, min(width, image.width, round(max_rows * 2 * image.width / image.height)))
    rows = max(1, round(image.height * width / image.width / 2))
    data = np.asarray(image.resize((width, rows * 2), Image.Resampling.LANCZOS))
    text = Text()
    for y in range(rows):
        for x in range(width):
            top, bottom = data[2 * y, x], data[2 * y + 1, x]
            text.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                   bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
        if y < rows - 1:
            text.append("\n")
    return text


def image_text(path: str, width: int = 48) -> Text:
    """A local image file (PNG, JPEG, DICOM...) in half blocks, or why it cannot be shown."""
    from agentclinic.tools import ToolError
    from agentclinic.tools.imaging import display_image

    try:
        return half_blocks(display_image(path), width)
    except (ToolError, OSError, ValueError) as exc:
        return Text(f"(cannot draw {path}: {exc})", style="italic")


def bar(value: int, scale: int = SCALE) -> str:
    """A 0..scale value as a bar of full and empty cells."""
    value = max(0, min(scale, int(value)))
    return "█" * value + "·" * (scale - value)


def emotion_bars(state: Mapping[str, int] | None) -> Text:
    """The person's state, one labelled bar per emotion."""
    if not state:
        return Text("no emotional state (diagnostic case)", style="italic")
    text = Text()
    for i, name in enumerate(EMOTIONS):
        value = int(state.get(name, 0))
        text.append(f"{name:<14}", style="bold")
        text.append(bar(value), style=EMOTION_COLOURS[name])
        text.append(f" {value}")
        if i < len(EMOTIONS) - 1:
            text.append("\n")
    return text


def arc_chart(arc: Sequence[Mapping[str, int]]) -> Text:
    """The emotional arc: one row per emotion, one block per turn (height = level 0..4), turns below."""
    if not arc:
        return Text("no emotional arc recorded", style="italic")
    text = Text()
    for name in EMOTIONS:
        text.append(f"{name:<14}", style="bold")
        for point in arc:
            level = max(0, min(SCALE, int(point.get(name, 0))))
            text.append(LEVELS[level * 2] if level else "_", style=EMOTION_COLOURS[name])
        first, last = int(arc[0].get(name, 0)), int(arc[-1].get(name, 0))
        text.append(f"  {first}→{last}\n")
    turns = [int(point.get("turn", i)) for i, point in enumerate(arc)]
    text.append(" " * 14 + "".join(str(t % 10) for t in turns), style="dim")
    text.append("  turn (last digit)", style="dim")
    return text
