"""Data layer: loading, schema inference, validation, cleaning, id maps and splits."""
from recsys_core.data.clean import CleaningOptions
from recsys_core.data.dataset import Dataset, load_dataset
from recsys_core.data.idmap import IdMap
from recsys_core.data.splits import History, Split, leave_last_out, make_split

__all__ = ["CleaningOptions", "Dataset", "History", "IdMap", "Split", "leave_last_out", "load_dataset", "make_split"]
