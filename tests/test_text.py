"""A person's file name is shown as text: in Markdown, in Plotly labels and in a CSV."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from core import plots
from core.text import csv_text, markdown_code, plotly_text, spreadsheet_cell

NAMES = ["![t](https://example.invalid/x.png).mp3", "**bold**.wav", "<img src=https://example.invalid/y.png>.mp3",
         "`tick`.mp3", "a ``` b.wav", "$x^2$ :red[red] :smile: :material/home:.mp3", "line\nbreak.wav", "_u_ [l](x).ogg"]


@pytest.mark.parametrize("name", NAMES)
def test_a_name_in_a_code_span_is_one_code_element_holding_the_name(name):
    # CommonMark (markdown-it, as Streamlit's react-markdown reads it): a paragraph holding one code
    # span and nothing else, whose text is the name (a line break becomes a space).
    tokens = MarkdownIt("commonmark").parseInline(markdown_code(name))[0].children
    assert [t.type for t in tokens] == ["code_inline"], tokens
    assert tokens[0].content == name.replace("\n", " ")


@pytest.mark.parametrize("name", NAMES)
def test_a_name_in_a_plotly_label_has_no_tag(name):
    text = plotly_text(name)
    assert "<" not in text and ">" not in text
    assert text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == name


def test_the_mood_map_shows_names_as_text_and_keeps_them_out_of_hover_templates():
    name = "<b>x</b> %{y} & ![t](https://example.invalid/x.png).mp3"
    song = {"file": name, "valence": 0.4, "arousal": 0.7, "mood": "happy / excited",
            "windows": [{"valence": 0.3, "arousal": 0.6, "start_s": 0.0}, {"valence": 0.5, "arousal": 0.6, "start_s": 10.0}]}
    for trace in json.loads(plots.mood_map([song]).to_json())["data"]:
        assert name not in trace["hovertemplate"] and "%{y}" not in trace["hovertemplate"].replace("%{y:.2f}", "")
        assert trace["meta"] == plotly_text(name) and trace["name"].startswith(plotly_text(name))
        assert all(text == plotly_text(name) for text in trace.get("text", []))


@pytest.mark.parametrize("value, safe", [("=1+2.mp3", "'=1+2.mp3"), ("+x.wav", "'+x.wav"), ("-x.wav", "'-x.wav"),
                                         ("@SUM(A1).mp3", "'@SUM(A1).mp3"), ("\tx.mp3", "'\tx.mp3"),
                                         ("\rx.mp3", "'\rx.mp3"), ("a=b.mp3", "a=b.mp3"), ("song.mp3", "song.mp3")])
def test_a_spreadsheet_cell_never_begins_a_formula(value, safe):
    assert spreadsheet_cell(value) == safe


def test_the_csv_neutralises_text_cells_and_keeps_numbers():
    table = pd.DataFrame([{"file": '=HYPERLINK("https://example.invalid","x").mp3', "valence": -0.25, "mood": "@x"},
                          {"file": "ok.mp3", "valence": 0.5, "mood": "calm"}])
    back = pd.read_csv(io.StringIO(csv_text(table)))
    assert back["file"].tolist() == ['\'=HYPERLINK("https://example.invalid","x").mp3', "ok.mp3"]
    assert back["mood"].tolist() == ["'@x", "calm"] and back["valence"].tolist() == [-0.25, 0.5]
