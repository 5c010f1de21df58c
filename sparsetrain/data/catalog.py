"""The data sets `sparsetrain data fetch` knows: their files, checksums and public source.

Adding a data set is adding one `DataSet` to `DATASETS`; fetching, importing and checking
work from this table alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Mapping

from sparsetrain.errors import ConfigError


@dataclass(frozen=True)
class DataSet:
    name: str
    folder: str                     # its folder under the data root (`$SPARSETRAIN_DATA/<folder>`)
    files: Mapping[str, str]        # file name -> sha256 of the exact bytes tasks expect
    url: str | None                 # canonical public archive holding the files (matched by name)
    local_copy: str                 # what to pass to --from when offline


DATASETS: dict[str, DataSet] = {
    dataset.name: dataset
    for dataset in (
        DataSet(
            name="ptb",
            folder="ptb",
            # Mikolov's simple-examples, data/ptb.{train,valid,test}.txt (10k-word vocabulary).
            files={
                "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            },
            url="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
            local_copy="simple-examples.tgz, a .zip, or a folder holding "
                       "ptb.train.txt, ptb.valid.txt and ptb.test.txt",
        ),
    )
}


def get_dataset(name: str) -> DataSet:
    """The data set called `name`; an unknown name lists the known ones."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        hint = f"; did you mean {close[0]}? " if close else "; "
        raise ConfigError(f"unknown data set {name!r}{hint}known: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_with_files(names: Iterable[str]) -> DataSet | None:
    """The known data set that holds all of `names`, if any (to say how to fetch them)."""
    wanted = set(names)
    return next((d for d in DATASETS.values() if wanted <= set(d.files)), None)
