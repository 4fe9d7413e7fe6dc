"""DCGAN Studio: start with ``streamlit run dashboard.py``.

This entry point is the frame around every page: page settings, the session's default
training settings, and the navigation. The pages themselves live in ``pages/``.
"""

from __future__ import annotations

import streamlit as st

from ui.state import prepare_page

prepare_page()  # page settings, the session's defaults

navigation = st.navigation(
    [
        st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/1_Data.py", title="Data", icon=":material/photo_library:"),
        st.Page("pages/2_Train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/3_Latent_space.py", title="Latent space", icon=":material/explore:"),
        st.Page("pages/4_Runs.py", title="Runs", icon=":material/folder_open:"),
    ]
)
navigation.run()
