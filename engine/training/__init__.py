"""Training the beat classifier: DS1 beat sets, supervised training, synthetic-ECG pretraining."""

from engine.training._dataset import DS1, DS2, BeatSet, aami_labels, beats_of_record, load_beatset
from engine.training._pretrain import synthetic_beats
from engine.training._train import DEFAULT_OUT, check_output, train

__all__ = [
    "DEFAULT_OUT",
    "DS1",
    "DS2",
    "BeatSet",
    "aami_labels",
    "beats_of_record",
    "check_output",
    "load_beatset",
    "synthetic_beats",
    "train",
]
