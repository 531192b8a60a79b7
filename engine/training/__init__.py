"""Training the beat classifier: DS1 beat sets (and robust variants), supervised training, synthetic-ECG pretraining."""

from engine.training._augment import VARIANTS, Variant, default_cache_dir, robust_beatset, variant_beats
from engine.training._dataset import DS1, DS2, BeatSet, aami_labels, beats_of_record, concat, label_beats, load_beatset
from engine.training._pretrain import synthetic_beats
from engine.training._train import DEFAULT_OUT, check_output, train

__all__ = [
    "DEFAULT_OUT",
    "DS1",
    "DS2",
    "VARIANTS",
    "BeatSet",
    "Variant",
    "aami_labels",
    "beats_of_record",
    "check_output",
    "concat",
    "default_cache_dir",
    "label_beats",
    "load_beatset",
    "robust_beatset",
    "synthetic_beats",
    "train",
    "variant_beats",
]
