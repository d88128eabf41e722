"""Face Expression: a webcam picture or a photo -> the seven expression probabilities per face."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core import plots
from core.face import detect
from core.face import saliency
from core.errors import InputError
from core.face.data import EXPRESSIONS
from core.text import csv_text, markdown_code
from core.face.predict import face_rows, picture_faces
from webapp import live_video
from webapp.navigation import use_app_navigation
from webapp.loaders import analysis_slot, face_keras_ensemble, face_page_scorer, picture_workers

use_app_navigation()
st.title(":material/mood: Face expression")
st.write("Take a webcam picture or upload a photo. MoodLens finds every face and gives the "
         "probabilities of seven expressions for each, from CNNs trained on FER2013.")
st.caption(f"Formats: {', '.join(detect.SUPPORTED_FORMATS)} · at most {detect.MAX_PIXELS / 1e6:.0f} "
           f"megapixels (larger pictures are refused; big ones are scaled down to "
           f"{detect.WORK_MAX_SIDE_PX} px) · **Privacy:** pictures are processed in memory and never "
           "stored; nothing leaves this server.")

camera_tab, upload_tab, live_tab = st.tabs([":material/photo_camera: Webcam", ":material/image: Photo",
                                           ":material/videocam: Live video"])


@dataclass(frozen=True)
class Snapshot:
    """A webcam picture taken out of the camera widget (which would show it a second time), kept in
    this session's memory until the next one, a photo, or "Remove the picture"."""
    file_id: str
    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


with camera_tab:
    # A new key after each picture empties the widget: the page shows the picture once, with its boxes.
    taken = st.camera_input("Take a picture", key=f"camera_{st.session_state.get('camera_round', 0)}")
    if taken is not None:
        st.session_state["snapshot"] = Snapshot(taken.file_id, "webcam picture", taken.getvalue())
        st.session_state["camera_round"] = st.session_state.get("camera_round", 0) + 1
        st.session_state["latest_input"] = "snapshot"
        st.rerun()
    if "snapshot" in st.session_state and st.button("Remove the picture", icon=":material/delete:"):
        del st.session_state["snapshot"]
        st.rerun()
with upload_tab:
    photo = st.file_uploader("Photo", type=list(detect.SUPPORTED_FORMATS))
if photo is not None and st.session_state.get("seen_photo") != photo.file_id:
    st.session_state["seen_photo"], st.session_state["latest_input"] = photo.file_id, "photo"
snapshot = st.session_state.get("snapshot")
# The latest of the two, as a person expects when they use both.
picture = (snapshot if snapshot and (photo is None or st.session_state.get("latest_input") == "snapshot")
           else photo)
# Asked for once the page's inputs are drawn: the page is usable while they load (webapp.loaders).
runner = face_page_scorer()
workers = picture_workers()
with live_tab:
    live_video.live_mode(runner)


def show_result(image, result: dict, whole_image: bool) -> None:
    """The picture with its boxes beside the faces' probability charts (two charts a row), and the
    downloads: the faces as CSV and JSON, the picture with its boxes as PNG."""
    found = result["faces"]
    drawn = detect.draw_faces(image, [f["box"] for f in found], [f["label"] for f in found])
    caption = ("the whole picture, scored as one face" if whole_image else
               f"{len(found)} face{'s' if len(found) != 1 else ''} found, numbered left to right · a face "
               "may be missed if it is small, turned away or dark")
    picture_column, charts_column = st.columns([3, 2])
    picture_column.image(drawn, caption=caption, width="stretch")
    csv_column, json_column, png_column = picture_column.columns(3)
    csv_column.download_button("Faces (CSV)", lambda: csv_text(pd.DataFrame(face_rows(result))),
                               "moodlens_faces.csv", "text/csv", on_click="ignore")
    json_column.download_button("Faces (JSON)", lambda: json.dumps(result, indent=1), "moodlens_faces.json",
                                "application/json", on_click="ignore")
    png_column.download_button("Picture (PNG)", lambda: detect.png_bytes(drawn),
                               "moodlens_faces.png", "image/png", on_click="ignore")
    with charts_column:
        columns = st.columns(2 if len(found) > 1 else 1)
        for i, face in enumerate(found):
            with columns[i % len(columns)]:
                st.plotly_chart(plots.probability_bars(face["probabilities"], f"Face {i + 1}: {face['label']}"),
                                key=f"face_{i}")
                if st.toggle("Where the model looked", key=f"looked_{i}"):
                    show_where_it_looked(image, face, i)


def show_where_it_looked(image, face: dict, i: int) -> None:
    """The face's Grad-CAM map over its crop, made when first asked for and kept with the picture."""
    kept = st.session_state["face_results"].setdefault("looked", {})
    key = (tuple(face["box"]), face["label"])
    if key not in kept:
        with analysis_slot:
            kept[key] = saliency.picture_face_overlay(face_keras_ensemble(), image, face["box"], face["label"])
    st.image(kept[key], caption=f"Face {i + 1}: where the models looked for '{face['label']}' "
             "(Grad-CAM; red: what raised that score most)", width=192)


def analyse(picture, whole_image: bool = False) -> tuple:
    """(the decoded picture, its faces scored). The picture is decoded once per upload (keyed by
    Streamlit's file_id), in a worker process with a time and memory limit; a refused one keeps its
    message, so a rerun does not decode it again. Its faces are detected and scored once per choice.
    Only the latest picture is kept, and only once decoded: a run stopped mid-decode (the person
    changed something, which reruns the page) leaves nothing half-kept for the next run to trust."""
    kept = st.session_state.get("face_results")
    if kept is None or kept["file_id"] != picture.file_id:
        kept = {"file_id": picture.file_id, "by_choice": {}}
        try:
            with analysis_slot:
                kept["image"] = workers.decode_image(picture.getvalue())
        except InputError as e:
            kept["error"] = str(e)
        st.session_state["face_results"] = kept
    if "error" in kept:
        raise InputError(kept["error"])
    if whole_image not in kept["by_choice"]:
        with analysis_slot:
            kept["by_choice"][whole_image] = picture_faces(runner, kept["image"], picture.name, whole_image)
    return kept["image"], kept["by_choice"][whole_image]


def picture_has_faces(picture) -> bool:
    """Whether the detector found faces in this picture (its kept result without the whole-picture choice)."""
    kept = st.session_state.get("face_results") or {}
    return bool(kept.get("by_choice", {}).get(False, {}).get("faces"))


if picture is not None:
    try:
        image, result = analyse(picture)
        if not result["faces"]:
            st.warning("No face was found. Tips: face the camera, light your face from the front, "
                       "and come closer (the face should fill at least a tenth of the picture's height).")
            whole_image = st.checkbox("Score the whole picture as one face")
            if whole_image:
                st.warning("The whole picture is scored as if it were a face: if there is no face in it, "
                           "the probabilities below mean nothing about anyone's expression.")
                image, result = analyse(picture, whole_image=True)
        if result["faces"]:
            show_result(image, result, whole_image=not picture_has_faces(picture))
    except InputError as e:
        st.error(f"{markdown_code(picture.name)}: {e}")
else:
    st.session_state.pop("face_results", None)
    st.info("No picture yet: take one with the webcam or upload a photo.")


def show_model_card(card: dict) -> None:
    val, members = card["validation"], [m["name"] for m in card["members"]]
    st.markdown(
        f"The average of {len(members)} CNNs of the variant zoo ({', '.join(members)}; "
        f"{card['parameters']:,} parameters in all)"
        + (", each scoring the face as seen and mirrored" if card["mirror_average"] else "")
        + f", trained on the {card['split']['n_train']:,} FER2013 Training faces and scored on the "
        f"{card['split']['n_val']:,} PublicTest faces: **accuracy {val['accuracy']:.1%}**, "
        f"macro-F1 {val['macro_f1']:.3f}. The members were chosen on PublicTest too, which flatters "
        "that figure a little (docs/face_model.md).")
    st.plotly_chart(plots.confusion_heatmap(val["confusion"], EXPRESSIONS, "PublicTest confusion"),
                    key="confusion")
    st.markdown(
        "**Limits.** FER2013 faces are 48×48 grey web images with noisy labels (crowd raters of FER+ "
        "often disagree with them); 'disgust' has very few training examples and is rarely predicted. "
        "An expression is not a feeling: the model reads faces, not minds.")


# Filled only while open (opening it reruns the page): otherwise its chart was built and sent again
# with every picture, although the card is closed once there is a picture.
about = st.expander("About the model (from its card)", expanded=picture is None, on_change="rerun", key="face_card")
if about.open:
    with about:
        show_model_card(runner.card)
