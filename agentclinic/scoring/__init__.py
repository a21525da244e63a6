"""Scoring: the diagnosis verdict, the dialogue axes, rewards."""
