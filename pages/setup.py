"""Setup page: task, model family, base and strategy; what will train; the exact command to reproduce it."""
import json

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import active_dataset, active_source, config_widgets, pretty_json, show_error
from recsys_core.bases import available_bases, resolve_base
from recsys_core.data.splits import History
from recsys_core.errors import RecTuneError
from recsys_core.models import FAMILIES
from recsys_core.models.memory import USABLE_SHARE, DataSizes, available_bytes, format_bytes
from recsys_core.runs.spec import RunSpec
from recsys_core.strategies import STRATEGIES, parse_strategy
from recsys_core.train.finetune import preview
from recsys_core.train.trainer import TrainerConfig

TASKS = {
    "Whole data: each user's last interaction is the test": "leave-last-out",
    "New users: the earliest 80% of users pretrain, later users give 10 shots (transfer)": "user-group",
    "New time window: train on the past, test on the latest 10% of interactions": "temporal",
}


@st.cache_data(ttl=10, show_spinner=False)
def base_choices() -> list[dict]:
    return [b.describe() for b in available_bases()]


@st.cache_data(max_entries=8, show_spinner=False)
def data_sizes(dataset_key: str, _ds) -> DataSizes:
    """What memory estimates depend on, from the whole dataset (training is a little smaller)."""
    return DataSizes.of(np.bincount(_ds.interactions["u"].to_numpy(), minlength=_ds.n_users), _ds.n_items)


@st.cache_data(max_entries=32, show_spinner="Building the model to count what trains…")
def plan_for(config_json: str, dataset_key: str) -> dict:
    spec = RunSpec.from_json(json.loads(config_json))
    ds = active_dataset()
    strategy, options = parse_strategy({"name": spec.strategy_name, **spec.strategy.as_dict()})
    history = History(ds.interactions, ds.n_users, ds.n_items)
    texts = ds.item_texts() if ds.item_table is not None else None
    return preview(spec.family, spec.model.as_dict(), resolve_base(spec.base), strategy, options, history, ds.users.ids,
                   ds.items.ids, texts, optimizer=spec.train.optimizer)


ds = active_dataset()
source = active_source()
st.title("Setup")
st.caption(f"Dataset: **{ds.name}** ({len(ds):,} interactions). Change it on the Data page.")

task_label = st.radio("Task", list(TASKS), key="setup.task")
c1, c2, c3 = st.columns(3)
family = c1.selectbox("Model family", list(FAMILIES), index=list(FAMILIES).index("sasrec"), key="setup.family",
                      help="pop/itemknn/ease are fitted in closed form; the others train by gradient descent")
neural = FAMILIES[family].trainable
bases = [b for b in base_choices() if family in b["families"]] if neural else [{"spec": "none", "title": "no base"}]
base_labels = {b["spec"]: f"{b['spec']} — {b['title']}" for b in bases}
base = c2.selectbox("Pretrained base", list(base_labels), format_func=base_labels.get, key="setup.base",
                    disabled=not neural)
strategy_names = list(STRATEGIES) if neural else ["scratch"]
strategy_name = c3.selectbox("Fine-tuning strategy", strategy_names, key="setup.strategy", disabled=not neural,
                             format_func=lambda n: f"{n} — {STRATEGIES[n].title}")
strategy = STRATEGIES[strategy_name]
st.caption(strategy.summary)

strategy_options = {}
if strategy.config_class.__dataclass_fields__:
    st.markdown("**Strategy options**")
    strategy_options = config_widgets(strategy.config_class, f"setup.strategy.{strategy_name}")
model_cls = FAMILIES[family]
with st.expander(f"Model options ({family})"):
    # a run base fixes the architecture: its options are the defaults here
    base_model = resolve_base(base).config if neural and base.startswith("run:") else {}
    if base_model:
        st.caption(f"Architecture from {base}; changing its sizes would not fit the base's weights.")
    model_options = config_widgets(model_cls.config_class, f"setup.model.{family}.{base}", base_model)
train_options = {}
if neural:
    with st.expander("Training options"):
        defaults = dict(model_cls.default_train)
        train_options = config_widgets(TrainerConfig, f"setup.train.{family}", defaults)
c1, c2 = st.columns(2)
seed = int(c1.number_input("seed", value=0, step=1, key="setup.seed"))
device = c2.selectbox("device", ["auto", "cpu", "cuda", "mps"], key="setup.device",
                      help="auto picks CUDA, then MPS, then CPU")

try:
    spec = RunSpec.create(source, family, model=model_options, train=train_options, split=TASKS[task_label],
                          seed=seed, device=device, base=base, strategy={"name": strategy_name, **strategy_options})
    config = spec.to_json()
except Exception as exc:  # noqa: BLE001 - an invalid option is shown, nothing starts
    show_error(exc)
    st.session_state.pop("setup_config", None)
    st.stop()
st.session_state["setup_config"] = config

st.subheader("Memory")
sizes = data_sizes(f"{ds.name}:{len(ds)}:{ds.n_users}:{ds.n_items}", ds)
estimate = model_cls.memory_estimate(spec.model, sizes)
budget = int(available_bytes() * USABLE_SHARE)
c = st.columns(3)
c[0].metric("Peak memory estimate", format_bytes(estimate.total),
            help="made from the options and the data's sizes before anything is allocated: "
                 + ", ".join(f"{k} {format_bytes(v)}" for k, v in estimate.parts.items()))
c[1].metric("This machine can give", format_bytes(budget), help="80% of the memory available now")
if estimate.seconds:
    c[2].metric("Fit time estimate", f"{estimate.seconds / 60:,.1f} min")
if estimate.note:
    st.caption(estimate.note)
try:
    model_cls.check_memory(spec.model, sizes)
except RecTuneError as exc:
    show_error(exc)
    st.session_state.pop("setup_config", None)
    st.stop()

if neural:
    st.subheader("What trains")
    try:
        plan = plan_for(json.dumps(config, sort_keys=True), f"{ds.name}:{len(ds)}:{ds.n_items}")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
        st.session_state.pop("setup_config", None)
        st.stop()
    c = st.columns(4)
    c[0].metric("Trainable parameters", f"{plan['trainable_params']:,}")
    c[1].metric("Total parameters", f"{plan['total_params']:,}")
    c[2].metric("Share that trains", f"{plan['trainable_share']:.1%}")
    c[3].metric("Optimizer + gradient memory", f"{(plan['optimizer_bytes'] + plan['gradient_bytes']) / 2**20:.1f} MiB",
                help=f"{config['train']['optimizer']} keeps moment buffers for every trainable weight; "
                     f"weights themselves: {plan['weight_bytes'] / 2**20:.1f} MiB")
    groups = pd.DataFrame(plan["groups"])
    groups["frozen"] = groups["params"] - groups["trainable"]
    chart = groups.melt(id_vars=["group", "state"], value_vars=["trainable", "frozen"], var_name="part",
                        value_name="parameters")
    fig = px.bar(chart, y="group", x="parameters", color="part", orientation="h",
                 color_discrete_map={"trainable": "#e4572e", "frozen": "#9bb1c8"},
                 title="Layers bottom to top: trainable vs frozen parameters")
    fig.update_yaxes(categoryorder="array", categoryarray=list(groups["group"])[::-1])
    st.plotly_chart(fig, width="stretch")
    st.dataframe(groups[["group", "role", "params", "trainable", "state"]], hide_index=True, width="stretch")
    for note in plan["notes"]:
        st.caption(note)

st.subheader("Reproduce from the command line")
st.code(spec.command("setup.json"), language="bash")
st.caption("with this setup.json:")
st.code(pretty_json(spec.config_file()), language="json")
st.info("Start it on the **Train** page.")
