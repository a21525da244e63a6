"""The educators' terminal UI (Textual): the case library, the conversation, the debrief.

This package is the only code that imports textual, and only its screen modules do: ``session``
and ``export`` (the episode and its files) do not. Start it with ``agentclinic tui`` or
``agentclinic.tui.app.make_app(...)``.
"""
