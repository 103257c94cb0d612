"""Obs enumerations named like their columns, so that every supported client can value-filter obs.

tiledbsoma 2.3 names the TileDB enumeration of a dictionary column ``{column}_{arrow format}`` (e.g.
``dataset_id_U``; TileDB-SOMA PR #3690). Clients with tiledbsoma <= 1.15 look an enumeration up by its
attribute's name, so any obs ``value_filter`` on such a release fails there with "No enumeration named
'dataset_id'" (TileDB-SOMA issue #3786); cellxgene-census 1.18 still accepts tiledbsoma 1.15.3. Releases whose
enumerations are named exactly like their attributes (as tiledbsoma 1.15 wrote them) are filtered by both old
and new tiledbsoma, and tiledbsoma 2.3 still reads, writes and extends them.

:func:`name_enumerations_like_columns` renames them right after tiledbsoma created the (empty) obs array, in
two TileDB schema evolutions: the first drops every attribute from the first enumerated one on; the second drops
their old enumerations and re-adds the attributes in the same order with the same type, nullability, fill value
and filters, each enumerated one with an enumeration named like itself holding the same values. The SOMA
metadata (array metadata) and the current domain are untouched.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from census_builder.errors import StorageError

logger = logging.getLogger(__name__)

_NEXT_MS = 0.002  # seconds: a schema evolution's timestamp is its wall clock in ms


def name_enumerations_like_columns(uri: str) -> list[str]:
    """Rename every enumeration of the empty dataframe at ``uri`` to its attribute's name; return the renamed
    attributes (none when each already has its own name)."""
    import tiledb

    schema = tiledb.ArraySchema.load(uri)
    attrs = [schema.attr(i) for i in range(schema.nattr)]
    first = next((i for i, a in enumerate(attrs) if a.enum_label not in (None, a.name)), None)
    if first is None:
        return []
    with tiledb.open(uri) as array:
        if array.nonempty_domain() is not None:
            raise StorageError(
                f"{uri}: cannot rename the obs enumerations of a dataframe that already holds rows; "
                "build it from scratch (census_builder build --restart)"
            )
        enumerations = {a.name: array.enum(a.enum_label) for a in attrs[first:] if a.enum_label not in (None, a.name)}
    # everything is built before the first evolution, so that a failure leaves the array as it was
    added = [
        tiledb.Enumeration(n, e.ordered, values=_strings(uri, n, e), dtype=np.str_) for n, e in enumerations.items()
    ]
    readded = [_same_attribute(tiledb, a, None if a.enum_label is None else a.name) for a in attrs[first:]]
    drop = tiledb.ArraySchemaEvolution()
    for a in attrs[first:]:
        drop.drop_attribute(a.name)
    _evolve(drop, uri)  # TileDB refuses to drop an enumeration in the evolution that drops its attribute
    evolution = tiledb.ArraySchemaEvolution()
    for a in attrs[first:]:
        if a.name in enumerations:  # one already named like its attribute stays
            evolution.drop_enumeration(a.enum_label)
    for enumeration in added:
        evolution.add_enumeration(enumeration)
    for attr in readded:
        evolution.add_attribute(attr)
    _evolve(evolution, uri)
    renamed = [a.name for a in attrs[first:] if a.name in enumerations]
    logger.debug("%s: enumerations renamed like their columns: %s", uri, renamed)
    return renamed


def _evolve(evolution: Any, uri: str) -> None:
    """Apply ``evolution`` to ``uri`` in a later millisecond than the array's previous schema: TileDB orders an
    array's schemas by their timestamps (ms), so two in the same millisecond would leave the current one unclear."""
    time.sleep(_NEXT_MS)
    evolution.array_evolve(uri)


def _strings(uri: str, name: str, enumeration: Any) -> npt.NDArray[np.str_]:
    """Return the values of string enumeration ``enumeration`` (of column ``name``) as a NumPy str array, which
    (even when empty) makes tiledb-py create a variable-length UTF-8 enumeration, as tiledbsoma does."""
    if enumeration.dtype.kind != "U":
        raise StorageError(
            f"{uri}: the enumeration of obs column {name!r} holds {enumeration.dtype}, not strings; only string "
            "columns are enumerations (census_builder.soma.platform.obs_field_type): this is a bug in census_builder"
        )
    return np.array([str(v) for v in enumeration.values()], dtype=np.str_)


def _same_attribute(tiledb: Any, attr: Any, enum_label: str | None) -> Any:
    """Return a copy of TileDB attribute ``attr`` with enumeration ``enum_label``."""
    return tiledb.Attr(
        name=attr.name,
        dtype=attr.dtype,
        fill=None if attr.isnullable else attr.fill,
        var=attr.isvar,
        nullable=attr.isnullable,
        filters=attr.filters,
        enum_label=enum_label,
    )
