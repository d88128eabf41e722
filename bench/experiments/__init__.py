"""One-off experiments: each answers one question behind a choice the app made (a crop margin, class
weights, test-time views, where Grad-CAM looks). Run as `python -m bench.experiments.NAME`; their
answers are quoted in docs/face_model.md (`python -m bench.face_model_report`)."""
