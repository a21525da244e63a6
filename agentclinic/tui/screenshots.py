"""The README's screenshots: ``python -m agentclinic.tui.screenshots [FOLDER]`` plays a bank station offline
(the scripted patient, a frozen clock) and saves the conversation and the debrief as SVG files
(``tui-conversation.svg``, ``tui-debrief.svg``; default folder: docs/)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from agentclinic.scenario.loaders import BANK_DIR

STATION = BANK_DIR / "conversations" / "lung-cancer-news.yaml"
LEARNER = ["Hello Mr Price, I'm Dr Shah, one of the lung doctors. Is it all right to talk here, just the two of us?",
           "Before I go through the scan, what have you made of things so far?",
           "Would you like me to go through the results in detail, or just the main points?",
           "I'm afraid it's not the news we hoped for. The scan shows a growth in your lung that is very likely a "
           "cancer, and it has spread to your liver.",
           "I can see that's a huge shock. What's going through your mind right now?"]


async def _play(folder: Path) -> None:
    from agentclinic.tui.app import make_app

    with tempfile.TemporaryDirectory() as out:
        os.chdir(out)  # the debrief names the run folder: runs/screenshots
        app = make_app([STATION], out="runs", run_id="screenshots", instructor=True, clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            while app.screen.session is None or app.screen.busy:
                await asyncio.sleep(0.2)
            app.screen.query_one("#say").cursor_blink = False
            for text in LEARNER:
                await pilot.press(*text, "enter")
                await app.workers.wait_for_complete()
                await pilot.pause()
            app.save_screenshot("tui-conversation.svg", str(folder))
            await pilot.press("ctrl+e")
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.save_screenshot("tui-debrief.svg", str(folder))


def main(argv: list[str]) -> None:
    folder = Path(argv[0] if argv else "docs").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    asyncio.run(_play(folder))
    print(f"wrote {folder / 'tui-conversation.svg'} and {folder / 'tui-debrief.svg'}")


if __name__ == "__main__":
    main(sys.argv[1:])
