"""Data sets, the leave-one-out split, target selection and attack budgets."""
from apt_core.data.dataset import Interactions, RatingData, RatingScale
from apt_core.data.loaders import KNOWN_DATASETS, load_csv, load_dataset, load_ncf_split
from apt_core.data.split import Split, attack_budget, leave_one_out, select_targets

__all__ = [
    "Interactions",
    "RatingData",
    "RatingScale",
    "KNOWN_DATASETS",
    "load_csv",
    "load_dataset",
    "load_ncf_split",
    "Split",
    "attack_budget",
    "leave_one_out",
    "select_targets",
]
