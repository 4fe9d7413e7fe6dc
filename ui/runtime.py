"""Stop Streamlit's end-of-run cleanup from disturbing a training thread.

After every script run, fragment reruns included, Streamlit calls
``keras.backend.clear_session()`` to stop notebook-style apps from piling up models.
Here a model trains in a background thread across many runs, and clearing the
session each second drops TensorFlow's kernel cache, forces a full garbage
collection and resets Keras' layer-name counters under that thread: measured on a
2-core CPU, a watched 32 px run fell from 660 to about 200 images/s, and a model
being built during the reset got two layers of the same name.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)


def keep_keras_state_between_reruns() -> None:
    """Replace Streamlit's cleanup with one that skips Keras (matplotlib is still closed)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # a Streamlit that moved the module: nothing to patch
        logger.warning("Streamlit's script runner was not found; Keras state may be cleared each rerun")
        return
    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def clean_problem_modules_except_keras() -> None:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    clean_problem_modules_except_keras.keeps_keras = True
    script_runner._clean_problem_modules = clean_problem_modules_except_keras
