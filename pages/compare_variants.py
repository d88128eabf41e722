"""Compare variants: pooling and dropout variants of both models, on their cards and on your input."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import plots
from core.song import decode
from core.variants import compare
from core.face import detect
from core.face import saliency
from core.variants import verdicts as variant_stats
from core.face.data import EXPRESSIONS
from core.errors import InputError
from core.metrics import compared_metrics
from core.text import csv_text, markdown_code
from core.variants.zoo import DEFAULT, trained_variants, what_the_page_runs
from webapp.navigation import use_app_navigation
from webapp import design_panel
from webapp.loaders import analysis_slot, fold_runners, picture_workers, song_feature_workers

use_app_navigation()
st.title(":material/compare: Compare variants")
st.write("Each variant is its task's default model with **one** layer choice changed (pooling or "
         "dropout), trained with the same command, data split, seed and budget. See what that one "
         "choice does: whether it beats the default by more than the noise (each difference with its 95% "
         "interval and a verdict), on your own song or photo, and in the learning curves.")

TASKS = {"Song mood (CRNN)": "song", "Face expression (CNN)": "face"}
task = TASKS[st.radio("Model", list(TASKS), horizontal=True)]
zoo = design_panel.with_designed_variants(task, trained_variants(task))  # + this server's designed variants
if DEFAULT not in zoo or len(zoo) < 2:
    st.error(f"Fewer than two trained {task} variants were found in models/{task}/. Train the zoo with "
             f"`python -m core.train {task} --zoo --data …` (see the README).")
    st.stop()
others = [n for n in zoo if n != DEFAULT]


def forest_plots() -> None:
    """Each variant's difference from the default, per chosen metric, from the cards' comparison
    entries (python -m core.variants.verdicts), with one generated sentence a variant."""
    st.subheader("Does the choice make a difference?")
    comparison = zoo[DEFAULT].get(variant_stats.COMPARISON)
    if comparison is None:
        st.info(f"The {task} cards hold no comparison yet: compute it with "
                f"`{'python -m core.variants.verdicts ' + task + (' --data …' if task == 'face' else '')}`.")
        return
    stale = variant_stats.stale_comparisons(zoo)
    if stale:
        st.warning(f"Retrained since their comparison was computed (left out of the plots until it is "
                   f"recomputed with `{comparison['command']}`): {', '.join(stale)}.")
    specs = {spec.label: spec for spec in compared_metrics(task)}
    chosen = st.multiselect("Metrics", list(specs), default=list(specs)[:2], key=f"forest_metrics_{task}")
    for label in chosen:
        spec = specs[label]
        rows = variant_stats.forest_rows({n: c for n, c in zoo.items() if n not in stale}, spec.key)
        st.plotly_chart(plots.forest_plot(rows, spec.label, spec.scale, spec.unit), key=f"forest_{task}_{spec.key}")
        st.markdown("\n".join(f"- {row['sentence']}" for row in rows))
    st.caption(f"{comparison['method']} Each interval is that comparison's own 95% interval; the verdict "
               f"uses the p-value corrected for the number of variants (Holm), so an interval just clear "
               f"of zero can still read \"no detectable difference\". {comparison['seeds']['note']}")


forest_plots()
names = st.multiselect("Variants (two or more)", list(zoo), default=[DEFAULT, others[0]], key=f"variants_{task}")
if len(names) < 2:
    st.info("Pick at least two variants to compare.")
    st.stop()
cards = {name: zoo[name] for name in names}


def variants_table(rows: list[dict]) -> None:
    """The table of variants; a clicked row shows that variant's full configuration and training."""
    table = pd.DataFrame(variant_stats.rows_with_intervals(task, rows, cards)).drop(columns=["latency measured on"])
    table["variant"] = [f"★ {v}" if d else v for v, d in zip(table["variant"], table.pop("default"))]
    picked = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                          key=f"table_{task}", column_config={
                              "parameters": st.column_config.NumberColumn(format="localized"),
                              "latency (ms)": st.column_config.NumberColumn(
                                  "latency on training machine (ms)", format="%.1f")})
    comparison = zoo[DEFAULT].get(variant_stats.COMPARISON)
    st.caption(f"★ the default, the variant every other is compared with; {what_the_page_runs(task)}. "
               + (f"Metrics with their 95% interval ({comparison['data']})"
                  if comparison else "Metrics on the validation split in each card")
               + f"; latency: one input, measured on the machine that trained it "
               f"({rows[0]['latency measured on']}). Click a row for its details.")
    for i in picked.selection.rows:
        name = rows[i]["variant"]
        with st.expander(f"Details of {name}", expanded=True):
            st.json({k: cards[name][k] for k in ("config", "training", "split", "data")}, expanded=1)


def held_out_data() -> None:
    """The selected variants on held-out data, from their cards: table, learning curves, errors."""
    st.subheader("On held-out data")
    variants_table(compare.variant_rows(task, cards))
    bands = {n: c["fold_curves"] for n, c in cards.items() if len(c.get("fold_curves", [])) > 1}
    st.plotly_chart(plots.learning_curves({n: c["curves"] for n, c in cards.items()},
                                          "Learning curves: training (solid) and validation (dashed) loss",
                                          bands, runs="folds"),
                    key=f"curves_{task}")
    st.caption(("Lines: the mean over the cross-validation folds; bands: the lowest to the highest fold. "
                if bands else "One training run per variant: no band across seeds (seeds are missing). ")
               + "A validation loss that climbs while the training loss keeps falling is overfitting: "
               "compare the variant without dropout with the others.")
    if task == "face":
        columns = st.columns(min(len(cards), 3))
        for i, (name, card) in enumerate(cards.items()):
            with columns[i % len(columns)]:
                st.plotly_chart(plots.confusion_heatmap(card["validation"]["confusion"], EXPRESSIONS,
                                                        f"{name}: {card['validation']['accuracy']:.1%}"),
                                key=f"confusion_{name}")
    else:
        st.plotly_chart(plots.predicted_vs_true(cards), key="predicted_vs_true")
    with st.expander("What pooling does: each layer's output shape"):
        columns = st.columns(min(len(runners), 3))
        for i, (name, runner) in enumerate(runners.items()):
            with columns[i % len(columns)]:
                st.markdown(f"**{name}**")
                shapes = compare.layer_shapes(runner.model, compare.INPUT_SHAPES[task])
                st.dataframe(pd.DataFrame(shapes).astype({"output shape": str}), hide_index=True, height=300)
        st.caption("Song: one 30-s window of musicnn patch embeddings; face: one 48×48 picture (no batch axis).")


st.subheader("Your own " + ("song" if task == "song" else "photo"))
passes = st.slider("Monte Carlo dropout passes (N): dropout kept on at prediction time", 0, 50,
                   compare.DEFAULT_PASSES, step=5, key=f"passes_{task}")
formats = decode.SUPPORTED_FORMATS if task == "song" else detect.SUPPORTED_FORMATS
upload = st.file_uploader("Song" if task == "song" else "Photo", type=list(formats), key=f"upload_{task}")


def decoded_input(upload):
    """The upload decoded once per session and file (Streamlit's file_id), in a worker process: a
    song's features, or a picture. A refused file keeps its message, so no rerun (another variant,
    N, the whole-picture box) reads it again. It is kept only once decoded (see the Face page's analyse)."""
    kept = st.session_state.get("compare_input")
    if kept is None or kept["key"] != (task, upload.file_id):
        kept = {"key": (task, upload.file_id)}
        try:
            workers = song_feature_workers().song_features if task == "song" else picture_workers().decode_image
            kept["value"] = workers(upload.getvalue())
        except InputError as e:
            kept["error"] = str(e)
        st.session_state["compare_input"] = kept
    if "error" in kept:
        raise InputError(kept["error"])
    return kept["value"]


def run_variants(upload, whole_image: bool = False) -> dict:
    """Every selected variant on the upload, kept for this session only (latest input; keyed by
    Streamlit's file_id, so a rerun does not read the bytes again). Runs take turns with the other
    pages' analyses."""
    key = (task, upload.file_id, tuple(runners), passes, whole_image)
    kept = st.session_state.get("compare_result")
    if kept is None or kept["key"] != key:
        name = upload.name
        with st.spinner(f"Running {len(runners)} variants…"), analysis_slot:
            if task == "song":
                source = compare.song_input(b"", name, lambda _: decoded_input(upload))
                results = compare.compare_song(runners, source, passes, fold_runners(task, list(runners)))
            else:
                source = compare.picture_input(b"", name, whole_image, lambda _: decoded_input(upload))
                results = compare.compare_faces(runners, source, passes)
        kept = st.session_state["compare_result"] = {"key": key, "source": source, "results": results}
    return kept


def show_song(source, results: dict) -> None:
    st.plotly_chart(plots.variants_mood_map(results), key="variants_mood_map")
    table = pd.DataFrame(compare.song_result_rows(results))
    st.dataframe(table.round(3), hide_index=True)
    download_results(table, source.name)


def download_results(table: pd.DataFrame, name: str) -> None:
    st.download_button("Download every variant's result (CSV)", lambda: csv_text(table.assign(file=name)),
                       "moodlens_variants.csv", "text/csv", on_click="ignore")


def show_faces(source, results: dict) -> None:
    download_results(pd.DataFrame(compare.face_result_rows(results)), source.name)
    first = next(iter(results.values()))
    st.image(detect.draw_faces(source.image, [f.box for f in source.found], [r["label"] for r in first]),
             caption=f"{len(source.found)} face(s); labels from {next(iter(results))}", width=480)
    for i in range(len(source.found)):
        st.plotly_chart(plots.variants_probabilities(results, i, f"Face {i + 1}"), key=f"variant_probs_{i}")
        if st.toggle(f"Face {i + 1}: where each variant looks", key=f"variant_looks_{i}"):
            for column, (name, found) in zip(st.columns(len(results)), results.items()):
                column.image(saliency.face_overlay(runners[name], source.crops[i], found[i]["label"]),
                             caption=f"{name}: {found[i]['label']}", width=saliency.OVERLAY_SIZE_PX)
            st.caption("Grad-CAM on each variant's last convolution block, for the label it gives; red: "
                       "what raised that label's score most.")


def your_input_results() -> None:
    """The upload's results through every selected variant (run once per upload and choice)."""
    if upload is None:
        st.session_state.pop("compare_input", None)
        st.info("Upload a " + ("song" if task == "song" else "photo") + " to see every selected variant on it.")
        return
    try:
        kept = run_variants(upload)
        if task == "face" and not kept["source"].found:
            st.warning("No face was found. Tips: face the camera, light your face from the front, and come closer.")
            if not st.checkbox("Score the whole picture as one face"):
                return
            kept = run_variants(upload, whole_image=True)
    except InputError as e:
        st.error(f"{markdown_code(upload.name)}: {e}")
        return
    (show_song if task == "song" else show_faces)(kept["source"], kept["results"])
    spread = "cloud and ±2 sd ellipse of the song's mean" if task == "song" else "error bars: one standard deviation"
    folds = {r["folds"]["models"] for r in kept["results"].values() if "folds" in r} if task == "song" else set()
    st.caption((f"Spread, first source: each variant's {'/'.join(map(str, sorted(folds)))} cross-validation fold "
                "models (open diamonds), trained on different songs. Second source: " if folds else "Spread: ")
               + (f"{passes} Monte Carlo dropout passes per variant ({spread})." if passes
                  else "Monte Carlo dropout off (N = 0)."))
    with st.expander("Just before and after the first pooling layer, for your input "
                     + ("(the first 30-s window)" if task == "song" else "(the first face)")):
        x = kept["source"].features[:1] if task == "song" else kept["source"].crops[:1]
        for name, runner in runners.items():
            seen = compare.pooling_activations(runner.model, x) if len(x) else None
            if seen is None:
                st.caption(f"{name}: no pooling layer: the sequence keeps its full length." if len(x)
                           else f"{name}: no face to show.")
            else:
                st.plotly_chart(plots.activations(seen["before"], seen["after"],
                                                  f"{name}: {seen['layer']} ({seen['type']})"),
                                key=f"activations_{name}")


# Asked for once the page's inputs are drawn: the page is usable while they load (webapp.loaders).
runners = design_panel.runners_for(task, names)
your_input_results()
held_out_data()
design_panel.design_a_variant(task, zoo)
