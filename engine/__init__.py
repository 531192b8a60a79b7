"""Inference engine: turns batches of beats into beat labels."""

from engine._types import AAMI_SYMBOLS, Beat, BeatClassifier, LabeledBeat, UnclassifiedClassifier

__all__ = ["AAMI_SYMBOLS", "Beat", "BeatClassifier", "LabeledBeat", "UnclassifiedClassifier"]
