"""Landing page: which conditions the registry holds, with their volumes."""

import streamlit as st

from vbhc.catalog import default_catalog
from vbhc.registry import condition_volumes, dataset_version
from vbhc.settings import database_url
from vbhc.store import get_engine, upgrade_schema


@st.cache_resource
def _engine(url: str):
    engine = get_engine(url)
    upgrade_schema(engine)
    return engine


@st.cache_data(ttl=3600, max_entries=16)
def _volumes(url: str, version: str):
    """Cached per database and dataset version: a new import shows at once."""
    return condition_volumes(engine=_engine(url))


st.title("Value-based healthcare outcomes")
url = database_url()
volumes = _volumes(url, dataset_version(_engine(url)))
if volumes.empty:
    st.info(
        "The registry database is empty. Load the synthetic demo registry with `vbhc demo`, "
        "or import your registry files with `vbhc import FILE...` (CSV or XLSX)."
    )
else:
    catalog = default_catalog()
    table = volumes.assign(
        condition=[catalog.conditions[c].label_en if c in catalog.conditions else c for c in volumes["condition"]]
    ).rename(
        columns={
            "condition": "Condition",
            "care_cycles": "Care cycles",
            "hospitals": "Hospitals",
            "first_index_date": "First index date",
            "last_index_date": "Last index date",
        }
    )
    st.metric("Care cycles in the registry", f"{int(volumes['care_cycles'].sum()):,}")
    st.dataframe(table, hide_index=True, width="stretch")
