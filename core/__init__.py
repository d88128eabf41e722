"""MoodLens core: a plain Python library (no Streamlit) for song mood and face expression."""
