"""Training the beat classifier: DS1 beat sets, supervised training, synthetic-ECG pretraining."""

from engine.training._dataset import DS1, DS2, BeatSet, aami_labels, beats_of_record, load_beatset
from engine.training._pretrain import synthetic_beats
from engine.training._train import train

__all__ = ["DS1", "DS2", "BeatSet", "aami_labels", "beats_of_record", "load_beatset", "synthetic_beats", "train"]
