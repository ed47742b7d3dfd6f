"""Altair made fast enough for a filter change (issue 4: under 0.5 s on this 2-core machine).

A filter change on the condition-team, PROMs or compare page builds 3–6 charts. Altair spent about 0.85 s of
pure Python on them, most of it in five places that do the same work again and again:

* **copies**: every layer, concat, ``properties`` and ``to_dict`` deep-copies the whole chart, and each copy
  re-runs the constructors (which copy the sub-charts once more). A copy here rebuilds each schema object
  from its stored arguments without re-running the constructor, which Altair's own copy gives back anyway.
* **channel shorthands** (``"n:Q"``, ``alt.value(4)``, ``alt.when(...)``): each one is converted by trying
  JSON-schema alternatives one after another. The converted object of a given definition is remembered
  (a bounded table) and a copy handed out.
* **data**: Altair's ``sanitize_pandas_dataframe`` copies the frame and converts column by column with
  pandas ``where``. The ``vbhc`` data transformer (Altair's public plugin registry) writes the same values
  straight from the columns; anything unusual goes to Altair's own transformer.
* **serialising**: ``to_dict`` asks every string and number ~10 type questions, one of them a slow runtime
  protocol check; plain values, lists and dicts are now answered first.
* **the class table** that ``from_dict`` hashes for ~700 schema classes is built once instead of per call.

Together (``benchmarks/chart_speed.py``, build and ``to_dict``, 50k demo): the condition-team page's five
charts went from 0.44–0.48 s to 0.11–0.12 s, the compare page's small multiples from 0.55–0.59 s to 0.09–0.10 s.
The specs are unchanged, byte for byte:
tests/test_altair_speedups.py builds every chart with and without these and compares the specs, and checks
the data transformer against Altair's on random frames. One deliberate difference: where Altair (with
pandas 3) leaves a NaN in a text or mixed column, which is not valid JSON, the value is null here.
Each speed-up first checks that the Altair internal it replaces is still there; if a later Altair renames it,
that speed-up is skipped and charts are only slower. Process-wide by design: every chart in the process is
built the same way.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, ClassVar

import altair as alt
import numpy as np
import pandas as pd
from altair.utils import data as altair_data
from altair.utils import schemapi
from pandas.core.dtypes.cast import maybe_box_native  # what to_dict("records") applies to each cell
from pandas.core.dtypes.dtypes import BaseMaskedDtype  # Int64, Float64, boolean

__all__ = ["TRANSFORMER", "chart_values", "install", "installed", "uninstall"]

#: Name of the data transformer in Altair's registry.
TRANSFORMER = "vbhc"

_SchemaBase = schemapi.SchemaBase
_UNDEFINED_TYPE = type(schemapi.Undefined)
#: Values a copy can share: immutable scalars and Altair's Undefined.
_SHARED = frozenset({str, int, float, bool, type(None), _UNDEFINED_TYPE})

_originals: dict[str, Any] = {}
_lock = threading.Lock()


# ------------------------------------------------------------------------------------------------ copies


def _deep_copy(obj: Any, by_ref: set[str]) -> Any:
    """Same result as ``altair.utils.schemapi._deep_copy``: schema objects, lists and dicts copied, everything
    else shared, keys in ``by_ref`` shared. The constructor is not re-run: it only stores the arguments it is
    given, which are those of an object it already normalised."""
    cls = obj.__class__
    if cls in _SHARED:
        return obj
    if cls is list:
        return [v if v.__class__ in _SHARED else _deep_copy(v, by_ref) for v in obj]
    if cls is dict:
        return {k: v if v.__class__ in _SHARED or k in by_ref else _deep_copy(v, by_ref) for k, v in obj.items()}
    if isinstance(obj, _SchemaBase):
        # looked up on the class: on the object it goes through SchemaBase.__getattr__ and a caught
        # AttributeError for every object (a schema object has no per-object __deepcopy__)
        copier = getattr(cls, "__deepcopy__", None)
        if copier is not None:
            return copier(obj, obj)  # as Altair's own copy calls it
        new = object.__new__(cls)
        args = tuple(a if a.__class__ in _SHARED else _deep_copy(a, by_ref) for a in obj._args)
        kwds = {k: v if v.__class__ in _SHARED or k in by_ref else _deep_copy(v, by_ref) for k, v in obj._kwds.items()}
        object.__setattr__(new, "_args", args)
        object.__setattr__(new, "_kwds", kwds)
        return new
    if isinstance(obj, list):
        return [_deep_copy(v, by_ref) for v in obj]
    if isinstance(obj, dict):
        return {k: v if k in by_ref else _deep_copy(v, by_ref) for k, v in obj.items()}
    return obj


#: Leaves ``_todict`` returns as they are (Altair asks each one ~10 questions first, one of them a slow
#: runtime protocol check).
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _todict(obj: Any, context: dict[str, Any] | None, np_opt: Any, pd_opt: Any) -> Any:
    """Same result as ``altair.utils.schemapi._todict``, with plain leaves, lists and dicts handled first."""
    cls = obj.__class__
    if cls in _LEAVES:
        return obj
    if cls is dict:
        return {k: _todict(v, context, np_opt, pd_opt) for k, v in obj.items() if v is not schemapi.Undefined}
    if cls is list:
        return [_todict(v, context, np_opt, pd_opt) for v in obj]
    return _originals["_todict"](obj, context, np_opt, pd_opt)


# ------------------------------------------------------------------------------------- channel shorthands

#: Converted channel definitions kept; a dashboard uses a few hundred distinct ones.
FROM_DICT_MEMO_SIZE = 4096


class _FromDictMemo:
    """``SchemaBase.from_dict`` without validation, remembered per class and JSON definition."""

    def __init__(self, original: Any, size: int) -> None:
        self.original = original
        self.size = size
        self._objects: OrderedDict[tuple[type, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, cls: type, dct: Any, validate: bool = True) -> Any:
        if validate or not isinstance(dct, dict):
            return self.original(cls, dct, validate)
        try:
            key = (cls, json.dumps(dct, sort_keys=True))
        except (TypeError, ValueError):  # holds objects (a parameter, a frame): not remembered
            return self.original(cls, dct, validate)
        with self._lock:
            known = self._objects.get(key)
            if known is not None:
                self._objects.move_to_end(key)
        if known is None:
            known = self.original(cls, dct, validate)
            with self._lock:
                self._objects[key] = known
                while len(self._objects) > self.size:
                    self._objects.popitem(last=False)
        return schemapi._deep_copy(known, set())  # callers may change what they get


# ------------------------------------------------------------------------------------------- class table


def _from_dict_class_table_once(original: type) -> type:
    class _FromDictOnce(original):  # type: ignore[misc, valid-type]
        """Altair rebuilds a hash table of all its schema classes for every ``from_dict``; it depends only on
        the classes, so it is built once and shared."""

        _vbhc_cached = True
        _tables: ClassVar[dict[tuple[type, ...], dict]] = {}

        def __init__(self, wrapper_classes, /) -> None:
            classes = tuple(wrapper_classes)
            table = self._tables.get(classes)
            if table is None:
                super().__init__(classes)
                self._tables[classes] = self.class_dict
            else:
                self.class_dict = table

    return _FromDictOnce


# -------------------------------------------------------------------------------------------------- data


def _column_values(column: pd.Series) -> list[Any] | None:
    """The JSON values Altair's sanitizer gives this column, or None for a dtype left to Altair."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b" or dtype.kind in "iu":
            return column.tolist()  # Python bools and ints
        if dtype.kind == "f":
            numbers = column.to_numpy()
            values = numbers.astype(object)
            values[~np.isfinite(numbers)] = None  # NaN and ±inf are not JSON
            return values.tolist()
        if dtype.kind == "M":
            return _iso_datetimes(column)
        if dtype.kind != "O":
            return None  # timedelta and friends: Altair explains what to do
    elif isinstance(dtype, pd.DatetimeTZDtype):
        return ["" if v is pd.NaT else v.isoformat() for v in column]
    elif not isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype, BaseMaskedDtype)):
        return None  # pyarrow-backed columns, intervals, periods, sparse: left to Altair
    if not isinstance(dtype, BaseMaskedDtype):
        text = column.to_numpy(dtype=object, na_value=None)
        if all(v is None or v.__class__ is str for v in text):
            return text.tolist()  # labels: the common case
    # mixed, categories of numbers, nullable numbers: Altair's own steps (pandas' type inference included)
    values = column.astype(object)
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        values = values.apply(_list_if_array)
    values = values.where(values.notnull(), None)
    return [_json_cell(v) for v in values]


def _iso_datetimes(column: pd.Series) -> list[str]:
    """Full ISO date-times as ``Timestamp.isoformat()`` writes them ("" for NaT): Vega reads them as local
    time. Whole seconds (registry dates) are written in one NumPy call; anything finer one by one."""
    stamps = column.to_numpy()
    known = ~np.isnat(stamps)
    if (stamps[known] == stamps[known].astype("datetime64[s]")).all():
        text = np.datetime_as_string(stamps, unit="s")
        text[~known] = ""
        return text.tolist()
    return ["" if v is pd.NaT else v.isoformat() for v in column]


def _list_if_array(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _json_cell(value: Any) -> Any:
    """A cell as pandas' ``to_dict("records")`` gives it, except NaN: with pandas 3 Altair's sanitizer can leave
    a NaN in a text or mixed column (its ``where(..., None)`` is undone by type inference), which is not JSON;
    it is null here."""
    value = maybe_box_native(value)
    return None if isinstance(value, float) and value != value else value


def chart_values(frame: pd.DataFrame) -> list[dict[str, Any]] | None:
    """A frame's rows as Altair would ship them (``sanitize_pandas_dataframe`` + records), or None when the
    frame has something Altair should judge itself (non-text column names, hierarchical index, timedeltas)."""
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex) or isinstance(frame.index, pd.MultiIndex):
        return None
    if isinstance(columns, pd.RangeIndex) or not all(isinstance(c, str) for c in columns):
        return None
    if columns.has_duplicates:
        return None
    values = []
    for _, column in frame.items():
        column_values = _column_values(column)
        if column_values is None:
            return None
        values.append(column_values)
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)] if names else [{}] * len(frame)


def _transform(data: Any, max_rows: int | None) -> Any:
    if isinstance(data, pd.DataFrame):
        if max_rows is not None and len(data) > max_rows:
            n = len(data)
            raise alt.MaxRowsError(
                f"The number of rows in your dataset ({n}) is greater than the maximum allowed ({max_rows})."
            )
        values = chart_values(data)
        if values is not None:
            return {"values": values}
    return altair_data.to_values(altair_data.limit_rows(data, max_rows=max_rows))


def data_transformer(data: Any = None, max_rows: int | None = 5000) -> Any:
    """Altair's default transformer (row limit, then values), with pandas frames converted directly."""
    if data is None:
        return lambda data: _transform(data, max_rows)
    return _transform(data, max_rows)


# -------------------------------------------------------------------------------------------- switching


def install() -> None:
    """Put the speed-ups in place (idempotent)."""
    with _lock:
        if _originals:
            return
        if callable(getattr(schemapi, "_deep_copy", None)):
            _originals["_deep_copy"] = schemapi._deep_copy
            schemapi._deep_copy = _deep_copy
        if callable(getattr(schemapi, "_todict", None)):
            _originals["_todict"] = schemapi._todict
            schemapi._todict = _todict
        original_from_dict = getattr(_SchemaBase.__dict__.get("from_dict"), "__func__", None)
        if original_from_dict is not None:
            _originals["from_dict"] = _SchemaBase.__dict__["from_dict"]
            _SchemaBase.from_dict = classmethod(_FromDictMemo(original_from_dict, FROM_DICT_MEMO_SIZE))
        if isinstance(getattr(schemapi, "_FromDict", None), type):
            _originals["_FromDict"] = schemapi._FromDict
            schemapi._FromDict = _from_dict_class_table_once(schemapi._FromDict)
        _originals["transformer"] = alt.data_transformers.active
        alt.data_transformers.register(TRANSFORMER, data_transformer)
        alt.data_transformers.enable(TRANSFORMER)
        _originals["debug_mode"] = schemapi.DEBUG_MODE
        # Altair also validates every schema object as it is built; the finished specs of every builder are
        # validated against the Vega-Lite schema in the tests (to_dict()), so objects are built unvalidated
        schemapi.disable_debug_mode()


def uninstall() -> None:
    """Altair as it came (for the tests that compare both)."""
    with _lock:
        if not _originals:
            return
        if "_deep_copy" in _originals:
            schemapi._deep_copy = _originals["_deep_copy"]
        if "_todict" in _originals:
            schemapi._todict = _originals["_todict"]
        if "from_dict" in _originals:
            _SchemaBase.from_dict = _originals["from_dict"]
        if "_FromDict" in _originals:
            schemapi._FromDict = _originals["_FromDict"]
        alt.data_transformers.enable(_originals["transformer"] or "default")
        if _originals["debug_mode"]:
            schemapi.enable_debug_mode()
        _originals.clear()


def installed() -> bool:
    return bool(_originals)
