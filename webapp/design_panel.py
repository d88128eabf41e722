"""The Compare page's "Design a variant" panel: choose a song CRNN's layers, train it on this server
(one training at a time, in a worker process), watch it learn, and see it join the comparison.

Configured by environment variables, read when the server starts a panel (docs/design_a_variant.md):
    MOODLENS_DESIGN_DATA   a folder with annotations.csv and songs/ (e.g. ../shared/data/music)
    MOODLENS_DESIGN_CACHE  its musicnn embeddings, built once by
                           `python -m core.variants.design cache --data DATA --cache CACHE`
    MOODLENS_VARIANTS_DIR  where designed variants are kept (default ~/.moodlens/variants)
    MOODLENS_DESIGN_LIMIT_S  one training's time limit (default 600)
    MOODLENS_DESIGN_MAX_EPOCHS  cap on the zoo recipe's epochs (tests)
Nothing here imports TensorFlow or training code: the worker is started by module name
(core.variants.design_queue), and the sketch and parameter count are computed in core.variants.design.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import cards, plots
from core.errors import ModelFileError
from core.variants import design, design_queue, design_store
from core.variants.zoo import DEFAULT, trained_variants
from webapp.loaders import variant_runners

REFRESH_S = 1.0
RECIPE_KEYS = ("epochs", "batch_size", "learning_rate", "folds", "min_crop_patches", "seed")


def _setting(name: str) -> str | None:
    return os.environ.get(name) or None


def configured() -> tuple[Path, Path] | None:
    """(data folder, cache folder) when both are set and usable, else None."""
    data, cache = _setting("MOODLENS_DESIGN_DATA"), _setting("MOODLENS_DESIGN_CACHE")
    if not data or not cache or not (Path(data) / "annotations.csv").is_file():
        return None
    return Path(data), Path(cache)


@st.cache_resource(show_spinner=False)
def _queue(data: str, cache: str, out: str, limit_s: float, max_epochs: int | None) -> design_queue.TrainingQueue:
    """The server's one training queue (one per configuration, shared by every session)."""
    default = trained_variants("song")[DEFAULT]
    recipe = {k: default["training"][k] for k in RECIPE_KEYS}
    return design_queue.TrainingQueue(Path(data), Path(cache), Path(out), recipe, limit_s, max_epochs=max_epochs)


def training_queue() -> design_queue.TrainingQueue | None:
    found = configured()
    if found is None:
        return None
    max_epochs = _setting("MOODLENS_DESIGN_MAX_EPOCHS")
    return _queue(str(found[0]), str(found[1]), str(design_store.variants_dir("song")), design.time_limit_s(),
                  int(max_epochs) if max_epochs else None)


# --- what the rest of the Compare page uses ---------------------------------------------------

def with_designed_variants(task: str, zoo: dict) -> dict:
    """The zoo's cards and this server's designed variants, verdicts over all of them."""
    designed = design_store.designed_cards(task)
    if not designed or DEFAULT not in zoo:
        return zoo
    key = tuple((n, c.get("model_file", {}).get("sha256")) for n, c in {**zoo, **designed}.items())
    return _merged(task, key)


@st.cache_data(show_spinner=False, max_entries=8)
def _merged(task: str, key: tuple) -> dict:
    """key: every card's (name, model SHA-256): a new or retrained variant recomputes."""
    zoo, designed = trained_variants(task), design_store.designed_cards(task)
    return {n: c.to_dict() for n, c in design_store.with_designed(task, zoo, designed).items()}


@st.cache_resource(show_spinner="Loading the designed variant…")
def _designed_runner(path: str, sha256: str, task: str):
    from core.runner import ModelRunner
    from core.variants.compare import INPUT_SHAPES

    runner = ModelRunner.load(Path(path))
    runner.mc_dropout(np.zeros((1, *INPUT_SHAPES[task]), np.float32), 1)
    return runner


def runners_for(task: str, names: list[str]) -> dict:
    """Keras runners of the named variants, the zoo's (webapp.loaders) and the designed ones, in order."""
    designed = design_store.designed_cards(task)
    zoo_runners = variant_runners(task, [n for n in names if n not in designed])
    runners = {}
    for name in names:
        if name in designed:
            try:
                runners[name] = _designed_runner(str(design_store.model_path(task, name)),
                                                 designed[name]["model_file"]["sha256"], task)
            except ModelFileError as e:
                st.error(f"Designed variant **{name}** is left out: {e}")
        elif name in zoo_runners:
            runners[name] = zoo_runners[name]
    return runners


# --- the panel --------------------------------------------------------------------------------

def _song_widgets() -> tuple[dict, list[str]]:
    """The widgets of every song choice -> (choices, problems parsing the typed lists)."""
    d, choices, problems = design.defaults("song"), {}, []
    spec = {c.key: c for c in design.SONG_CHOICES}
    left, middle, right = st.columns(3)
    with left:
        st.markdown("**Convolution**")
        for key in ("conv_filters",):
            text = st.text_input(spec[key].label, ", ".join(map(str, d[key])), key=f"design_{key}", help=spec[key].help)
            try:
                choices[key] = design.parse_numbers(text, int)
            except ValueError as e:
                problems.append(f"{spec[key].label}: {e}")
        choices["kernel_size"] = st.slider(spec["kernel_size"].label, 1, 9, d["kernel_size"], key="design_kernel_size")
        choices["batch_norm"] = st.checkbox(spec["batch_norm"].label, d["batch_norm"], key="design_batch_norm")
        choices["pooling"] = st.selectbox(spec["pooling"].label, spec["pooling"].options, key="design_pooling")
        choices["pool_size"] = st.slider(spec["pool_size"].label, 2, 4, d["pool_size"], key="design_pool_size",
                                         disabled=choices["pooling"] == "none")
        choices["dropout"] = st.slider(spec["dropout"].label, 0.0, 0.8, d["dropout"], 0.05, key="design_dropout")
        choices["spatial_dropout"] = st.checkbox(spec["spatial_dropout"].label, d["spatial_dropout"],
                                                 key="design_spatial_dropout")
    with middle:
        st.markdown("**Recurrent**")
        text = st.text_input(spec["lstm_units"].label, ", ".join(map(str, d["lstm_units"])), key="design_lstm_units",
                             help=spec["lstm_units"].help)
        try:
            choices["lstm_units"] = design.parse_numbers(text, int)
        except ValueError as e:
            problems.append(f"{spec['lstm_units'].label}: {e}")
        choices["lstm_dropout"] = st.slider(spec["lstm_dropout"].label, 0.0, 0.8, d["lstm_dropout"], 0.05,
                                            key="design_lstm_dropout")
        choices["bidirectional"] = st.checkbox(spec["bidirectional"].label, d["bidirectional"], key="design_bidirectional")
        choices["summary"] = st.selectbox(spec["summary"].label, spec["summary"].options, key="design_summary",
                                          help=spec["summary"].help)
    with right:
        st.markdown("**Dense head**")
        for key, kind in (("dense_units", int), ("dense_dropout", float)):
            text = st.text_input(spec[key].label, ", ".join(map(str, d[key])), key=f"design_{key}")
            try:
                choices[key] = design.parse_numbers(text, kind)
            except ValueError as e:
                problems.append(f"{spec[key].label}: {e}")
        choices["l2"] = st.select_slider(spec["l2"].label, [0.0, 1e-4, 1e-3, 1e-2, 1e-1], d["l2"], key="design_l2")
    return choices, problems


def _sketch(task: str, config: dict, zoo: dict) -> dict:
    sketch = (design.song_sketch if task == "song" else design.face_sketch)(config)
    estimate = design.estimate_seconds(task, config, zoo)
    with st.expander(f"Layer stack: {sketch['parameters']:,} parameters (the zoo default: "
                     f"{zoo[DEFAULT]['parameters']:,})", expanded=False):
        st.dataframe(pd.DataFrame(sketch["layers"]), hide_index=True)
        st.caption(design.FIXED_WHY[task] + " Output shapes for one 30-s window (10 patches)." * (task == "song"))
    return estimate


def _face_panel(zoo: dict) -> None:
    st.caption("Face designs are costed here but not trained: on this machine a face CNN's training takes far "
               "longer than the panel's limit.")
    spec = {c.key: c for c in design.FACE_CHOICES}
    d, choices = design.defaults("face"), {}
    a, b = st.columns(2)
    choices["blocks"] = a.slider(spec["blocks"].label, 1, 5, d["blocks"], key="face_design_blocks")
    choices["filters"] = a.select_slider(spec["filters"].label, [4, 8, 16, 32, 64, 128], d["filters"],
                                         key="face_design_filters")
    choices["convs_per_block"] = a.slider(spec["convs_per_block"].label, 1, 3, d["convs_per_block"],
                                          key="face_design_convs")
    choices["pooling"] = b.selectbox(spec["pooling"].label, spec["pooling"].options, key="face_design_pooling")
    choices["dropout"] = b.slider(spec["dropout"].label, 0.0, 0.8, d["dropout"], 0.05, key="face_design_dropout")
    choices["dense_dropout"] = b.slider(spec["dense_dropout"].label, 0.0, 0.8, d["dense_dropout"], 0.05,
                                        key="face_design_dense_dropout")
    try:
        config = design.validate("face", choices)
    except ValueError as e:
        st.error(f"This design cannot be built: {e}")
        return
    estimate = _sketch("face", config, zoo)
    limit = design.time_limit_s()
    if estimate["seconds"] > limit:
        st.info(f"Training this design would take about **{estimate['seconds'] / 3600:.1f} hours** on this "
                f"machine ({estimate['note']}), over the panel's limit of {limit / 60:.0f} min: the panel "
                f"refuses it. Train it with `python -m core.train face --data ../shared/data/fer2013/fer2013.npz "
                f"--out models/face/NAME` on a machine with a GPU.")
    else:
        st.info(f"This design would take about {estimate['seconds'] / 60:.0f} min here; the panel trains song "
                "designs only: train it with `python -m core.train face …`.")


def _designed_list(task: str) -> None:
    designed = design_store.designed_cards(task)
    if not designed:
        return
    st.markdown("**Your server's designed variants** (kept in "
                f"`{design_store.variants_dir(task)}`, outside the shipped zoo)")
    for name, card in designed.items():
        a, b, c = st.columns([3, 1, 1])
        a.markdown(f"`{name}`: {card['parameters']:,} parameters, trained in {card['training']['seconds']:.0f} s, "
                   f"{card['training']['epochs_run']} epochs")
        b.download_button("Download (zip)", lambda name=name: design_store.zip_bytes(task, name), f"{name}.zip",
                          "application/zip", key=f"design_download_{name}", on_click="ignore")
        if c.button("Delete", key=f"design_delete_{name}"):
            design_store.delete(task, name)
            st.rerun()


def _curves_figure(job: design_queue.Job, default_card) -> object:
    curves = {"default (zoo, mean of folds)": default_card["curves"]}
    for fold, curve in job.curves.items():
        curves[f"{job.name} fold {fold}"] = curve
    return plots.learning_curves(curves, f"{job.name}: loss per epoch, each fold, beside the zoo default",
                                 {"default (zoo, mean of folds)": default_card.get("fold_curves", [])}, runs="folds")


@st.fragment(run_every=REFRESH_S)
def _progress(queue: design_queue.TrainingQueue) -> None:
    """This session's trainings, refreshed every second: place in line, live curves, cancel."""
    mine = [j for j in queue.jobs() if j.owner == st.session_state.get("design_owner")]
    waiting = [j for j in queue.jobs() if j.active]
    if waiting:
        st.caption(f"Training queue: {len(waiting)} design(s), one trains at a time on this server.")
    default_card = trained_variants("song")[DEFAULT]
    for job in mine[::-1][:3]:
        position = queue.position(job.id)
        if job.status == design_queue.QUEUED:
            st.info(f"**{job.name}** waits: number {position} in line.")
        elif job.status == design_queue.RUNNING:
            done = sum(len(c["loss"]) for c in job.curves.values())
            total = (job.folds or 5) + 1
            st.info(f"**{job.name}** is training: {len(job.curves)} of {total} runs started (5 folds, then "
                    f"every song), {done} epochs so far.")
        elif job.status == design_queue.DONE:
            st.success(f"**{job.name}** is trained and joins the comparison above.")
            if job.id not in st.session_state.setdefault("design_seen_done", []):
                st.session_state["design_seen_done"].append(job.id)
                st.rerun(scope="app")
        else:
            st.warning(f"**{job.name}**: {job.status}. {job.message}")
        if job.curves:
            st.plotly_chart(_curves_figure(job, default_card), key=f"design_curves_{job.id}")
            fold, epoch, ended, _ = job.arrived[-1]
            st.caption(f"Last epoch: fold {fold}, epoch {epoch + 1}, ended at "
                       f"{time.strftime('%H:%M:%S', time.localtime(ended))}.{int(ended % 1 * 10)}")
        if job.active and st.button("Cancel", key=f"design_cancel_{job.id}"):
            queue.cancel(job.id)
            st.rerun(scope="fragment")


def design_a_variant(task: str, zoo: dict) -> None:
    """The panel: choices, sketch and estimate, then training and its progress, and the list of
    this server's designed variants (download, delete)."""
    st.subheader("Design a variant")
    if task == "face":
        _face_panel(zoo)
        return
    queue = training_queue()
    if queue is None:
        st.info("Training is not set up on this server. Build the songs' musicnn embeddings once with "
                "`python -m core.variants.design cache --data ../shared/data/music --cache /tmp/moodlens_cache` "
                "(a few minutes), then start the server with `MOODLENS_DESIGN_DATA=../shared/data/music "
                "MOODLENS_DESIGN_CACHE=/tmp/moodlens_cache streamlit run streamlit_app.py` "
                "(docs/design_a_variant.md).")
        _designed_list(task)
        return
    st.session_state.setdefault("design_owner", uuid.uuid4().hex)
    st.caption("Change any choice of the song CRNN: it is trained with the zoo's recipe on the same 5 folds, and "
               "its differences from the default get intervals and verdicts like the zoo's.")
    choices, problems = _song_widgets()
    name = st.text_input("Name of your variant", "my_variant", key="design_name", max_chars=40)
    config = None
    try:
        if problems:
            raise ValueError("; ".join(problems))
        config = design.validate("song", choices, name)
        design.check_name(name, tuple(design_store.designed_cards(task)))
    except ValueError as e:
        st.error(f"This design cannot be trained: {e}")
    if config is not None:
        estimate = _sketch("song", config, {n: c for n, c in zoo.items() if n in trained_variants("song")})
        limit = design.time_limit_s()
        fits = estimate["seconds"] <= limit
        st.caption(f"Estimated training time here: about {estimate['seconds'] / 60:.1f} min ({estimate['note']}); "
                   f"limit {limit / 60:.0f} min.")
        if not fits:
            st.error("This design would not finish within the panel's limit: make it narrower, or train it with "
                     "`python -m core.train song --data … --config …`.")
        if st.button("Train it", type="primary", disabled=not fits, key="design_train"):
            try:
                queue.submit("song", name, config, st.session_state["design_owner"])
            except ValueError as e:
                st.error(str(e))
    _progress(queue)
    _designed_list(task)
