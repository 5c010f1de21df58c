"""Data sets: where a task's files live, and `sparsetrain data fetch` to put them there."""

from sparsetrain.data.catalog import DATASETS, DataSet, get_dataset
from sparsetrain.data.fetch import fetch_dataset
from sparsetrain.data.locate import DATA_ENV, data_dir, require_files

__all__ = ["DATASETS", "DATA_ENV", "DataSet", "data_dir", "fetch_dataset", "get_dataset",
           "require_files"]
