"""The Streamlit side of the app that is not a page: model loaders, server set-up, navigation, and
the one module that reaches into Streamlit's and Starlette's private internals."""
